"""The decision journal: a reviewer's decisions are durable the moment a key is pressed,
and reach the workspace whenever its write lock is free.

Why a journal. An import is one transaction (all or nothing), so a 2M-row import holds
the workspace's write lock for minutes; a keypress that writes to SQLite then freezes the
app for up to the busy timeout and crashes it past that. Making long writers give the
lock up in short slices would break their all-or-nothing promise, and leave every other
writer still able to stall a keypress. So a decision is not written to SQLite on the key
path: it is appended to `WORKSPACE.db-decisions.jsonl` beside the workspace and fsynced
(measured here at about 0.2 ms, so on the UI thread, before the screen moves on: a
decision shown as made survives kill -9), the app then tries the store without waiting
(`BEGIN IMMEDIATE` with no busy timeout: the usual case, a millisecond), and if another
process holds the lock a background writer applies the pending entries when it frees,
in journal order. Each entry has a unique id stored with its decision
(`decisions.entry`, unique), so replaying a journal (after a crash between the commit
and the journal's truncation, or by two processes) writes nothing twice. An undo is an
entry too (`cancel`, naming the entry it undoes): a decision cancelled before it
reached the store is never written, one already stored gets its undo appended.
Applied entries are dropped by truncating the file once everything read from it is in
the store (never by renaming: another process may be appending to it).

Who applies: the review session (at once, and its writer thread while the lock is held;
on start for a journal left by a killed app) and the CLI before any command reads the
workspace (cli.Context.store), so `export` and `accept` see every decision shown as made.

Concurrency: appends and truncation take an flock on the journal (brief; never held
while waiting for SQLite); the SQLite write lock serialises appliers across processes,
and the entry ids make a second applier a no-op.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from routelab.domain import RoutelabError, now_iso
from routelab.store import Store
from routelab.store.decisions import Entry
from routelab.store.locks import WorkspaceLocked, describe_holders, lock_holders

SUFFIX = "-decisions.jsonl"
WRITER_WAIT = 0.25  # seconds the background writer waits for the lock per try (it stops promptly)


def journal_path(db_path: str | Path) -> Path:
    return Path(f"{db_path}{SUFFIX}")


def new_entry(op: str, example_id: int, **fields) -> Entry:
    return Entry(id=uuid.uuid4().hex, op=op, example_id=example_id, at=now_iso(), **fields)


class DecisionJournal:
    """The journal file of one workspace: append (durable on return), read, and compact."""

    def __init__(self, db_path: str | Path):
        self.path = journal_path(db_path)

    @contextmanager
    def _locked(self, flags: int) -> Iterator[int]:
        fd = os.open(self.path, flags | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # drops the flock

    def append(self, entry: Entry) -> None:
        """One line, written and fsynced before this returns."""
        line = json.dumps({k: v for k, v in asdict(entry).items() if v is not None}, ensure_ascii=True) + "\n"
        new = not self.path.exists()
        with self._locked(os.O_WRONLY | os.O_APPEND) as fd:
            os.write(fd, line.encode())
            os.fsync(fd)
        if new:  # the file's name must survive a crash too
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def has_entries(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except OSError:
            return False

    def read(self) -> tuple[list[Entry], int]:
        """The entries, and how many bytes they came from. A last line without its newline (a write
        cut short by a crash: never fsynced, so never shown as made) and a line that does not
        parse are passed over."""
        if not self.has_entries():
            return [], 0
        with self._locked(os.O_RDONLY) as fd:
            data = _read_all(fd)
        end = data.rfind(b"\n") + 1
        entries = []
        for line in data[:end].splitlines():
            try:
                fields = json.loads(line)
                entries.append(Entry(**fields))
            except (ValueError, TypeError):
                continue
        return entries, end

    def compact(self, applied_bytes: int) -> None:
        """Everything in the first `applied_bytes` is in the store: empty the file unless more was
        appended meanwhile (then the next apply empties it)."""
        with self._locked(os.O_WRONLY) as fd:
            if os.fstat(fd).st_size == applied_bytes:
                os.ftruncate(fd, 0)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class Applied:
    stored: dict[str, int]  # entry id -> decision id, for the entries read that are in the store
    done: frozenset[str]  # every entry read and dealt with (stored, or dropped)
    pending: int  # decisions still waiting for the lock (0 unless locked)
    locked: bool
    read_bytes: int = 0  # how much of the journal this looked at (a later look saw more)


def apply_journal(store: Store, journal: DecisionJournal, *, wait: bool) -> Applied:
    """Apply the journal's entries to the store in one transaction, then empty the journal.
    Locked (`wait=False`: at once; else past the store's busy timeout): nothing is written and
    `pending` says how many decisions wait."""
    entries, size = journal.read()
    if not entries:
        return Applied({}, frozenset(), 0, False)
    try:
        stored = store.apply_entries(entries, wait=wait)
    except WorkspaceLocked:
        return Applied({}, frozenset(), pending_decisions(store, entries), True, size)
    journal.compact(size)
    return Applied(stored, frozenset(e.id for e in entries), 0, False)


def pending_decisions(store: Store, entries: list[Entry]) -> int:
    """Decisions of these entries not yet in the store, less those cancelled (a read: WAL readers
    do not wait for a writer)."""
    stored = store.stored_entries([e.id for e in entries])
    cancelled = {e.target for e in entries if e.op == "cancel"}
    return sum(1 for e in entries if e.op == "decide" and e.id not in stored and e.id not in cancelled)


def apply_leftover(store: Store) -> int:
    """For a command about to read the workspace: apply a journal a reviewer left (an app killed,
    or one still waiting for the lock), without waiting. Returns how many decisions still wait."""
    journal = DecisionJournal(store.path)
    if not journal.has_entries():
        return 0
    return apply_journal(store, journal, wait=False).pending


@dataclass(frozen=True)
class JournalState:
    pending: int = 0  # decisions shown as made, not yet in the workspace
    waiting_for: str | None = None  # who holds the lock, e.g. "an import in another process (pid 12: …)"

    def describe(self) -> str | None:
        if not self.pending:
            return None
        n = f"{self.pending} decision{'s' if self.pending != 1 else ''} pending"
        return f"{n}, saved: waiting for {self.waiting_for or 'another process'} to finish writing"


class JournalWriter:
    """A thread that applies the journal whenever it has entries and the lock is free.

    `apply_lock` keeps this process's appliers (this thread, a keypress) one at a time; a
    keypress never waits for it: it takes it without blocking, or leaves the work here."""

    def __init__(self, db_path: Path, journal: DecisionJournal, on_applied: Callable[[Applied], None]):
        self.db_path, self.journal, self.on_applied = db_path, journal, on_applied
        self.apply_lock = threading.Lock()
        self.state = JournalState()
        self._state_bytes = 0  # how much of the journal `state` counted: an older count never replaces a newer
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="routelab-journal", daemon=True)
        self._thread.start()
        self.kick()  # a journal left by a session that was killed: apply it now

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2 * WRITER_WAIT + 1)

    def report(self, applied: Applied) -> None:
        """What the latest apply found (from either applier)."""
        if applied.locked:
            if applied.read_bytes >= self._state_bytes:
                self._state_bytes = applied.read_bytes
                self.state = JournalState(applied.pending, self.state.waiting_for)
            self.kick()
        elif applied.done or not self.journal.has_entries():
            self._state_bytes = 0
            self.state = JournalState()
        if applied.done:
            self.on_applied(applied)

    def _run(self) -> None:
        store: Store | None = None
        try:
            while not self._stop.is_set():
                self._wake.wait(WRITER_WAIT)
                self._wake.clear()
                if self._stop.is_set() or not self.journal.has_entries():
                    continue
                store = store or self._open()
                if store is None:
                    continue
                try:
                    self._apply(store)
                except Exception:  # noqa: BLE001 - e.g. a disk error: the entries stay journalled; retry afresh
                    store.close()
                    store = None
                    self._stop.wait(1.0)
        finally:
            if store is not None:
                store.close()

    def _open(self) -> Store | None:
        try:
            store = Store.open(self.db_path, create=False)
        except RoutelabError:  # locked while it migrates, or gone: try again on the next round
            return None
        store.set_busy_timeout(WRITER_WAIT)
        return store

    def _apply(self, store: Store) -> None:
        with self.apply_lock:
            applied = apply_journal(store, self.journal, wait=True)
        if applied.locked:
            if self.state.waiting_for is None:  # name the holder once per wait (a few ms of /proc)
                self.state = replace(self.state, waiting_for=describe_holders(lock_holders(self.db_path)))
            self._wake.set()  # try again next round
        self.report(applied)


__all__ = ["Applied", "DecisionJournal", "JournalState", "JournalWriter", "apply_journal", "apply_leftover",
           "journal_path", "new_entry", "pending_decisions"]
