"""The NIST XDS Toolkit test plans for the Document Registry (Register, Stored Query) and the
Document Repository, run through the in-process gateway on SQLite and PostgreSQL.

Every step passes or is named in ``SKIP`` with why it cannot apply here."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.config import config_from_dict
from profiles.pix.ports import PatientRecord, parse_cx
from tests.conftest import CONFORMANCE, make_config_dict
from tests.nist.runner import Outcome, Runner
from tests.nist.skips import SKIP

TESTS = CONFORMANCE / "nist-testkit" / "tests"
REPOSITORY_ID = "1.3.6.1.4.1.21367.2011.2.1.1"  # make_config_dict's home community + ".1"

GROUPS = {  # loaders (run first, as NIST orders them) and the tests of each group
    "register": (["15817", "15817b"], [
        "11990", "11991", "11992", "11993", "11994", "11995", "11996", "11997", "11998",
        "11998a", "11999", "12000", "12001", "12002", "12004", "12022", "12084", "12323",
        "12326", "12327", "12370", "12379", "15805", "15806"]),
    "stored-query": (["15818", "12346", "12374"], [
        "11897", "11898", "11899", "11901", "11902", "11903", "11904", "11905", "11906",
        "11907", "11908", "11909", "12368", "15803", "12361", "12364"]),
    "repository": (["15817", "12345"], [
        "11966", "11979", "11981", "11983", "11986", "12021", "12029", "12360", "12369",
        "15816", "PnrXop", "PnrNoXop"]),
}


def run_group(name: str, tmp_path: Path, database_url: str) -> list[Outcome]:
    cfg = config_from_dict(make_config_dict(tmp_path / "data", database_url),
                           base=tmp_path, environ={})
    app = create_app(cfg)
    rt = app.extensions["gateway"]
    try:
        runner = Runner(TESTS, app.test_client(),
                        lambda cx: rt.ports.patients.add(PatientRecord(parse_cx(cx))), SKIP,
                        configured={"$repuid$": REPOSITORY_ID})
        loaders, tests = GROUPS[name]
        out: list[Outcome] = []
        for test in loaders + tests:
            results = runner.run_test(test)
            if test == "15817":
                runner.default_patient = runner.patients.get("15817")
            out += results
        return out
    finally:
        rt.database.dispose()


def summary(outcomes: list[Outcome]) -> str:
    counts = Counter(o.status for o in outcomes)
    lines = [f"pass {counts['pass']}, skip {counts['skip']}, fail {counts['fail']}"]
    lines += [f"FAIL {o.case}: {o.detail}" for o in outcomes if o.status == "fail"]
    return "\n".join(lines)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_nist_group(group: str, tmp_path: Path, database_url: str) -> None:
    outcomes = run_group(group, tmp_path, database_url)
    print(f"\n{group}: {summary(outcomes)}")
    assert sum(o.status == "pass" for o in outcomes) > 0
    assert not [o for o in outcomes if o.status == "fail"], summary(outcomes)
