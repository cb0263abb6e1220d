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


HOSTILE_LAST_LINES = {  # each was an internal error (exit 1) from the worker
    "deep nesting": (b'{"text": ' + b"[" * 100_000 + b"}", "line 70001: JSON nested too deeply"),
    "lone surrogate": (b'{"text": "hi \\ud800"}', 'line 70001: field "text": a lone surrogate'),
}


@pytest.mark.parametrize("case", list(HOSTILE_LAST_LINES), ids=list(HOSTILE_LAST_LINES))
def test_hostile_input_in_the_worker_is_bad_input_too(run_cli, store, tmp_path, case):
    last, expected = HOSTILE_LAST_LINES[case]
    path = tmp_path / "q.jsonl"
    with path.open("wb") as f:
        for i in range(70_000):
            f.write(b'{"text": "question number %d about my annual leave allowance and my pay slip"}\n' % i)
        f.write(last + b"\n")
    assert path.stat().st_size >= WORKER_MIN_BYTES
    store.close()
    before = snapshot(store.path)
    r = run_cli("--db", store.path, "import", path)
    assert r.code == 2 and r.err.count("\n") == 1 and f"{path}: {expected}" in r.err, r
    assert snapshot(store.path) == before
    fresh = tmp_path / "new.db"
    assert run_cli("--db", fresh, "import", path).code == 2 and not fresh.exists()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="measures memory through /proc")
def test_a_file_too_big_for_memory_is_bad_input_from_the_worker(tmp_path):
    """Memory limited to a little over what the CLI itself uses: the worker cannot read the file."""
    path = tmp_path / "huge.csv"
    with path.open("w") as f:
        f.write("text\n" + "a question about my leave\n" * 100_000)
        f.truncate(1 << 30)  # sparse: a GiB on paper, nothing on disk
    code = (
        "import resource, sys; from routelab.cli import main; import routelab.services.importing, routelab.store\n"
        "vm = int(next(ln for ln in open('/proc/self/status') if ln.startswith('VmSize')).split()[1]) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20),) * 2)\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    db = tmp_path / "new.db"
    r = subprocess.run([sys.executable, "-c", code, "--db", str(db), "import", str(path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"{path}: too big to read into memory (1,024 MiB)" in r.stderr
    assert not db.exists()


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _workers_of(parent: int) -> set[tuple[int, str]]:
    """The live worker processes `parent` started, as (pid, start time): other processes on the
    machine (another test run's workers) are none of ours. Linux has no portable child list
    (/proc/PID/task/*/children needs CONFIG_PROC_CHILDREN), so children are found by parent pid."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ours = fields is not None and int(fields[1]) == parent and fields[0] != "Z"
        if ours and b"routelab.services.offload" in cmdline.split(b"\0"):  # an argument, not in a shell line
            found.add((int(entry.name), fields[19]))  # field 22 of stat: start time, against pid reuse
    return found


def _running(worker: tuple[int, str]) -> bool:
    """Whether this very process (not a later one with its pid) still runs."""
    fields = _stat(worker[0])
    return fields is not None and fields[19] == worker[1] and fields[0] != "Z"


def _wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def decoy_worker():
    """Another run's worker on the same machine (a grandchild, as another pytest's would be):
    it must not be taken for ours. It waits for a job on stdin until we close it."""
    decoy = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -m routelab.services.offload; true'],
                             stdin=subprocess.PIPE)
    yield decoy
    decoy.stdin.close()
    decoy.wait(timeout=30)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the worker through /proc")
def test_abandoning_the_iteration_stops_the_worker(tmp_path, decoy_worker):
    qf = QuestionFile.open(big_csv(tmp_path / "q.csv", 70_000))
    chunks = iterate_in_process(row_chunks, qf)
    next(chunks)
    workers = _workers_of(os.getpid())
    assert len(workers) == 1
    chunks.close()
    assert not any(_running(w) for w in workers)
    assert decoy_worker.poll() is None  # still running, and it did not count


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the worker through /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_interrupted_big_import_changes_nothing_and_leaves_no_worker(store, tmp_path, sig, decoy_worker):
    path = big_csv(tmp_path / "q.csv", 600_000)
    store.close()
    before = snapshot(store.path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "routelab", "--db", str(store.path), "import", str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ},
    )
    try:
        _wait_until(lambda: _workers_of(proc.pid) or proc.poll() is not None, "the worker to start")
        workers = _workers_of(proc.pid)
        time.sleep(1.0)  # into the writing (600k rows take several seconds)
        assert workers and proc.poll() is None
    finally:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and err.count("\n") == 1 and "nothing was imported" in err, err
    _wait_until(lambda: not any(_running(w) for w in workers), "the worker to exit")
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
