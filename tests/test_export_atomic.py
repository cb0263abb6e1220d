"""An export directory is replaced whole or not at all: kill -9 mid-write, leftovers, refusals."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from routelab.services.export import ExportOptions, build_export, export_dataset, write_export
from routelab.services.importing import import_file

ACTIONS = ["get_policy", "book_holiday", "get_payslip", "escalate"]


def _workspace(store, tmp_path: Path, n: int) -> None:
    path = tmp_path / "q.csv"
    with path.open("w") as f:
        f.write("text,label\n")
        for i in range(n):
            f.write(f"question number {i} about {ACTIONS[i % 4].replace('_', ' ')} and more words,{ACTIONS[i % 4]}\n")
    assert import_file(store, path).added == n


def _complete(out: Path) -> str:
    """Assert `out` holds one complete export (report.json's checksums match its files); its digest."""
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "train.jsonl", "validation.jsonl"]
    report = json.loads((out / "report.json").read_text())
    digest = hashlib.sha256()
    for part in ("train", "validation"):
        data = (out / f"{part}.jsonl").read_bytes()
        info = report["files"][part]
        assert hashlib.sha256(data).hexdigest() == info["sha256"], part
        assert len(data) == info["bytes"] and data.count(b"\n") == info["lines"] == report[part]["examples"]
        digest.update(data)
        if part == "train":
            digest.update(b"\x00")
    assert digest.hexdigest() == report["digest"]
    return report["digest"]


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name != "out")


def _started(out: Path, name: str):
    """Has the export begun writing `name` somewhere other than its final place (a temporary)?"""
    def seen() -> bool:
        for root, _dirs, files in os.walk(out.parent):
            for f in files:
                if name in f and Path(root, f) != out / name:
                    return True
        return False
    return seen


def _export(db: Path, out: Path, val_fraction: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "routelab", "--db", str(db), "export", "--out", str(out),
                             "--val-fraction", str(val_fraction)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ})


