"""Fault script: hostile inputs, kill -9 at random moments, and decisions lost.

Prints ONE JSON line:
- inputs: each hostile or broken import input tried, its exit code and whether the
  workspace stayed byte-identical (sha256 of the file and its -wal before and after);
  each must give exit 2 and leave it so.
- kills: kill -9 of `routelab import` (a big one: one transaction), `routelab export`,
  `routelab label --provider local` and of a review session with decisions journalled
  (half of the runs while another process holds the write lock, so they are pending),
  each at a random moment, N times; after each the workspace must open (routelab's own
  schema check) and pass PRAGMA integrity_check.
- decisions_lost: decisions a killed review session had shown as made (printed after
  `decide` returned) that are not in the store once the journal is applied. Must be 0.

Runs in about two minutes on 2 cores: `python bench/bench_faults.py [--kills N] [--seed S]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUTELAB = [sys.executable, "-m", "routelab"]
ENV = {**os.environ, "ROUTELAB_BUSY_TIMEOUT": "30", "PYTHONPATH": str(ROOT / "src")}

HOLD = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("COMMIT")
""")

REVIEWER = textwrap.dedent("""
    import random, sys
    from routelab.config import settings
    from routelab.domain import DecisionKind, ExampleFilter, Status
    from routelab.services.review_session import ReviewSession
    session = ReviewSession.open(sys.argv[1], settings())
    rows = session.page(ExampleFilter(status=Status.UNREVIEWED), limit=400)
    actions = [a.name for a in session.actions()]
    print("ready", flush=True)
    for ex in rows:
        kind = random.choice([DecisionKind.SKIP, DecisionKind.FLAG, DecisionKind.OVERRIDE])
        action = random.choice(actions) if kind == DecisionKind.OVERRIDE else None
        session.decide(ex.id, kind, action)
        print(ex.id, kind, flush=True)  # shown as made
    print("done", flush=True)
    import time; time.sleep(600)
""")


def digest(db: Path) -> str:
    h = hashlib.sha256()
    for p in (db, Path(f"{db}-wal")):
        h.update(p.read_bytes() if p.exists() else b"")
    return h.hexdigest()


