"""The security officer's view: search and export filter by patient, time, event, user
and outcome, from the CLI too, and using the trail is itself audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.audit.cli import audit_group
from gateway.audit.queue import AuditQueue
from gateway.audit.search import AuditQuery, search
from gateway.store.db import Database
from profiles.atna.events import Endpoint, Occasion
from profiles.atna.message import EventOutcome
from profiles.atna.nodes import application_activity
from tests.gateway.audit.helpers import SOURCE, query_message

P1 = "P-1^^^&1.2.840.99&ISO"
P1_ELSEWHERE = "P-1^^^&2.16.840.1&ISO"
P2 = "P-2^^^&1.2.840.99&ISO"


def day(n: int) -> datetime:
    return datetime(2024, 5, n, 12, 0, tzinfo=UTC)


@pytest.fixture
def trail(db: Database) -> dict[str, str]:
    """Four records; returns name -> record_id."""
    queue = AuditQueue(db)
    records = {
        "r1": query_message(1, patient=P1, user="Dr. Jane Smith", when=day(1)),
        "r2": query_message(
            2,
            transaction="ITI-55",
            patient=P2,
            user="Bob Brown",
            when=day(2),
            outcome=EventOutcome.SERIOUS_FAILURE,
            host="192.0.2.9",
        ),
        "r3": query_message(3, patient=P1_ELSEWHERE, user="dr. jane smith", when=day(3)),
        "r4": application_activity(
            True, Occasion(SOURCE, day(4)), application=Endpoint("ihe-gateway", host="gw")
        ),
    }
    with db.session() as s:
        return {name: queue.enqueue(s, m).record_id for name, m in records.items()}


def names(db: Database, trail: dict[str, str], **criteria) -> list[str]:
    by_id = {v: k for k, v in trail.items()}
    return [by_id.get(f.entry.record_id, "other") for f in search(db, AuditQuery(**criteria))]


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({}, ["r1", "r2", "r3", "r4"]),
        ({"patient": P1}, ["r1"]),
        ({"patient": "P-1"}, ["r1", "r3"]),  # the ID part, any assigning authority
        ({"patient": "P-"}, []),  # not a prefix search
        ({"since": day(2)}, ["r2", "r3", "r4"]),
        ({"until": day(3)}, ["r1", "r2"]),
        ({"since": day(2), "until": day(4)}, ["r2", "r3"]),
        ({"event": "ITI-38"}, ["r1", "r3"]),
        ({"event": "ITI-55"}, ["r2"]),
        ({"event": "110100"}, ["r4"]),  # a DICOM EventID
        ({"event": "110120"}, ["r4"]),  # a DICOM EventTypeCode
        ({"user": "JANE"}, ["r1", "r3"]),
        ({"user": "bob"}, ["r2"]),
        ({"user": "%"}, []),  # wildcards are literal
        ({"outcome": "failure"}, ["r2"]),
        ({"outcome": "success"}, ["r1", "r3", "r4"]),
        ({"patient": "P-1", "since": day(2)}, ["r3"]),
        ({"user": "jane", "outcome": "failure"}, []),
        ({"limit": 2}, ["r1", "r2"]),
    ],
)
def test_search_filters(db, trail, criteria, expected) -> None:
    assert names(db, trail, **criteria) == expected


def test_a_found_record_carries_who_whom_when_and_from_where(db, trail) -> None:
    (found,) = search(db, AuditQuery(event="ITI-55"))
    row = found.as_json()
    assert row["patients"] == [P2] and row["users"] == ["Bob Brown"]
    assert row["source_address"] == "192.0.2.9" and row["outcome_text"] == "serious failure"
    assert row["event_time"] == day(2).isoformat() and row["xml"].startswith("<?xml")


@pytest.fixture
def config_file(tmp_path: Path, database_url: str, db) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f"""
[community]
home_community_id = "1.3.6.1.4.1.21367.2011.2.1"
name = "Test"
[storage]
data_dir = "{tmp_path / "data"}"
[database]
url = "{database_url}"
"""
    )
    return path


def test_cli_search_prints_a_table_and_records_that_the_log_was_used(
    db, trail, config_file
) -> None:
    result = CliRunner().invoke(
        audit_group, ["search", "--config", str(config_file), "--patient", "P-1"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["TIME", "(UTC)", "EVENT"]
    assert lines[1].startswith("2024-05-01 12:00:00  ITI-38")
    assert "Dr. Jane Smith" in lines[1] and P1 in lines[1] and "10.1.2.3" in lines[1]
    assert lines[2].startswith("2024-05-03 12:00:00  ITI-38")
    assert lines[-1] == "2 record(s)"
    (used,) = search(db, AuditQuery(event="110101"))  # Audit Log Used
    assert used.entry.origin == "local" and used.users


def test_cli_search_refuses_a_bad_time(config_file) -> None:
    result = CliRunner().invoke(
        audit_group, ["search", "--config", str(config_file), "--since", "yesterday"]
    )
    assert result.exit_code == 2 and "ISO 8601" in result.output


def test_cli_export_writes_json_lines(db, trail, config_file, tmp_path) -> None:
    out = tmp_path / "trail.jsonl"
    args = ["export", "--config", str(config_file), "--since", "2024-05-02", "-o", str(out)]
    result = CliRunner().invoke(audit_group, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["record_id"] for r in rows] == [trail["r2"], trail["r3"], trail["r4"]]
    assert rows[0]["event_type"] == "ITI-55" and rows[0]["outcome"] == 8
    assert rows[2]["event_name"] == "Application Start" and rows[2]["patients"] == []

    result = CliRunner().invoke(
        audit_group, ["export", "--config", str(config_file), "--outcome", "failure"]
    )
    assert result.exit_code == 0
    (only,) = [json.loads(line) for line in result.output.splitlines()]
    assert only["record_id"] == trail["r2"]
