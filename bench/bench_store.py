"""Workspace speed at a million questions: import, keyset paging, filtered counts, FTS.

Prints one JSON line. Usage: python bench/bench_store.py [--rows 1000000] [--keep PATH]
Targets (issue 2): import >= 100,000 rows/s; a 50-row keyset page < 5 ms; an FTS query < 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from routelab.domain import Status
from routelab.services.importing import import_file
from routelab.store import ExampleFilter, Store

WORDS = ("payslip holiday policy leave book cancel tax code overtime salary bonus sick day week month "
         "manager complaint card transfer refund pending account balance friday monday urgent please help "
         "where when how why can could would my the a for on in to is not").split()
ACTIONS = ["get_policy", "book_holiday", "get_payslip", "escalate"]


def generate_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w") as f:
        f.write("text,label,source\n")
        for i in range(rows):
            words = " ".join(rng.choices(WORDS, k=rng.randint(4, 14)))
            label = rng.choice(ACTIONS) if i % 10 == 0 else ""  # a tenth carry a human label
            source = "synthetic" if i % 3 == 0 else "user"
            f.write(f"{words} {i},{label},{source}\n")


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="write the workspace here and keep it")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    csv_path = tmp / "questions.csv"
    generate_csv(csv_path, args.rows)
    # A user imports a file that is already on disk: flush the one we just wrote, or its
    # writeback competes with the import's commit and the clock measures the generator.
    os.sync()
    db = args.keep or tmp / "bench.db"
    store = Store.open(db)
    store.upsert_actions([__import__("routelab.domain", fromlist=["Action"]).Action(name=a) for a in ACTIONS])
    t = time.perf_counter()
    result = import_file(store, csv_path)
    import_s = time.perf_counter() - t
    assert result.added == args.rows, result

    rng = random.Random(1)
    ids = [e.id for e in store.page_at(ExampleFilter(), offset=0, limit=1)]
    max_id = store.conn.execute("SELECT MAX(id) FROM examples").fetchone()[0]
    unrev = ExampleFilter(status=Status.UNREVIEWED)
    page_ms = timed(lambda: store.page(unrev, after=rng.randint(1, max_id - 100), limit=50), 200)
    page_src_ms = timed(lambda: store.page(ExampleFilter(source="synthetic"), after=rng.randint(1, max_id), limit=50), 200)
    count_ms = timed(lambda: store.count(unrev), 5)
    counts_by_ms = timed(lambda: store.counts_by("status"), 3)
    queries = ["payslip overtime", "holiday friday", "refund pending card", "urgent complaint manager", "tax code"]
    fts_ms = timed(lambda: store.page(ExampleFilter(query=rng.choice(queries)), limit=50), 50)
    fts_count_ms = timed(lambda: store.count(ExampleFilter(query="refund pending card")), 3)
    store.close()
    print(json.dumps({
        "bench": "store", "rows": args.rows, "import_s": round(import_s, 2),
        "import_rows_per_s": round(args.rows / import_s),
        "page50_ms_p50": round(statistics.median(page_ms), 3),
        "page50_ms_p95": round(sorted(page_ms)[int(len(page_ms) * 0.95)], 3),
        "page50_by_source_ms_p50": round(statistics.median(page_src_ms), 3),
        "count_unreviewed_ms": round(statistics.median(count_ms), 1),
        "counts_by_status_ms": round(statistics.median(counts_by_ms), 1),
        "fts_page50_ms_p50": round(statistics.median(fts_ms), 2),
        "fts_page50_ms_p95": round(sorted(fts_ms)[int(len(fts_ms) * 0.95)], 2),
        "fts_count_ms": round(statistics.median(fts_count_ms), 1),
        "db_mb": round(db.stat().st_size / 1e6, 1),
        "first_id": ids[0] if ids else None,
    }))


if __name__ == "__main__":
    main()
