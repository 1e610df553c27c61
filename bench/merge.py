"""Merge benchmark: how long a patient merge takes when the obsolete id holds documents.

    .venv/bin/python bench/merge.py [--url URL] [--sizes 10,100,1000] [--repeat 3]

A merge (ITI-8 A40 / ITI-44 PRPA_IN201304UV02) retires the obsolete id and, in the same
transaction, rewrites every DocumentEntry, SubmissionSet and Folder registered under it
(``gateway.registry.merge``: the patient id column and the ebRIM XML), moves correlations
and cross-references. For each size it registers one submission of that many
DocumentEntries (``bench/registry.py``'s generator, through ``iti42.register``) for a
fresh patient, merges that patient into another with ``SqlPatientIndex.merge`` and times
the call; FindDocuments for the survivor must then return them all. ``--url`` defaults to
a scratch SQLite file; give a PostgreSQL URL of a database you own (it is migrated).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from registry import ROOT, submission  # noqa: E402

from gateway.patients.index import SqlPatientIndex  # noqa: E402
from gateway.registry.store import SqlRegistry  # noqa: E402
from gateway.store import migrate  # noqa: E402
from gateway.store.db import Database  # noqa: E402
from profiles.hl7v3.datatypes import II  # noqa: E402
from profiles.pix.ports import PatientRecord  # noqa: E402
from profiles.xds import iti42  # noqa: E402
from profiles.xds.ebrim import submit_objects_request_to_xml  # noqa: E402
from profiles.xds.storedquery import QueryName, ReturnType, build  # noqa: E402

DOMAIN = f"{ROOT}.1"


def run(url: str, sizes: list[int], repeat: int) -> None:
    migrate.upgrade(url)
    database = Database(url)
    index = SqlPatientIndex(database)
    registry = SqlRegistry(database, patients=index, max_results=100_000)
    base = int(time.time()) % 1_000_000 * 1000  # fresh patient numbers on a reused database
    print(f"database: {database.dialect}")
    for size in sizes:
        times = []
        for r in range(repeat):
            p = base + size * 10 + r
            old = II(DOMAIN, f"BENCH{p:07d}")
            new = II(DOMAIN, f"SURVIVOR{p:07d}")
            index.add(PatientRecord(old))
            request = iti42.parse(submit_objects_request_to_xml(submission(p, size, True)))
            iti42.register(registry, request, "20251126000000")
            started = time.perf_counter()
            result = index.merge(PatientRecord(new), [old], source="bench")
            times.append(time.perf_counter() - started)
            found = registry.run_query(build(QueryName.FIND_DOCUMENTS, {
                "$XDSDocumentEntryPatientId": f"'{new.extension}^^^&{new.root}&ISO'",
                "$XDSDocumentEntryStatus": ["urn:oasis:names:tc:ebxml-regrep:StatusType:"
                                            "Approved"]}, return_type=ReturnType.OBJECT_REF))
            assert len(found) == size and result.registry_objects_moved == size + 1
        per_doc = statistics.median(times) / size * 1000
        print(f"{size:6d} documents: merge median {statistics.median(times) * 1000:8.1f} ms "
              f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}; "
              f"{per_doc:.2f} ms per document)")
    database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.url:
        run(args.url, sizes, args.repeat)
        return
    with tempfile.TemporaryDirectory() as scratch:
        run(f"sqlite:///{scratch}/merge.db", sizes, args.repeat)


if __name__ == "__main__":
    main()
