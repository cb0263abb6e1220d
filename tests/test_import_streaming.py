"""Big imports: parsed in a worker process while the store writes, still all or nothing.

Files here are bigger than WORKER_MIN_BYTES, so the real worker process runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from routelab.domain import BadInput
from routelab.services.importing import WORKER_MIN_BYTES, import_file
from routelab.services.offload import iterate_in_process
from routelab.services.parsing import QuestionFile, row_chunks
from routelab.store import ExampleFilter, Store
from tests.test_importers import snapshot

ACTIONS = ["get_policy", "book_holiday", "get_payslip", "escalate"]


def big_csv(path: Path, rows: int, *, last: str | None = None, label_every: int = 10) -> Path:
    """`rows` distinct questions (a few repeated), every tenth labelled; `last` appended as is."""
    with path.open("w") as f:
        f.write("text,label\n")
        for i in range(rows):
            label = ACTIONS[i % 4] if i % label_every == 0 else ""
            f.write(f"question number {i % (rows - 3)} about my annual leave allowance and my pay slip for last month,{label}\n")
        if last is not None:
            f.write(last + "\n")
    return path


def test_the_worker_yields_what_parsing_here_yields(tmp_path):
    qf = QuestionFile.open(big_csv(tmp_path / "q.csv", 70_000))
    assert qf.size >= WORKER_MIN_BYTES
    here = list(row_chunks(qf))
    there = list(iterate_in_process(row_chunks, qf))
    assert there == here
    assert len(here) > 2 and here[-1].fraction == 1.0
    assert [c.fraction for c in here] == sorted(c.fraction for c in here)


def test_big_file_imports_once_and_is_searchable(store, tmp_path):
    path = big_csv(tmp_path / "q.csv", 70_000)
    seen: list[float] = []
    r = import_file(store, path, progress=lambda fraction, rows: seen.append(fraction))
    assert (r.read, r.added, r.repeated, r.existing) == (70_000, 69_997, 3, 0)
    assert r.labelled == 7_000
    assert len(seen) > 2 and seen[-1] == 1.0
    assert store.count(ExampleFilter(query="number 69996")) == 1  # the last chunk is in the FTS index
    assert store.counts_by("status")["reviewed"] == 7_000
    decisions = store.conn.execute("SELECT COUNT(*) FROM decisions WHERE kind = 'import'").fetchone()[0]
    assert decisions == 7_000
    # every index is back after the bulk path
    names = {n for (n,) in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"examples_hash", "examples_status", "examples_source", "examples_split", "examples_label"} <= names
    again = import_file(store, path)
    assert (again.added, again.existing, again.repeated) == (0, 69_997, 3)


def test_bad_line_at_the_end_of_a_big_file_changes_nothing(run_cli, store, tmp_path):
    path = big_csv(tmp_path / "q.csv", 70_000, last='"unterminated,get_policy')
    store.close()
    before = snapshot(store.path)
    r = run_cli("--db", store.path, "import", path)
    assert r.code == 2 and r.err.count("\n") == 1, r
    assert f"{path}: line 70002: unterminated quote" in r.err
    assert snapshot(store.path) == before


def test_unknown_labels_anywhere_in_a_big_file_are_all_named(store, tmp_path):
    path = big_csv(tmp_path / "q.csv", 70_000, last="one more question,brand_new_action")
    with pytest.raises(BadInput, match=r"q\.csv: label not in the action catalog: brand_new_action"):
        import_file(store, path)
    assert store.count() == 0
    r = import_file(store, path, create_actions=True)
    assert r.actions_created == ["brand_new_action"] and r.added == 69_998


def test_a_fresh_workspace_is_not_left_behind_by_a_failed_big_import(run_cli, tmp_path):
    db = tmp_path / "new.db"
    r = run_cli("--db", db, "import", big_csv(tmp_path / "q.csv", 70_000, last="   ,get_policy"), "--create-actions")
    assert r.code == 2 and 'line 70002: field "text": empty text' in r.err and not db.exists()


def _workers() -> set[int]:
    """Live worker processes on this machine (Linux: read /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"routelab.services.offload" in cmdline and state != "Z":
            found.add(int(entry.name))
    return found


def _wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the worker through /proc")
def test_abandoning_the_iteration_stops_the_worker(tmp_path):
    qf = QuestionFile.open(big_csv(tmp_path / "q.csv", 70_000))
    chunks = iterate_in_process(row_chunks, qf)
    next(chunks)
    assert _workers()
    chunks.close()
    assert not _workers()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the worker through /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_interrupted_big_import_changes_nothing_and_leaves_no_worker(store, tmp_path, sig):
    path = big_csv(tmp_path / "q.csv", 600_000)
    store.close()
    before = snapshot(store.path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "routelab", "--db", str(store.path), "import", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )
    try:
        _wait_until(lambda: _workers() or proc.poll() is not None, "the worker to start")
        workers = _workers()
        time.sleep(1.0)  # into the writing (600k rows take several seconds)
        assert workers and proc.poll() is None
    finally:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and err.count("\n") == 1 and "nothing was imported" in err, err
    _wait_until(lambda: not (workers & _workers()), "the worker to exit")
    assert snapshot(store.path) == before
    with Store.open(store.path) as s:
        assert s.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert import_file(s, big_csv(tmp_path / "small.csv", 100)).added == 97  # and the next import works


def test_the_worker_loads_no_workspace_code():
    """The worker imports only parsing and the domain: it starts fast and never opens the workspace."""
    code = (
        "import sys, routelab.services.offload, routelab.services.parsing; "
        "print(sorted(m for m in sys.modules if m.startswith(('routelab.store', 'sqlite', 'textual', 'openai'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
