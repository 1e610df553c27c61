"""C-CDA metadata extraction throughput on the conformance corpus.

    .venv/bin/python bench/ccda.py              # --rounds 5 [--schema] [--render]

Reads every document of ../shared/conformance/ccda (the 60 C-CDA and the 4 legacy
CDA documents, 8.6 MB) into memory once, then times, per round, parsing each
document (``profiles.ccda.cda.parse_document``) and extracting its DocumentEntry
(``profiles.ccda.extract.extract``); with ``--schema`` also the CDA R2 schema
check, with ``--render`` also the HTML rendering, each timed on its own. Prints
documents per second and MB per second of the best round, and the slowest document.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from profiles.ccda.cda import parse_document  # noqa: E402
from profiles.ccda.extract import extract  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "ccda"


def best_round(docs: list[tuple[str, bytes]], work, rounds: int) -> tuple[float, str, float]:
    """(best total seconds, slowest document in that round, its seconds)."""
    best, slowest = float("inf"), ("", 0.0)
    for _ in range(rounds):
        per = []
        start = time.perf_counter()
        for name, data in docs:
            t = time.perf_counter()
            work(data)
            per.append((time.perf_counter() - t, name))
        total = time.perf_counter() - start
        if total < best:
            best, slowest = total, max(per)[::-1]
    return best, slowest[0], slowest[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--schema", action="store_true", help="also time the CDA R2 schema check")
    ap.add_argument("--render", action="store_true", help="also time the HTML rendering")
    args = ap.parse_args()
    paths = sorted(CORPUS.glob("*.xml")) + sorted((CORPUS / "non-ccda").glob("*.xml"))
    docs = [(p.name, p.read_bytes()) for p in paths]
    size = sum(len(d) for _, d in docs) / 1e6
    print(f"{len(docs)} documents, {size:.1f} MB, best of {args.rounds} rounds")

    def report(label: str, work) -> None:
        total, name, worst = best_round(docs, work, args.rounds)
        print(f"{label:<28} {len(docs) / total:8.0f} docs/s {size / total:6.1f} MB/s "
              f"({total * 1000:.0f} ms; slowest {name} {worst * 1000:.1f} ms)")

    report("parse + extract", lambda data: extract(parse_document(data), now="20260101"))
    if args.schema:
        import wsdl
        from profiles.ccda.validate import schema_findings

        schema = wsdl.schema("cda")
        report("parse + schema", lambda data: schema_findings(parse_document(data), schema))
    if args.render:
        from profiles.ccda.render import render_html

        report("parse + render", lambda data: render_html(parse_document(data)))
    report("parse only", parse_document)
    roots = [(name, parse_document(data)) for name, data in docs]
    total, name, worst = best_round(roots, lambda root: extract(root, now="20260101"),
                                    args.rounds)
    print(f"{'extract only (parsed)':<28} {len(docs) / total:8.0f} docs/s "
          f"({total * 1000:.0f} ms; slowest {name} {worst * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
