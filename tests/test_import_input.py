"""Import from streams (pipes, FIFOs, stdin) and text kept as given, through export and routing.

Streams go through the real CLI in a subprocess, so stdin, a FIFO and the spool in TMPDIR
are the real ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from routelab.domain import content_hash
from routelab.services.spool import PREFIX, SUFFIX
from routelab.store import ExampleFilter, Store
from tests.test_import_streaming import big_csv
from tests.test_importers import snapshot

ROWS = 34_981  # the file: a pipe lost 14,981 of these


def jsonl(path: Path, rows: int = ROWS) -> Path:
    with path.open("w") as f:
        for i in range(rows):
            f.write(json.dumps({"text": f"question number {i} about the leave policy and my payslip"}) + "\n")
    return path


@pytest.fixture
def spool_dir(tmp_path, monkeypatch) -> Path:
    """TMPDIR for the commands run here: where a stream's copy goes, and must not stay."""
    d = tmp_path / "tmpdir"
    d.mkdir()
    monkeypatch.setenv("TMPDIR", str(d))
    return d


def routelab(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "routelab", *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kw)


def piped(source: Path, *args) -> subprocess.CompletedProcess:
    """`cat SOURCE | routelab ARGS`: a real pipe, which can be read only once."""
    cat = subprocess.Popen(["cat", str(source)], stdout=subprocess.PIPE)
    try:
        return routelab(*args, stdin=cat.stdout)
    finally:
        cat.stdout.close()
        cat.wait()


@pytest.mark.parametrize("name", ["/dev/stdin", "-"])
def test_a_pipe_is_read_once_and_no_row_is_lost(tmp_path, spool_dir, name):
    db = tmp_path / "ws.db"
    r = piped(jsonl(tmp_path / "big.jsonl"), "--db", db, "import", name)
    assert r.returncode == 0, r.stderr
    assert f"read {ROWS}, added {ROWS}" in r.stdout
    assert r.stdout.startswith("<stdin>: " if name == "-" else "/dev/stdin: ")
    assert r.stderr == ""  # not a terminal: no progress, no waiting message
    with Store.open(db) as s:
        assert s.count() == ROWS
    assert list(spool_dir.iterdir()) == []  # the copy is gone


def test_a_big_pipe_is_parsed_by_the_worker_from_its_copy(tmp_path, spool_dir):
    db = tmp_path / "ws.db"
    r = piped(big_csv(tmp_path / "q.csv", 70_000), "--db", db, "import", "-", "--create-actions")  # a worker parses it
    assert r.returncode == 0, r.stderr
    assert "read 70000, added 69997" in r.stdout and "7000 added with labels" in r.stdout
    assert list(spool_dir.iterdir()) == []


def test_a_bad_line_in_a_pipe_names_stdin_and_leaves_nothing(tmp_path, spool_dir):
    db = tmp_path / "ws.db"
    r = piped(big_csv(tmp_path / "q.csv", 70_000, last='"unterminated,get_policy'), "--db", db, "import", "-")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "<stdin>: line 70002: unterminated quote" in r.stderr
    assert not db.exists() and list(spool_dir.iterdir()) == []


def test_a_copy_left_by_a_killed_import_is_removed_by_the_next(tmp_path, spool_dir):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = spool_dir / f"{PREFIX}{int(gone.stdout)}-abc{SUFFIX}"
    stale.write_text("text\nleft behind\n")
    alive = spool_dir / f"{PREFIX}{os.getpid()}-def{SUFFIX}"  # an import still running (this process)
    alive.write_text("text\nin use\n")
    recent = spool_dir / f"{PREFIX}{int(gone.stdout)}-ghi{SUFFIX}"  # maybe another pid namespace's
    recent.write_text("text\njust made\n")
    hours_ago = time.time() - 2 * 3600
    for f in (stale, alive):
        os.utime(f, (hours_ago, hours_ago))
    r = piped(jsonl(tmp_path / "q.jsonl", 10), "--db", tmp_path / "ws.db", "import", "-")
    assert r.returncode == 0, r.stderr
    assert sorted(spool_dir.iterdir()) == sorted([alive, recent])