def checkpoint(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def run(args: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*ROUTELAB, *map(str, args)], env=ENV, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def healthy(db: Path) -> bool:
    """Opens as a routelab workspace (schema check, migrations) and passes integrity_check."""
    from routelab.store import Store

    try:
        with Store.open(db, create=False) as s:
            return s.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    except Exception:
        return False


# ------------------------------------------------------------------ hostile inputs

def hostile_inputs(tmp: Path, db: Path) -> list[dict]:
    files = {
        "bad CSV (unterminated quote, NUL bytes)": (tmp / "bad.csv", b'text,label\n"where is\x00 my payslip,get_payslip\n'),
        "deeply nested JSON": (tmp / "deep.json", b"[" * 200_000 + b"]" * 200_000),
        "lone surrogate in JSONL": (tmp / "surrogate.jsonl", b'{"text": "hello \\ud800 there"}\n'),
        "invalid UTF-8": (tmp / "latin.csv", b"text\ncaf\xe9 \xff\xfe\n"),
        "unknown label": (tmp / "unknown.csv", b"text,label\nwhere is my payslip,no_such_action\n"),
        "empty file": (tmp / "empty.jsonl", b""),
        "JSON that is not a dataset": (tmp / "scalar.json", b'"just a string"'),
    }
    tried = []
    for name, (path, data) in files.items():
        path.write_bytes(data)
        tried.append(_import_case(name, db, [path]))
    tried.append(_import_case("/dev/zero as CSV", db, ["/dev/zero", "--format", "csv"]))
    tried.append(_import_case("a directory", db, [tmp]))
    tried.append(_fifo_case(tmp, db))
    tried.append(_crafted_case(tmp, db))
    return tried


def _import_case(name: str, db: Path, args: list, *, workspace: Path | None = None) -> dict:
    ws = workspace or db
    checkpoint(ws)
    before = digest(ws)
    try:
        r = run(["import", *args, "--db", ws], timeout=60)
        code, err = r.returncode, r.stderr.strip().splitlines()
    except subprocess.TimeoutExpired:
        code, err = "timeout", []
    same = digest(ws) == before
    ok = code == 2 and same and len(err) == 1
    return {"input": name, "exit": code, "unchanged": same, "one_line": len(err) == 1, "ok": ok}


def _fifo_case(tmp: Path, db: Path) -> dict:
    fifo = tmp / "feed.jsonl"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:  # blocks until the import opens it
            f.write(b'{"text": "ok"}\n{"text": [[[[\n')

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    result = _import_case("a FIFO carrying broken JSONL", db, [fifo])
    if t.is_alive():  # the import never opened it: unblock the writer
        with open(fifo, "rb") as f:
            f.read()
    return result


def _crafted_case(tmp: Path, db: Path) -> dict:
    crafted = tmp / "crafted.db"
    checkpoint(db)
    crafted.write_bytes(db.read_bytes())
    conn = sqlite3.connect(crafted)
    conn.execute("CREATE TRIGGER relabel AFTER INSERT ON decisions BEGIN UPDATE examples SET label = 'escalate'; END")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    good = tmp / "good.csv"
    good.write_text("text\nwhere is the canteen\n")
    return _import_case("a workspace carrying a trigger", db, [good], workspace=crafted)


# ------------------------------------------------------------------ kills

def kill_at_random(args: list, rng: random.Random, low: float, high: float) -> bool:
    """Start `routelab ARGS`, kill -9 it after a random delay; True if it was still running."""
    proc = subprocess.Popen([*ROUTELAB, *map(str, args)], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    time.sleep(rng.uniform(low, high))
    alive = proc.poll() is None
    if alive:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return alive


def kill_reviewer(db: Path, rng: random.Random, *, hold: bool) -> tuple[int, int]:
    """A review session killed -9 mid-way; returns (decisions shown as made, of those lost)."""
    holder = None
    if hold:
        holder = subprocess.Popen([sys.executable, "-c", HOLD, str(db)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        holder.stdout.readline()
    child = subprocess.Popen([sys.executable, "-c", REVIEWER, str(db)], env=ENV, stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
    assert child.stdout.readline().strip() == "ready"
    shown: list[tuple[int, str]] = []
    stop_after = rng.uniform(0.05, 1.0)
    reader = threading.Thread(target=_read_shown, args=(child, shown), daemon=True)
    reader.start()
    time.sleep(stop_after)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    reader.join(timeout=5)
    if holder is not None:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    from routelab.services.decision_journal import apply_leftover
    from routelab.store import Store

    with Store.open(db, create=False) as s:
        pending = apply_leftover(s)
        assert pending == 0
        lost = sum(1 for example_id, kind in shown if not s.conn.execute(
            "SELECT 1 FROM decisions WHERE example_id = ? AND kind = ? AND entry IS NOT NULL",
            (example_id, kind)).fetchone())
    return len(shown), lost


def _read_shown(child: subprocess.Popen, shown: list) -> None:
    for line in child.stdout:
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            shown.append((int(parts[0]), parts[1]))


def big_csv(tmp: Path, i: int, rows: int) -> Path:
    """New questions for each round (an import of questions already there would be quick)."""
    path = tmp / "big.csv"
    with path.open("w") as f:
        f.write("text\n")
        f.writelines(f"round {i} big import question number {j} about payslips and leave\n" for j in range(rows))
    return path


def build_workspace(tmp: Path) -> Path:
    from routelab.services.demo import create_demo_workspace

    db = tmp / "faults.db"
    create_demo_workspace(db).close()
    extra = tmp / "extra.csv"
    words = ["payslip", "holiday", "policy", "manager", "leave", "tax", "pension", "rota", "sick", "laptop"]
    rng = random.Random(7)
    with extra.open("w") as f:
        f.write("text\n")
        for i in range(3000):
            f.write(f"question {i}: {' '.join(rng.choices(words, k=6))}\n")
    r = run(["import", extra, "--db", db, "--source", "extra"])
    assert r.returncode == 0, r.stderr
    return db


def unlabelled(tmp: Path, i: int, n: int) -> Path:
    path = tmp / f"fresh{i}.csv"
    with path.open("w") as f:
        f.write("text\n")
        for j in range(n):
            f.write(f"round {i} question {j}: can I see my payslip or book a holiday {j * 7919 % 1000}\n")
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=5, help="kills of each kind")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--rows", type=int, default=200_000, help="rows of the big import that is killed")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="routelab-faults-") as d:
        tmp = Path(d)
        db = build_workspace(tmp)
        inputs = hostile_inputs(tmp, db)
        kills = {"import": [], "export": [], "label": [], "review": []}
        shown = lost = 0
        for i in range(a.kills):
            big = big_csv(tmp, i, a.rows)
            kills["import"].append((kill_at_random(["import", big, "--db", db, "--source", f"big{i}"], rng, 0.7, 2.5),
                                    healthy(db)))
            kills["export"].append((kill_at_random(["export", "--out", tmp / "out", "--db", db], rng, 0.3, 2.0),
                                    healthy(db)))
            fresh = unlabelled(tmp, i, 4000)  # work for the labeler: questions with no proposal yet
            assert run(["import", fresh, "--db", db, "--source", f"fresh{i}"]).returncode == 0
            kills["label"].append((kill_at_random(["label", "--provider", "local", "--db", db], rng, 0.5, 3.0),
                                   healthy(db)))
            n, gone = kill_reviewer(db, rng, hold=i % 2 == 0)
            shown, lost = shown + n, lost + gone
            kills["review"].append((True, healthy(db)))
        out = {
            "bench": "faults",
            "seed": a.seed,
            "inputs_tried": len(inputs),
            "inputs_ok": sum(c["ok"] for c in inputs),
            "inputs": inputs,
            "kills": {k: {"tries": len(v), "killed_running": sum(alive for alive, _ in v),
                          "survived": sum(ok for _, ok in v)} for k, v in kills.items()},
            "kills_survived": sum(ok for v in kills.values() for _, ok in v),
            "kills_tried": sum(len(v) for v in kills.values()),
            "decisions_shown_as_made": shown,
            "decisions_lost": lost,
            "seconds": round(time.monotonic() - t0, 1),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
