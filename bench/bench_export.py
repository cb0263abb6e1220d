"""Export at the design point: `routelab export` of N labelled questions, as a user runs it.

Builds (or reuses) a workspace under the temp dir: N questions over the HR demo's four
actions, 70% with a human label, the rest with a teacher's proposal (a few invalid), 2% in
the test split with a near-identical copy of some in the pool, 5% already in validation,
a few skipped and flagged. Then runs `python -m routelab export` as a subprocess into a
fresh directory and prints ONE JSON line: n, seconds, rows/s, peak RSS of the export
process (its rusage from wait4 after it exits, as getrusage(RUSAGE_CHILDREN) gives it: the
largest of the export and its worker), the peak of
the export and its worker together (their PSS, sampled from /proc every 250 ms), CPU seconds
(user + system, both processes), bytes written, and the load average before and after
(others share these cores, so the CPU seconds are the steadier figure).

    python bench/bench_export.py [--n 1000000] [--workdir DIR] [--rebuild]

Target (issue 11): 1M questions in under 30 s and under 500 MB peak on this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from routelab.domain import Proposal  # noqa: E402
from routelab.services.demo import demo_data_dir  # noqa: E402
from routelab.services.importing import import_file  # noqa: E402
from routelab.services.parsing import read_actions  # noqa: E402
from routelab.store import ExampleFilter, Store  # noqa: E402

WORDS = ("payslip holiday policy leave book cancel tax code overtime salary bonus sick day week month "
         "manager complaint card transfer refund pending account balance friday monday urgent please help "
         "where when how why can could would my the a for on in to is not").split()
ACTIONS = ["get_policy", "book_holiday", "get_payslip", "escalate"]
TEACHER = "gpt-4.1"
BUILT = ".built"  # marker: the workspace finished building (a killed build is rebuilt)


def generate_csv(path: Path, n: int, seed: int = 11) -> list[int]:
    """The questions file; returns the (1-based) rows that get a teacher proposal instead of a label."""
    rng = random.Random(seed)
    unlabelled: list[int] = []
    test_texts: list[str] = []
    with path.open("w") as f:
        f.write("text,label,source,split\n")
        for i in range(1, n + 1):
            text = " ".join(rng.choices(WORDS, k=rng.randint(4, 14))) + f" {i}"
            split = "test" if i % 50 == 0 else "validation" if i % 20 == 1 else "train"
            if split == "test":
                test_texts.append(text)
            elif i % 997 == 0 and test_texts:  # a near-identical copy of a test question
                text = test_texts[-1].upper() + "?!"
            label = rng.choice(ACTIONS)
            if split != "test" and rng.random() < 0.3:
                unlabelled.append(i)
                label = ""
            f.write(f"{text},{label},{'synthetic' if i % 3 == 0 else 'user'},{split}\n")
    return unlabelled


def build_workspace(db: Path, n: int) -> None:
    csv_path = db.with_suffix(".csv")
    unlabelled = generate_csv(csv_path, n)
    store = Store.open(db)
    store.upsert_actions(read_actions(demo_data_dir() / "actions.json"))
    result = import_file(store, csv_path)
    assert result.added == n, result
    csv_path.unlink()
    first = store.page(ExampleFilter(), limit=1)[0].id  # ids follow the file's rows
    rng = random.Random(5)
    for start in range(0, len(unlabelled), 50_000):
        store.add_proposals([
            Proposal(example_id=first + i - 1, model=TEACHER, action=None if i % 101 == 0 else rng.choice(ACTIONS),
                     valid=i % 101 != 0, confidence=round(rng.random(), 3), tokens_in=180, tokens_out=8)
            for i in unlabelled[start:start + 50_000]
        ])
    skip = [(first + i - 1, kind, None, None) for i in unlabelled[:2000] for kind in ["skip" if i % 2 else "flag"]]
    store.decide_many(skip)
    store.close()
    (db.parent / BUILT).write_text(str(n))


def workspace(workdir: Path, n: int, rebuild: bool) -> Path:
    """A copy of the never-exported workspace (an export records its validation split, and the
    first export of a workspace is the one measured: it records that split too)."""
    pristine, db = workdir / "pristine.db", workdir / "bench.db"
    if rebuild or not (workdir / BUILT).is_file() or (workdir / BUILT).read_text() != str(n):
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        t = time.perf_counter()
        build_workspace(pristine, n)
        print(f"built {pristine} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(pristine, db)
    return db


def _tree_pss_kb(pid: int) -> int:
    """Proportional memory of a process and its descendants (Linux /proc), in KiB: pages they
    share (the interpreter, numpy, the tokenizer's files) are counted once between them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            rollup = (Path("/proc") / str(p) / "smaps_rollup").read_text()
        except OSError:
            continue
        total += next((int(ln.split()[1]) for ln in rollup.splitlines() if ln.startswith("Pss:")), 0)
    return total


def _sample_tree(proc: subprocess.Popen, peak: list[int]) -> None:
    while proc.returncode is None:
        peak[0] = max(peak[0], _tree_pss_kb(proc.pid))
        time.sleep(0.25)


def bytes_under(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, help="where the workspace is built and kept (default: under the temp dir)")
    ap.add_argument("--rebuild", action="store_true", help="build the workspace again even if one is there")
    args = ap.parse_args()
    workdir = args.workdir or Path(tempfile.gettempdir()) / f"routelab-bench-export-{args.n}"
    db = workspace(workdir, args.n, args.rebuild)
    out = workdir / "export"
    shutil.rmtree(out, ignore_errors=True)
    os.sync()  # the build's writeback must not compete with the timed export
    load = os.getloadavg()[0]
    cmd = [sys.executable, "-m", "routelab", "export", "--db", str(db), "--out", str(out), "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    tree_peak = [0]  # the export and its worker together (the rusage gives the largest one alone)
    output: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda k, f: output.__setitem__(k, f.read()), args=(k, f), daemon=True)
               for k, f in (("out", proc.stdout), ("err", proc.stderr))]
    for r in (*readers, threading.Thread(target=_sample_tree, args=(proc, tree_peak), daemon=True)):
        r.start()
    # the rusage of this child alone (RUSAGE_CHILDREN would add a workspace build's import worker)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join()
    if proc.returncode != 0:
        raise SystemExit(f"export failed ({proc.returncode}): {output['err'].decode().strip()}")
    report = json.loads(output["out"])
    peak_kb = usage.ru_maxrss  # KiB on Linux: the largest of the export and the worker it waited for
    print(json.dumps({
        "bench": "export", "n": args.n, "seconds": round(seconds, 2), "rows_per_s": round(args.n / seconds),
        "peak_rss_mb": round(peak_kb / 1024, 1), "peak_tree_pss_mb_sampled": round(tree_peak[0] / 1024, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "bytes_written": bytes_under(out),
        "train": report["train"]["examples"], "validation": report["validation"]["examples"],
        "left_out": sum(report["left_out"].values()), "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