def _kill_when(proc: subprocess.Popen, condition, timeout: float = 60) -> bool:
    """kill -9 as soon as `condition` holds; False if the export finished first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the export never started writing"
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return True


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9")
def test_kill_9_mid_write_leaves_the_old_or_the_new_export_and_the_next_cleans_up(store, tmp_path):
    _workspace(store, tmp_path, 30_000)
    store.close()
    out = tmp_path / "exports" / "out"
    proc = _export(store.path, out, 0.1)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    before = _complete(out)
    kills = 0
    for fraction, trigger in ((0.2, "train.jsonl"), (0.3, "validation.jsonl"), (0.4, "report.json")):
        # what this export writes when nobody kills it (elsewhere): the only other whole state allowed
        whole = tmp_path / "exports" / f"whole-{fraction}"
        assert _export(store.path, whole, fraction).wait(timeout=120) == 0
        proc = _export(store.path, out, fraction)  # more in validation: new files, so replacing matters
        killed = _kill_when(proc, _started(out, trigger))
        kills += killed
        now = _complete(out)  # whole, never a new train.jsonl beside an old report.json
        assert now in (before, _complete(whole))  # the old export, or (killed after the swap) the new one
        before = now
    assert kills >= 2, "the export finished before it could be killed: make the workspace bigger"
    proc = _export(store.path, out, 0.5)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()
    _complete(out)
    assert [n for n in _leftovers(out.parent) if not n.startswith("whole-")] == []  # the killed ones' temporaries


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_the_next_export_removes_what_a_killed_one_left(demo_store, tmp_path):
    out = tmp_path / "exports" / "out"
    export_dataset(demo_store, out)
    first = _complete(out)
    pid = _dead_pid()
    parent = out.parent
    (parent / f".out.routelab-tmp-{pid}-1").mkdir()
    (parent / f".out.routelab-tmp-{pid}-1" / "train.jsonl").write_text("half a file")
    (out / ".train.jsonl.abc123.tmp").write_text("what an older routelab left when killed")
    export_dataset(demo_store, out, ExportOptions(seed=5))
    assert _leftovers(parent) == [] and _complete(out) != first


def test_a_kill_between_the_two_renames_is_undone(demo_store, tmp_path):
    """Killed after the old export was renamed aside and before the new one was renamed in."""
    out = tmp_path / "exports" / "out"
    export_dataset(demo_store, out)
    old = _complete(out)
    pid = _dead_pid()
    out.rename(out.parent / f".out.routelab-old-{pid}-1")
    (out.parent / f".out.routelab-tmp-{pid}-2").mkdir()  # the complete new one, never renamed in
    ex = build_export(demo_store, ExportOptions(), beside=out)  # any export there starts by cleaning up
    assert _complete(out) == old and _leftovers(out.parent) == [ex.dir.name]
    write_export(demo_store, ex, out)
    assert _complete(out) == old and _leftovers(out.parent) == []  # same data: reused


def test_a_live_exports_temporaries_are_left_alone(demo_store, tmp_path):
    out = tmp_path / "exports" / "out"
    busy = out.parent / f".out.routelab-tmp-{os.getppid()}-1"  # our parent process is alive
    busy.mkdir(parents=True)
    export_dataset(demo_store, out)
    assert busy.is_dir()


def test_a_directory_with_other_files_is_refused(demo_store, tmp_path, run_cli):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    r = run_cli("--db", demo_store.path, "export", "--out", out)
    assert r.code == 2 and "not part of an export (notes.txt)" in r.err and "new or empty directory" in r.err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    r = run_cli("--db", demo_store.path, "export", "--out", out / "notes.txt")
    assert r.code == 2 and "is not a directory" in r.err
    assert not [n for n in os.listdir(tmp_path) if "routelab-" in n or n.endswith("-exports")]


def test_an_unwritten_export_leaves_nothing_behind(demo_store, tmp_path):
    before = sorted(os.listdir(tmp_path))
    ex = build_export(demo_store)
    assert ex.dir.is_dir() and ex.data("train")
    ex.discard()
    build_export(demo_store)  # dropped without a word: collected
    import gc

    gc.collect()
    assert sorted(os.listdir(tmp_path)) == before


def test_bad_input_leaves_no_staging_behind(store, tmp_path, run_cli):
    out = tmp_path / "exports" / "out"
    r = run_cli("--db", store.path, "export", "--out", out)
    assert r.code == 2 and "only 0 training examples" in r.err
    assert not out.parent.exists()  # not even the folder made for it


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second file system")
def test_an_export_written_to_another_file_system(demo_store, tmp_path):
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        if os.stat(other).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same file system here")
        ex = build_export(demo_store)  # staged beside the workspace
        result = write_export(demo_store, ex, Path(other) / "out")
        _complete(result.out_dir)
        assert _leftovers(Path(other)) == [] and not (tmp_path / "demo-exports").exists()


@pytest.mark.parametrize("direct", [True, False], ids=["direct-io", "page-cache"])
def test_big_files_are_written_exactly_with_or_without_direct_io(tmp_path, monkeypatch, direct):
    """Direct I/O goes in whole blocks: odd chunk sizes, a chunk bigger than the buffer, an empty file."""
    import random

    from routelab.services import export_sink

    if not direct:  # as on a file system that refuses O_DIRECT
        monkeypatch.setattr(export_sink, "_DIRECT", 0)
    rng = random.Random(1)
    odd = [5000, 3, 4 << 20, (9 << 20) + 7, 12345]
    for sizes in ([], [1], [4096], odd, [rng.randint(1, 70_000) for _ in range(300)]):
        chunks = [rng.randbytes(n) for n in sizes]
        h = hashlib.sha256()
        path = tmp_path / "big.jsonl"
        with export_sink.ChunkWriter(path, [h]) as w:
            for c in chunks:
                w.put(c)
        data = b"".join(chunks)
        assert path.read_bytes() == data and h.hexdigest() == hashlib.sha256(data).hexdigest()
