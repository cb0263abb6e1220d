"""A long writer beside the app and the CLI: another real process holds the workspace's write
lock (as a big import does, in its one transaction) while decisions are taken.

The holder is a second Python process that opens the workspace and runs BEGIN IMMEDIATE;
the app is driven with Pilot, the review session service directly, or in a subprocess
that is killed -9. Every decision shown as made must reach the store, once, on the
question it was taken on.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from routelab.config import settings as load_settings
from routelab.domain import DecisionKind, Status
from routelab.services.decision_journal import DecisionJournal, apply_journal, journal_path, new_entry
from routelab.services.review_session import ReviewSession
from routelab.store import ExampleFilter, Store
from routelab.tui.app import RoutelabApp
from tests.test_tui_review import SIZE, operator_decisions, seed, started

HOLD = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO settings (key, value) VALUES ('held', 'yes') ON CONFLICT (key) DO NOTHING")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.execute("COMMIT")
    print("released", flush=True)
""")


class LockHolder:
    """Another process holding the workspace's write lock until `release()`."""

    def __init__(self, db_path: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db_path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            assert self.proc.stdout.readline().strip() == "released"
            self.proc.wait(timeout=10)


@pytest.fixture
def holder(db_path):
    made: list[LockHolder] = []

    def hold() -> LockHolder:
        made.append(LockHolder(db_path))
        return made[-1]

    yield hold
    for h in made:
        if h.proc.poll() is None:
            h.proc.kill()
            h.proc.wait()


def wait_until(check, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def stored(db_path: Path) -> list[tuple]:
    with Store.open(db_path) as s:
        return operator_decisions(s)


def test_decisions_wait_for_another_writer_then_all_land(store, db_path, holder, monkeypatch):
    monkeypatch.setenv("ROUTELAB_BUSY_TIMEOUT", "20")
    ids = seed(store)
    session = ReviewSession.open(db_path, load_settings())
    try:
        h = holder()
        t0 = time.monotonic()
        d0 = session.decide(ids[0], DecisionKind.ACCEPT, "get_payslip", "gpt-4.1")
        session.decide(ids[1], DecisionKind.SKIP)
        session.decide(ids[2], DecisionKind.OVERRIDE, "escalate")
        assert time.monotonic() - t0 < 10  # never waited for the lock (the busy timeout is 20 s)
        assert d0.example.status == Status.REVIEWED and d0.example.label == "get_payslip"  # shown as made
        # reads go on while the other process writes (WAL): counts, pages, the rows as made
        assert session.fresh_status_counts() == {"unreviewed": 8}
        assert [e.id for e in session.page(ExampleFilter(status=Status.UNREVIEWED))] == ids[3:]
        wait_until(lambda: session.journal_state().waiting_for is not None)
        state = session.journal_state()
        assert state.pending == 3 and f"pid {h.pid}" in state.waiting_for
        assert state.describe().startswith("3 decisions pending, saved: waiting for another process")
        assert stored(db_path) == []  # nothing in the store yet...
        h.release()
        wait_until(lambda: session.journal_state().pending == 0 and len(stored(db_path)) == 3)
        assert stored(db_path) == [(ids[0], "accept", "get_payslip", "gpt-4.1"), (ids[1], "skip", None, None),
                                   (ids[2], "override", "escalate", None)]
        assert journal_path(db_path).stat().st_size == 0  # applied, then emptied
        assert session.journal_state().describe() is None
    finally:
        session.close()


def test_undo_of_a_pending_decision_never_reaches_the_store(store, db_path, holder):
    ids = seed(store)
    session = ReviewSession.open(db_path, load_settings())
    try:
        h = holder()
        session.decide(ids[0], DecisionKind.FLAG)
        session.decide(ids[1], DecisionKind.SKIP)
        undone = session.undo()
        assert undone.example.id == ids[1] and undone.example.status == Status.UNREVIEWED
        assert undone.before == Status.SKIPPED
        assert session.example(ids[1]).status == Status.UNREVIEWED
        wait_until(lambda: session.journal_state().pending == 1)
        h.release()
        wait_until(lambda: session.journal_state().pending == 0 and stored(db_path))
        with Store.open(db_path) as s:
            rows = s.conn.execute("SELECT example_id, kind FROM decisions WHERE kind != 'import'").fetchall()
        assert rows == [(ids[0], "flag")]  # the undone skip was never written, nor its undo
    finally:
        session.close()


def test_a_journal_replayed_twice_writes_each_decision_once(store, db_path):
    ids = seed(store)
    journal = DecisionJournal(db_path)
    first = [new_entry("decide", ids[0], kind="accept", action="get_payslip", model="gpt-4.1"),
             new_entry("decide", ids[1], kind="skip")]
    for e in first:
        journal.append(e)
    assert not apply_journal(store, journal, wait=True).locked
    journal.append(new_entry("cancel", ids[0], target=first[0].id))  # undone once it was in the store
    saved = journal.path.read_bytes()
    apply_journal(store, journal, wait=True)
    for e in first:  # a crash before truncation, then a torn line
        journal.append(e)
    with journal.path.open("ab") as f:
        f.write(saved + b'{"id": "torn", "op": "dec')
    apply_journal(store, journal, wait=True)
    rows = store.conn.execute("SELECT example_id, kind FROM decisions WHERE kind != 'import' ORDER BY id").fetchall()
    assert rows == [(ids[0], "accept"), (ids[1], "skip"), (ids[0], "undo")]
    assert store.example(ids[0]).status == Status.UNREVIEWED and store.example(ids[1]).status == Status.SKIPPED


async def test_the_app_keeps_going_while_another_process_writes(store, db_path, holder, monkeypatch):
    monkeypatch.setenv("ROUTELAB_BUSY_TIMEOUT", "20")
    ids = seed(store)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        h = holder()
        on_screen = []
        for key in ("enter", "enter", "s"):
            on_screen.append(pane.shown.id)
            t0 = time.monotonic()
            await pilot.press(key)
            assert time.monotonic() - t0 < 10  # no freeze: the busy timeout (20 s) was never waited
        assert on_screen == ids[:3] and pane.shown.id == ids[3]
        wait = app.query_one("#review-wait")
        for _ in range(150):
            await pilot.pause(0.1)
            if wait.display and "pid" in str(wait.render()):
                break
        assert wait.display
        said = str(wait.render())
        assert "3 decisions pending" in said and "waiting for another process" in said and f"pid {h.pid}" in said
        assert stored(db_path) == []
        h.release()
        for _ in range(150):
            await pilot.pause(0.1)
            if not wait.display:
                break
        assert not wait.display
        # each key went to the question on screen when it was pressed
        assert [(e, k) for e, k, _, _ in stored(db_path)] == [(ids[0], "accept"), (ids[1], "accept"),
                                                               (ids[2], "skip")]
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert pane.shown.id == ids[3]
    assert app.return_code in (None, 0)


KILLED_REVIEWER = textwrap.dedent("""
    import sys, time
    from routelab.config import settings
    from routelab.domain import DecisionKind
    from routelab.services.review_session import ReviewSession
    session = ReviewSession.open(sys.argv[1], settings())
    for example_id in map(int, sys.argv[2:]):
        session.decide(example_id, DecisionKind.FLAG)
        print(example_id, flush=True)  # shown as made
    time.sleep(600)
""")


def test_decisions_shown_as_made_survive_kill_9_while_waiting_for_the_lock(store, db_path, holder):
    ids = seed(store)
    h = holder()
    child = subprocess.Popen([sys.executable, "-c", KILLED_REVIEWER, str(db_path), *map(str, ids[:5])],
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    shown = [int(child.stdout.readline()) for _ in range(5)]
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert stored(db_path) == []
    h.release()
    session = ReviewSession.open(db_path, load_settings())  # a new session applies the journal left behind
    try:
        wait_until(lambda: len(stored(db_path)) == 5)
    finally:
        session.close()
    assert [e for e, *_ in stored(db_path)] == shown == ids[:5]  # 0 lost, none twice


def test_cli_writer_blocked_past_the_busy_timeout_names_the_holder(store, db_path, holder, run_cli, monkeypatch,
                                                                   tmp_path):
    seed(store)
    store.close()
    monkeypatch.setenv("ROUTELAB_BUSY_TIMEOUT", "0.3")
    data = tmp_path / "more.csv"
    data.write_text("text\nwhere is the canteen\n")
    h = holder()
    r = run_cli("import", data, "--db", db_path)
    assert r.code == 1, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "OperationalError" not in r.err and "internal error" not in r.err
    assert f"pid {h.pid}" in r.err and "busy" in r.err and "ROUTELAB_BUSY_TIMEOUT" in r.err
    h.release()
    assert run_cli("import", data, "--db", db_path).code == 0


def test_a_bad_busy_timeout_is_bad_input(db_path, run_cli, monkeypatch):
    monkeypatch.setenv("ROUTELAB_BUSY_TIMEOUT", "soon")
    r = run_cli("init", "--db", db_path)
    assert r.code == 2 and "ROUTELAB_BUSY_TIMEOUT" in r.err
    assert not db_path.exists()


def test_cli_commands_apply_a_journal_left_behind_first(store, db_path, run_cli):
    ids = seed(store)
    store.close()
    DecisionJournal(db_path).append(new_entry("decide", ids[0], kind="skip"))  # as a killed app left it
    r = run_cli("accept", "--model", "gpt-4.1", "--min-confidence", "0.9", "--dry-run", "--db", db_path)
    assert r.code == 0 and "would accept 3 " in r.out  # ids[0] (0.95) is skipped, not unreviewed
    assert stored(db_path) == [(ids[0], "skip", None, None)]


def test_cli_says_when_it_cannot_apply_the_journal_yet(store, db_path, holder, run_cli):
    ids = seed(store)
    store.close()
    DecisionJournal(db_path).append(new_entry("decide", ids[0], kind="skip"))
    holder()
    r = run_cli("accept", "--model", "gpt-4.1", "--dry-run", "--db", db_path)
    assert r.code == 0 and "1 review decision in" in r.err and "does not see them" in r.err


def test_a_session_opened_while_the_lock_is_held_shows_leftover_decisions_as_made(store, db_path, holder):
    ids = seed(store)
    DecisionJournal(db_path).append(new_entry("decide", ids[0], kind="flag"))  # as a killed app left it
    h = holder()
    session = ReviewSession.open(db_path, load_settings())
    try:
        assert session.example(ids[0]).status == Status.FLAGGED
        assert [e.id for e in session.page(ExampleFilter(status=Status.UNREVIEWED))] == ids[1:]
        h.release()
        wait_until(lambda: stored(db_path) == [(ids[0], "flag", None, None)])
    finally:
        session.close()


def test_a_real_import_holds_the_lock_and_the_wait_names_it(store, db_path, tmp_path):
    ids = seed(store)
    big = tmp_path / "big.csv"
    with big.open("w") as f:
        f.write("text\n")
        f.writelines(f"question {i} about payslips and holidays\n" for i in range(300_000))
    session = ReviewSession.open(db_path, load_settings())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "routelab", "import", str(big), "--db", str(db_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        from routelab.store.locks import lock_holders

        wait_until(lambda: [pid for pid, _ in lock_holders(db_path)] == [proc.pid] or proc.poll() is not None)
        assert proc.poll() is None, "the import finished before the test could decide beside it"
        session.decide(ids[0], DecisionKind.FLAG)
        session.decide(ids[1], DecisionKind.SKIP)
        wait_until(lambda: session.journal_state().waiting_for is not None)
        said = session.journal_state().describe()
        # the import may have let a decision through between its small writes and its one big transaction
        assert re.match(r"[12] decisions? pending, saved: waiting for an import in another process", said), said
        assert f"pid {proc.pid}: routelab import" in said
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
        wait_until(lambda: session.journal_state().pending == 0 and len(stored(db_path)) == 2)
        assert stored(db_path) == [(ids[0], "flag", None, None), (ids[1], "skip", None, None)]
        with Store.open(db_path) as s:
            assert s.count(ExampleFilter()) == 8 + 300_000  # the import is whole: all or nothing
    finally:
        session.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_journal_never_lands_on_another_question(store, db_path):
    ids = seed(store)
    journal = DecisionJournal(db_path)
    journal.append(new_entry("decide", ids[0], kind="flag", question="not-this-question"))  # a workspace made anew
    journal.append(new_entry("decide", ids[1], kind="flag", question=store.example(ids[1]).hash))
    apply_journal(store, journal, wait=True)
    assert operator_decisions(store) == [(ids[1], "flag", None, None)]


def test_the_holder_is_named_by_what_it_runs():
    from routelab.store.locks import describe_holders

    assert describe_holders([(12, "routelab import big.csv --db ws.db")]) == (
        "an import in another process (pid 12: routelab import big.csv --db ws.db)")
    assert describe_holders([(12, "python -c import sqlite3")]) == "another process (pid 12: python -c import sqlite3)"
    assert describe_holders([]) == "another process"