class Terminal:
    """A pseudo-terminal for a child's stderr, read as it goes (so the child never blocks on it)."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        self.seen = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # the child closed its end
                    return
                if not data:
                    return
                self.seen += data

    def wait_for(self, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            assert time.monotonic() < deadline, f"no {text!r} on the terminal; saw {self.seen!r}"
            time.sleep(0.02)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_says_at_a_terminal_that_it_waits_then_reads_everything(tmp_path, spool_dir):
    fifo = tmp_path / "questions.jsonl"
    os.mkfifo(fifo)
    source = jsonl(tmp_path / "big.jsonl")
    db = tmp_path / "ws.db"
    term = Terminal()
    proc = subprocess.Popen([sys.executable, "-m", "routelab", "--db", str(db), "import", str(fifo)],
                            stdout=subprocess.PIPE, stderr=term.slave, stdin=subprocess.DEVNULL, text=True)
    os.close(term.slave)
    writer = None
    try:
        term.wait_for(b"waiting for input on " + str(fifo).encode())
        time.sleep(0.2)
        assert proc.poll() is None and not db.exists()  # still waiting for a writer; nothing made yet
        writer = subprocess.Popen(["sh", "-c", 'cat "$1" > "$2"', "sh", str(source), str(fifo)])
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
        if writer is not None:
            writer.wait(timeout=60)
    assert proc.returncode == 0, term.seen
    assert f"{fifo}: read {ROWS}, added {ROWS}" in out
    with Store.open(db) as s:
        assert s.count() == ROWS
    assert list(spool_dir.iterdir()) == []


def test_questions_typed_at_a_terminal_end_at_one_ctrl_d(tmp_path, spool_dir):
    db = tmp_path / "ws.db"
    term = Terminal()
    proc = subprocess.Popen([sys.executable, "-m", "routelab", "--db", str(db), "import", "-", "--format", "csv"],
                            stdout=subprocess.PIPE, stdin=term.slave, stderr=term.slave, text=True)
    os.close(term.slave)
    try:
        term.wait_for(b"type or paste the questions, then Ctrl-D")
        os.write(term.master, b"text\nI lost my card.  Help!\nsecond question\n\x04")  # \x04: Ctrl-D
        out, _ = proc.communicate(timeout=60)  # a second Ctrl-D was needed before
    finally:
        proc.kill()
    assert proc.returncode == 0 and "<stdin>: read 2, added 2" in out, term.seen
    with Store.open(db) as s:
        assert [e.text for e in s.page(ExampleFilter())] == ["I lost my card.  Help!", "second question"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_an_endless_device_is_bad_input_at_once(run_cli, store, tmp_path, fmt):
    store.close()
    before = snapshot(store.path)
    r = run_cli("--db", store.path, "import", "/dev/zero", "--format", fmt)
    assert r.code == 2 and r.err.count("\n") == 1, r
    assert "/dev/zero: line 1: not UTF-8 text (a NUL byte)" in r.err
    assert snapshot(store.path) == before
    fresh = tmp_path / "fresh.db"
    assert run_cli("--db", fresh, "import", "/dev/zero", "--format", fmt).code == 2 and not fresh.exists()


def test_an_endless_line_from_a_pipe_stops_at_the_line_bound(tmp_path, spool_dir):
    src = tmp_path / "one-line"
    src.write_bytes(b"text\n" + b"a" * (3 << 20))  # no newline after 3 MiB: as `yes | tr -d '\n'` would be
    db = tmp_path / "ws.db"
    r = piped(src, "--db", db, "import", "-", "--format", "csv")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "<stdin>: line 2: line longer than 1024 KiB" in r.stderr
    assert not db.exists() and list(spool_dir.iterdir()) == []


# ------------------------------------------------------------------ text as given

GIVEN = [
    "I lost my card.  Help!",
    "line one\nline two\n",
    "  indented\tand tabbed  ",
    "cafe\u0301 (decomposed, as typed on some keyboards)",
]
CLEANED = {  # control characters are the only thing taken out
    "escape\x1b[2J and bell\x07 gone": "escape[2J and bell gone",
    "windows\r\nline end": "windows\nline end",
}
ACTIONS = ["get_policy", "book_holiday", "get_payslip", "escalate"]


def _question_file(path: Path) -> Path:
    lines = [{"text": t, "label": ACTIONS[i % 4]} for i, t in enumerate([*GIVEN, *CLEANED])]
    lines += [{"text": f"plain question {i} about leave", "label": ACTIONS[i % 4]} for i in range(14)]
    lines.append({"messages": [{"role": "user", "content": "first  turn,\nsecond line"},
                               {"role": "assistant", "content": "Sure.  Which day?"},
                               {"role": "user", "content": "next  Friday"}], "action": "book_holiday"})
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_text_is_stored_exported_and_folded_only_for_identity(run_cli, store, tmp_path):
    store.close()
    f = _question_file(tmp_path / "q.jsonl")
    r = run_cli("--db", store.path, "import", f)
    assert r.code == 0, r
    expected = [*GIVEN, *CLEANED.values()]
    with Store.open(store.path) as s:
        texts = [e.text for e in s.page(ExampleFilter(), limit=100)]
        assert texts[: len(expected)] == expected
        chat = s.page(ExampleFilter(query="Friday"))[0]
        assert chat.text == "next  Friday" and chat.label == "book_holiday"  # the "action" key labels it
        assert [m.content for m in chat.conversation] == ["first  turn,\nsecond line", "Sure.  Which day?"]
    # identity is folded: the same words with other spacing (or composed) add nothing
    again = tmp_path / "again.jsonl"
    again.write_text('{"text": "I lost my card. Help!"}\n{"text": "line one line two"}\n'
                     '{"text": "caf\u00e9 (decomposed, as typed on some keyboards)"}\n')
    r = run_cli("--db", store.path, "import", again, "--json")
    assert r.code == 0 and json.loads(r.out)["existing"] == 3, r
    out = tmp_path / "export"
    r = run_cli("--db", store.path, "export", "--out", out)
    assert r.code == 0, r
    rows = [json.loads(ln) for name in ("train.jsonl", "validation.jsonl") if (out / name).exists()
            for ln in (out / name).read_text(encoding="utf-8").splitlines()]
    users = {m["content"] for row in rows for m in row["messages"] if m["role"] == "user"}
    assert set(expected) | {"next  Friday", "first  turn,\nsecond line"} <= users
    assert "Sure.  Which day?" in {m["content"] for row in rows for m in row["messages"] if m["role"] == "assistant"}


def test_hashes_of_existing_workspaces_keep_their_meaning():
    """Before text was kept as given, the stored (folded) text was hashed: the same value now."""
    import hashlib

    assert content_hash("I lost my card.  Help!") == hashlib.sha1(b"I lost my card. Help!").hexdigest()
    assert content_hash("line one\nline two\n") == content_hash("line one line two")


def test_the_teacher_and_route_get_the_exact_text(run_cli, store, fake_openai, tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"text": GIVEN[0]}) + "\n" + json.dumps({"text": GIVEN[1]}) + "\n")
    store.close()
    assert run_cli("--db", store.path, "import", f).code == 0
    r = run_cli("--db", store.path, "label", "--yes")
    assert r.code == 0, r
    asked = {[m for m in req["messages"] if m["role"] == "user"][-1]["content"] for req in fake_openai.chat_requests()}
    assert set(GIVEN[:2]) <= asked
    before = len(fake_openai.chat_requests())
    r = run_cli("--db", store.path, "route", GIVEN[1], "--model", "gpt-4.1")
    assert r.code == 0, r
    last = fake_openai.chat_requests()[before]
    assert [m for m in last["messages"] if m["role"] == "user"][-1]["content"] == GIVEN[1].strip()


def test_chat_lines_with_a_label_key(store, tmp_path):
    from routelab.services.importing import import_file

    f = tmp_path / "chat.jsonl"
    lines = [
        # a key, no answer: the key labels it (it was dropped before)
        {"messages": [{"role": "user", "content": "where is my payslip"}], "action": "get_payslip"},
        # a key and a reply that is no routing answer: the key labels it
        {"messages": [{"role": "user", "content": "book friday off"},
                      {"role": "assistant", "content": "Done, enjoy your day."}], "label": "book_holiday"},
        # a key and an answer that agree
        {"messages": [{"role": "user", "content": "what is the policy"},
                      {"role": "assistant", "content": '{"action": "get_policy"}'}], "action": "get_policy"},
    ]
    f.write_text("\n".join(json.dumps(x) for x in lines))
    r = import_file(store, f)
    assert (r.added, r.labelled) == (3, 3)
    assert {e.text: e.label for e in store.page(ExampleFilter())} == {
        "where is my payslip": "get_payslip", "book friday off": "book_holiday", "what is the policy": "get_policy",
    }


# ------------------------------------------------------------------ the copy's bounds


def _spool_pipe(data: bytes, **bounds):
    """Spool the read end of a real pipe (named through /dev/fd, as a shell's <(...) is)."""
    from routelab.services.spool import Spool

    read_end, write_end = os.pipe()

    def write() -> None:
        with open(write_end, "wb") as f, contextlib.suppress(BrokenPipeError):  # refused: we stop reading
            f.write(data)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        with Spool(f"/dev/fd/{read_end}") as spool:
            head = spool.head(bounds.pop("head", 1001))
            copy = spool.finish(**bounds)
            return head, copy.read_bytes(), copy
    finally:
        os.close(read_end)
        writer.join()


@pytest.mark.parametrize("lengths", [[1000] * 5, [999, 1000, 1, 0, 1000], [10] * 300, [2500 // 3] * 3])
def test_the_copy_is_exact_within_the_line_bound(spool_dir, lengths):
    data = b"\n".join(b"x" * n for n in lengths) + b"\n"
    head, copied, copy = _spool_pipe(data, max_line=1000)
    assert copied == data and data.startswith(head)
    copy.unlink()


@pytest.mark.parametrize("lengths, bad_line", [([1001], 1), ([10, 1001], 2), ([1000, 999, 1500, 3], 3),
                                                ([400] * 7 + [1001], 8)])
def test_the_first_line_over_the_bound_is_named(spool_dir, lengths, bad_line):
    from routelab.domain import BadInput

    data = b"\n".join(b"y" * n for n in lengths)
    with pytest.raises(BadInput, match=rf"^/dev/fd/\d+: line {bad_line}: line longer than 1000 bytes$"):
        _spool_pipe(data, max_line=1000)
    assert list(spool_dir.iterdir()) == []  # a refused copy is removed


def test_the_copy_of_one_document_is_bounded_in_size(spool_dir):
    from routelab.domain import BadInput

    with pytest.raises(BadInput, match="over 1 MiB, too big for one JSON document"):
        _spool_pipe(b"[" + b'"question", ' * 200_000, max_bytes=1 << 20)
    assert list(spool_dir.iterdir()) == []
