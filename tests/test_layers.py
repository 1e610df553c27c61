"""profiles/ is the sans-IO core: it imports no I/O library and no gateway code."""

import ast
from pathlib import Path

FORBIDDEN = {
    "flask",
    "sqlalchemy",
    "alembic",
    "zeep",
    "requests",
    "httpx",
    "socket",
    "ssl",
    "gunicorn",
    "werkzeug",
    "urllib3",
    "gateway",
    "psycopg",
}
PROFILES = Path(__file__).resolve().parents[1] / "profiles"


def imported_modules(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("open", "__import__")
        ):
            found.add(f"<{node.func.id}()>")
    return found


def test_profiles_import_no_io_and_open_no_files():
    offenders = {}
    for path in PROFILES.rglob("*.py"):
        bad = imported_modules(path.read_text()) & (FORBIDDEN | {"<open()>", "<__import__()>"})
        if bad:
            offenders[str(path.relative_to(PROFILES.parent))] = sorted(bad)
    assert offenders == {}


def test_the_checker_sees_violations():
    assert "flask" in imported_modules("from flask import Flask")
    assert "gateway" in imported_modules("import gateway.config")
    assert "<open()>" in imported_modules("open('x')")
