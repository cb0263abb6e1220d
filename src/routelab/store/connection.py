"""Opening a workspace: the connection, its pragmas, transactions and forward migrations.

Guarantees: WAL (a reviewer and a labeling run can work side by side), foreign keys,
one transaction per logical write (BEGIN IMMEDIATE, so concurrent writers queue up
instead of failing half-way; a writer that waited past the busy timeout, 30 s or
$ROUTELAB_BUSY_TIMEOUT, gets WorkspaceLocked naming the process that holds the lock), forward migrations, and a file that is not ours (or that
carries schema objects routelab did not make) is refused before anything is written.

`StoreBase` is the root of the table mixins (see store/store.py): it owns the one
connection, the lock and the transaction every table writes through.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import sqlite_utils

from routelab.domain import BadInput
from routelab.store.locks import WorkspaceLocked, busy_timeout
from routelab.store.schema import LATEST, MIGRATIONS
from routelab.store.schema_check import check_schema


class StoreBase:
    def __init__(self, path: Path, db: sqlite_utils.Database):
        self.path = path
        self.db = db
        self.conn: sqlite3.Connection = db.conn
        self._lock = threading.RLock()
        self.busy_timeout = busy_timeout()

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> Self:
        """Open (or create) a workspace. A file that is not ours is never touched."""
        path = Path(path)
        _check_path(path, create)
        try:
            wait = busy_timeout()
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=wait)
            try:
                version = _check_version(conn, path)
                _configure(conn, new=version == 0, wait=wait)
            except BaseException:
                conn.close()
                raise
        except sqlite3.OperationalError as e:
            if _is_locked(e):
                raise WorkspaceLocked(path, wait) from None
            raise BadInput(f"{path}: cannot open workspace ({e})") from None
        except sqlite3.DatabaseError as e:
            raise BadInput(f"{path}: cannot open workspace ({e})") from None
        store = cls(path, sqlite_utils.Database(conn))
        try:
            store._migrate(version)
        except BaseException:
            store.close()
            raise
        return store

    def _migrate(self, version: int) -> None:
        for number in range(version, LATEST):
            with self.transaction() as c:
                for statement in MIGRATIONS[number]:
                    c.execute(statement)
                c.execute(f"PRAGMA user_version = {number + 1}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def data_version(self) -> int:
        """A number that changes when another connection commits (PRAGMA data_version):
        a view polls it to notice writes made by another process."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    @contextmanager
    def transaction(self, *, wait: bool = True) -> Iterator[sqlite3.Connection]:
        """One logical write: all of it or none of it. While another process writes, wait up to the
        busy timeout for it (`wait=False`: not at all, for a caller that must not block, such as a
        keypress), then raise WorkspaceLocked, which names who holds the lock."""
        with self._lock:
            self._begin(wait)
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    def set_busy_timeout(self, seconds: float) -> None:
        """How long this connection's writes wait for another process's (a background writer
        waits in short slices, so it can stop)."""
        self.busy_timeout = seconds
        self.conn.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")

    def _begin(self, wait: bool) -> None:
        if not wait:
            self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if _is_locked(e):
                raise WorkspaceLocked(self.path, self.busy_timeout if wait else 0) from None
            raise
        finally:
            if not wait:
                self.conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, tuple(args))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def _check_path(path: Path, create: bool) -> None:
    if path.exists():
        if path.is_dir():
            raise BadInput(f"{path}: is a directory, not a workspace file")
        # No open()/read() of the file here: closing any descriptor of a database file drops
        # every POSIX lock this process holds on it (SQLite's WAL guard), and another process
        # would then delete the -wal of our open connections. SQLite checks the header below.
        if path.stat().st_size == 0:
            raise BadInput(f"{path}: not a routelab workspace (not an SQLite database)")
    elif not create:
        raise BadInput(f"{path}: no workspace here (create one with routelab init, routelab import FILE "
                       "or routelab demo)")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)


def _check_version(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version, once its schema is known to be the one routelab made."""
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError:
        raise BadInput(f"{path}: not a routelab workspace (not an SQLite database)") from None
    if version > LATEST:
        raise BadInput(
            f"{path}: workspace schema version {version} is newer than this "
            f"routelab understands ({LATEST}); upgrade routelab"
        )
    check_schema(conn, version, path)
    return version


def _is_locked(e: sqlite3.OperationalError) -> bool:
    return "locked" in str(e) or "busy" in str(e)


def _configure(conn: sqlite3.Connection, *, new: bool, wait: float) -> None:
    if new:
        # A new workspace: 16 KiB pages (SQLite's default is 4). A million-row import
        # writes and checkpoints fewer pages; review latency measured the same.
        conn.execute("PRAGMA page_size = 16384")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")  # safe in WAL: commits survive a crash
    conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
    # Indexes of a million-row workspace must fit in cache, or imports crawl.
    conn.execute("PRAGMA cache_size = -262144")
