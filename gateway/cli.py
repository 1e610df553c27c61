"""``ihe-gateway``: set up, check and run a community gateway."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.clicommon import config_option, load_config_or_exit


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Health information exchange gateway (IHE XCA, XCPD, XDS.b, PIX, XUA, ATNA)."""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--community-id", default=None, help="Home community OID (default: a new one).")
@click.option("--name", default=None, help="Community name (default: the folder's name).")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(1, 65535))
def init(directory: Path, community_id: str | None, name: str | None, port: int) -> None:
    """Create a community in DIRECTORY: gateway.toml, a development PKI and a database."""
    from gateway.community import CommunityExists, init_community

    try:
        summary = init_community(directory, community_id=community_id, name=name, port=port)
    except CommunityExists as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary)


@main.command("check-config")
@config_option
def check_config(config_path: Path) -> None:
    """Print every problem in a configuration file; exit non-zero when there is any."""
    config = load_config_or_exit(config_path)
    click.echo(
        f"{config_path}: ok (community {config.community.home_community_id}, "
        f"roles: {', '.join(sorted(config.roles))})"
    )


@main.command()
@config_option
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Override server.port.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Worker processes.")
@click.option("--http", "plain_http", is_flag=True, help="Plain HTTP, for development only.")
def serve(config_path: Path, port: int | None, workers: int | None, plain_http: bool) -> None:
    """Serve the gateway over HTTPS with mutual TLS (gunicorn)."""
    from gateway.server import serve as run

    run(load_config_or_exit(config_path), config_path=config_path, port=port, workers=workers,
        http=plain_http)


@main.command()
def demo() -> None:
    """Run the DoD / VA / partner HIE federation demo on loopback (what `make demo` runs)."""
    from gateway.demo import main as run_demo

    sys.exit(run_demo())


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command()
@config_option
def upgrade(config_path: Path) -> None:
    """Apply the database migrations."""
    from gateway.store.migrate import upgrade as run

    config = load_config_or_exit(config_path)
    run(config.database_url)
    click.echo("database is at the latest revision")


def _register_groups() -> None:
    """Command groups that live beside the capability they manage."""
    from certs.cli import certs_group
    from gateway.audit.cli import audit_group, audit_repository_command
    from gateway.partners.cli import partners_group
    from gateway.patients.cli import patients_group
    from gateway.registry.cli import documents_group
    from gateway.repository.cli import import_document

    documents_group.add_command(import_document)
    main.add_command(documents_group)
    main.add_command(partners_group)
    main.add_command(audit_group)
    main.add_command(audit_repository_command)
    main.add_command(patients_group)
    main.add_command(certs_group)


_register_groups()

if __name__ == "__main__":
    main()
