"""Telling a running ``ihe-gateway serve`` to pick up new certificates.

``serve`` writes gunicorn's pid file at ``<data_dir>/gateway.pid``. SIGHUP makes
gunicorn re-read gateway.toml and start new workers; each new worker builds
its TLS context and XUA trust anchors from the files, the old workers finish
their in-flight requests and exit. A pid whose process is not ours (a stale
file, a reused pid) is never signalled.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

PID_FILE = "gateway.pid"


def pid_file(data_dir: Path) -> Path:
    return Path(data_dir) / PID_FILE


def running_pid(data_dir: Path) -> int | None:
    """The pid of the serving gateway for this data folder, if one runs."""
    try:
        pid = int(pid_file(data_dir).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = None
    if cmdline is not None and b"ihe-gateway" not in cmdline and b"gunicorn" not in cmdline:
        return None  # the pid was reused by another program
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return None
    return pid


def signal_reload(data_dir: Path) -> int | None:
    """SIGHUP the running server; its pid, or None when none runs."""
    pid = running_pid(data_dir)
    if pid is not None:
        os.kill(pid, signal.SIGHUP)
    return pid
