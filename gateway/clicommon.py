"""What every ``ihe-gateway`` command group shares: the ``--config`` option and loading it
the same way (every problem printed, exit status 2), so no group words it differently."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.config import Config, ConfigError, load_config

config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Path to gateway.toml.",
)


def load_config_or_exit(config_path: Path) -> Config:
    """The configuration, or each of its problems on stderr and exit status 2."""
    try:
        return load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(2)
