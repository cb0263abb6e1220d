"""The workspace: one SQLite file, opened through sqlite-utils.

Guarantees: WAL (a reviewer and a labeling run can work side by side), foreign keys,
one transaction per logical write (BEGIN IMMEDIATE, so concurrent writers queue up
instead of failing half-way), forward migrations, and decisions that are only ever
appended.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import sqlite_utils
from pydantic import ValidationError

from routelab.domain import (
    Action,
    BadInput,
    Decision,
    DecisionKind,
    Evaluation,
    Example,
    ExampleFilter,
    ExampleRow,
    Job,
    JobEvent,
    JobStatus,
    Message,
    NewExample,
    Proposal,
    RoutelabError,
    RowChunk,
    Status,
    TrainedModel,
    now_iso,
)
from routelab.store.schema import LATEST, MIGRATIONS

BULK_ROWS = 20_000  # an import at least this big (and bigger than the table) rebuilds indexes
HUMAN_KINDS = (DecisionKind.ACCEPT, DecisionKind.OVERRIDE, DecisionKind.IMPORT)
UNDOABLE_KINDS = ("accept", "override", "skip", "flag")


def filter_sql(flt: ExampleFilter) -> tuple[str, list[Any]]:
    """The WHERE clause (over `examples e`) and its arguments for a filter."""
    clauses: list[str] = []
    args: list[Any] = []
    if flt.status is not None:
        clauses.append("e.status = ?")
        args.append(str(flt.status))
    if flt.source is not None:
        clauses.append("e.source = ?")
        args.append(flt.source)
    if flt.split is not None:
        clauses.append("e.split = ?")
        args.append(flt.split)
    model_clause = " AND p.model = ?" if flt.model else ""
    model_args = [flt.model] if flt.model else []
    if flt.action is not None:
        clauses.append(
            "(e.label = ? OR (e.label IS NULL AND EXISTS (SELECT 1 FROM proposals p "
            f"WHERE p.example_id = e.id AND p.action = ?{model_clause})))"
        )
        args += [flt.action, flt.action, *model_args]
    if flt.query:
        clauses.append("e.id IN (SELECT rowid FROM examples_fts WHERE examples_fts MATCH ?)")
        args.append(fts_query(flt.query))
    if flt.disagreement:
        clauses.append(
            "(SELECT COUNT(DISTINCT p.action) FROM proposals p WHERE p.example_id = e.id "
            "AND p.valid = 1) > 1"
        )
    if flt.max_confidence is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM proposals p WHERE p.example_id = e.id "
            f"AND (p.valid = 0 OR p.confidence < ?){model_clause})"
        )
        args += [flt.max_confidence, *model_args]
    if flt.conflict:
        clauses.append(
            "e.label IS NOT NULL AND EXISTS (SELECT 1 FROM proposals p WHERE p.example_id = e.id "
            f"AND p.valid = 1 AND p.action != e.label{model_clause})"
        )
        args += model_args
    if flt.ids is not None:
        clauses.append(f"e.id IN ({','.join('?' * len(flt.ids)) or 'NULL'})")
        args += list(flt.ids)
    return (" AND ".join(clauses) or "1"), args


def fts_query(text: str) -> str:
    """User words to a safe FTS5 query: every word must appear (prefix match)."""
    words = re.findall(r"\w+", text, flags=re.UNICODE)
    return " ".join(f'"{w}"*' for w in words) or '""'


@dataclass
class ImportResult:
    read: int = 0
    added: int = 0
    duplicates: int = 0  # repeated + existing
    repeated: int = 0  # same content twice in the file (after whitespace folding)
    existing: int = 0  # already in the workspace
    labelled: int = 0
    actions_created: list[str] = field(default_factory=list)


class Store:
    def __init__(self, path: Path, db: sqlite_utils.Database):
        self.path = path
        self.db = db
        self.conn: sqlite3.Connection = db.conn
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- opening

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> Store:
        """Open (or create) a workspace. A file that is not ours is never touched."""
        path = Path(path)
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
        try:
            conn = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=30
            )
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.DatabaseError:
                conn.close()
                raise BadInput(f"{path}: not a routelab workspace (not an SQLite database)") from None
            if version > LATEST:
                conn.close()
                raise BadInput(
                    f"{path}: workspace schema version {version} is newer than this "
                    f"routelab understands ({LATEST}); upgrade routelab"
                )
            if version == 0:
                tables = conn.execute(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
                ).fetchone()[0]
                if tables:
                    conn.close()
                    raise BadInput(f"{path}: an SQLite database, but not a routelab workspace")
            if version == 0:
                # A new workspace: 16 KiB pages (SQLite's default is 4). A million-row import
                # writes and checkpoints fewer pages; review latency measured the same.
                conn.execute("PRAGMA page_size = 16384")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")  # safe in WAL: commits survive a crash
            conn.execute("PRAGMA busy_timeout = 30000")
            # Indexes of a million-row workspace must fit in cache, or imports crawl.
            conn.execute("PRAGMA cache_size = -262144")
        except sqlite3.DatabaseError as e:
            raise BadInput(f"{path}: cannot open workspace ({e})") from None
        store = cls(path, sqlite_utils.Database(conn))
        store._migrate(version)
        return store

    def _migrate(self, version: int) -> None:
        for number in range(version, LATEST):
            with self.transaction() as c:
                for statement in MIGRATIONS[number]:
                    c.execute(statement)
                c.execute(f"PRAGMA user_version = {number + 1}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def data_version(self) -> int:
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One logical write: all of it or none of it."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, tuple(args))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    # ---------------------------------------------------------------- settings

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # ---------------------------------------------------------------- actions

    def actions(self, *, active_only: bool = True) -> list[Action]:
        sql = "SELECT name, description, code, active FROM actions"
        if active_only:
            sql += " WHERE active = 1"
        return [
            Action(name=r["name"], description=r["description"], code=r["code"], active=bool(r["active"]))
            for r in self._rows(sql + " ORDER BY code")
        ]

    def action_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM actions WHERE active = 1 ORDER BY code")]

    def upsert_actions(self, actions: Iterable[Action]) -> tuple[list[str], list[str]]:
        """Add new actions and update descriptions of known ones, in one transaction.

        Codes are stable: a known action keeps its code; asking to change it is an error.
        Returns (added names, updated names).
        """
        added: list[str] = []
        updated: list[str] = []
        with self.transaction() as c:
            self._upsert_actions(c, actions, added, updated)
        return added, updated

    def _upsert_actions(
        self, c: sqlite3.Connection, actions: Iterable[Action], added: list[str], updated: list[str]
    ) -> None:
        for a in actions:
            row = c.execute("SELECT code, description FROM actions WHERE name = ?", (a.name,)).fetchone()
            if row is not None:
                if a.code is not None and a.code != row[0]:
                    raise BadInput(f"action {a.name!r} already has code {row[0]}; codes never change")
                if a.description and a.description != row[1]:
                    c.execute("UPDATE actions SET description = ?, active = 1 WHERE name = ?", (a.description, a.name))
                    updated.append(a.name)
                continue
            code = a.code
            if code is None:
                code = c.execute("SELECT COALESCE(MAX(code), 0) + 1 FROM actions").fetchone()[0]
            elif c.execute("SELECT name FROM actions WHERE code = ?", (code,)).fetchone():
                taken = c.execute("SELECT name FROM actions WHERE code = ?", (code,)).fetchone()[0]
                raise BadInput(f"action {a.name!r}: code {code} is already used by {taken!r}")
            c.execute(
                "INSERT INTO actions (name, description, code, active, created_at) VALUES (?, ?, ?, ?, ?)",
                (a.name, a.description, code, int(a.active), now_iso()),
            )
            added.append(a.name)

    # ---------------------------------------------------------------- examples

    def add_examples(
        self, examples: list[NewExample], *, create_actions: bool = False,
        describe: Callable[[str], str] = lambda name: name.replace("_", " "),
    ) -> ImportResult:
        """Insert examples (and their file labels as `import` decisions) in one transaction."""
        return self.import_rows(
            [RowChunk([e.row() for e in examples], 1.0)], create_actions=create_actions, describe=describe
        )

    def import_rows(
        self, chunks: Iterable[RowChunk], *, create_actions: bool = False,
        describe: Callable[[str], str] = lambda name: name.replace("_", " "),
        progress: Callable[[float, int], None] | None = None, origin: str | None = None,
    ) -> ImportResult:
        """Write examples as they are parsed, all in one transaction (all or nothing).

        An example whose content hash is already present is skipped (the first of a file's
        repeats wins), so re-importing the same content adds nothing. Labels must name
        known actions unless create_actions, which adds them (described by
        `describe(name)`) in the same transaction. A big import drops the examples
        indexes and rebuilds them by sorting at the end: several times faster than
        updating them row by row. `progress(fraction, rows)` follows each chunk; `origin`
        (the file) begins the message of a label error.
        """
        prefix = f"{origin}: " if origin else ""
        result = ImportResult()
        known = set(self.action_names())
        unknown: set[str] = set()
        in_file: set[str] = set()  # hashes seen in this file so far
        at = now_iso()
        with self.transaction() as c:
            before = last = c.execute("SELECT COALESCE(MAX(id), 0) FROM examples").fetchone()[0]
            table_rows = c.execute("SELECT COUNT(*) FROM examples").fetchone()[0]
            bulk: list[tuple[str, str]] | None = None  # the dropped indexes, on the bulk path
            in_table: set[str] = set()
            for rows, fraction in chunks:
                result.read += len(rows)
                unknown.update({r[5] for r in rows if r[5] is not None and r[5] not in known})
                if unknown and not create_actions:
                    continue  # read on, so the error names every unknown label; nothing is kept
                if bulk is None and len(rows) / max(fraction, 1e-9) >= max(BULK_ROWS, table_rows):
                    bulk = self._drop_example_indexes(c)
                    in_table = {h for (h,) in c.execute("SELECT hash FROM examples")}
                # first occurrences only (set.add returns None, so a new hash keeps its row)
                unique = [r for r in rows if not (r[4] in in_file or in_file.add(r[4]))]
                result.repeated += len(rows) - len(unique)
                fresh = [r for r in unique if r[4] not in in_table] if in_table else unique
                # Without the unique index (bulk) every row is new; with it, OR IGNORE skips
                # the ones already in the workspace.
                _insert_examples(c, fresh, at, ignore=bulk is None)
                c.execute("INSERT INTO examples_fts (rowid, text) SELECT id, text FROM examples WHERE id > ?", (last,))
                last = c.execute("SELECT COALESCE(MAX(id), 0) FROM examples").fetchone()[0]
                if progress is not None:
                    progress(fraction, result.read)
            if unknown and not create_actions:
                names = sorted(unknown)
                shown = ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")
                raise BadInput(f"{prefix}label not in the action catalog: {shown} (use --create-actions to add them)")
            if unknown:
                self._upsert_actions(c, [_new_action(n, describe, prefix) for n in sorted(unknown)], result.actions_created, [])
            for _, sql in bulk or []:
                c.execute(sql)
            result.labelled = c.execute(
                "INSERT INTO decisions (example_id, kind, action, at) "
                "SELECT id, 'import', label, ? FROM examples WHERE id > ? AND label IS NOT NULL",
                (at, before),
            ).rowcount
            result.added = last - before
        result.duplicates = result.read - result.added
        result.existing = result.duplicates - result.repeated
        return result

    @staticmethod
    def _drop_example_indexes(c: sqlite3.Connection) -> list[tuple[str, str]]:
        """Drop the examples indexes (inside the caller's transaction); returns how to rebuild them."""
        indexes = c.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'examples' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            c.execute(f'DROP INDEX "{name}"')
        return indexes

    def example(self, example_id: int) -> Example | None:
        rows = self._rows("SELECT * FROM examples WHERE id = ?", (example_id,))
        return _example(rows[0]) if rows else None

    def example_id_by_hash(self, content_hash: str) -> int | None:
        row = self.conn.execute("SELECT id FROM examples WHERE hash = ?", (content_hash,)).fetchone()
        return row[0] if row else None

    def existing_hashes(self, hashes: Iterable[str]) -> set[str]:
        """Which of these content hashes are already in the workspace (dedupe before asking for more)."""
        hashes = list(dict.fromkeys(hashes))
        found: set[str] = set()
        for i in range(0, len(hashes), 500):
            chunk = hashes[i:i + 500]
            found.update(r[0] for r in self.conn.execute(
                f"SELECT hash FROM examples WHERE hash IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def examples_by_ids(self, ids: list[int]) -> list[Example]:
        if not ids:
            return []
        rows = self._rows(f"SELECT * FROM examples WHERE id IN ({','.join('?' * len(ids))})", ids)
        by_id = {r["id"]: _example(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def page(
        self, flt: ExampleFilter = ExampleFilter(), *, after: int | None = None,
        before: int | None = None, limit: int = 50,
    ) -> list[Example]:
        """A keyset page in id order: the `limit` rows after `after` (or before `before`)."""
        where, args = filter_sql(flt)
        if before is not None:
            sql = f"SELECT * FROM examples e WHERE {where} AND e.id < ? ORDER BY e.id DESC LIMIT ?"
            rows = self._rows(sql, [*args, before, limit])[::-1]
        else:
            sql = f"SELECT * FROM examples e WHERE {where} AND e.id > ? ORDER BY e.id LIMIT ?"
            rows = self._rows(sql, [*args, after or 0, limit])
        return [_example(r) for r in rows]

    def page_at(self, flt: ExampleFilter = ExampleFilter(), *, offset: int, limit: int = 50) -> list[Example]:
        """A page by position (for a jump of the scrollbar); prefer `page` for stepping."""
        where, args = filter_sql(flt)
        sql = f"SELECT * FROM examples e WHERE {where} ORDER BY e.id LIMIT ? OFFSET ?"
        return [_example(r) for r in self._rows(sql, [*args, limit, max(0, offset)])]

    def position(self, flt: ExampleFilter, example_id: int) -> int:
        """How many rows of the filter come before this example."""
        where, args = filter_sql(flt)
        return self.conn.execute(
            f"SELECT COUNT(*) FROM examples e WHERE {where} AND e.id < ?", [*args, example_id]
        ).fetchone()[0]

    def count(self, flt: ExampleFilter = ExampleFilter()) -> int:
        where, args = filter_sql(flt)
        return self.conn.execute(f"SELECT COUNT(*) FROM examples e WHERE {where}", args).fetchone()[0]

    def counts_by(self, column: str, flt: ExampleFilter = ExampleFilter()) -> dict[str, int]:
        """Counts grouped by status, source, split or label (the current human label)."""
        if column not in ("status", "source", "split", "label"):
            raise ValueError(column)
        where, args = filter_sql(flt)
        rows = self.conn.execute(
            f"SELECT e.{column}, COUNT(*) FROM examples e WHERE {where} GROUP BY e.{column} ORDER BY 2 DESC",
            args,
        ).fetchall()
        return {(k if k is not None else ""): n for k, n in rows}

    def sources(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT source FROM examples ORDER BY source")]

    def set_split(self, ids: list[int], split: str) -> None:
        with self.transaction() as c:
            c.executemany("UPDATE examples SET split = ? WHERE id = ?", [(split, i) for i in ids])

    # ---------------------------------------------------------------- proposals

    def add_proposal(self, p: Proposal) -> bool:
        """Store one proposal as it arrives. Returns False if that (example, model) had one."""
        return self.add_proposals([p]) == 1

    def add_proposals(self, proposals: list[Proposal]) -> int:
        """Many proposals in one transaction (local models answer thousands per second)."""
        with self.transaction() as c:
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO proposals (example_id, model, prompt_version, action, valid, confidence, raw, "
                "tokens, tokens_in, tokens_out, cost, latency_ms, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        p.example_id, p.model, p.prompt_version, p.action, int(p.valid), p.confidence, p.raw,
                        p.tokens_in + p.tokens_out, p.tokens_in, p.tokens_out, p.cost, p.latency_ms, p.created_at,
                    )
                    for p in proposals
                ],
            )
            return c.total_changes - before

    def proposals(self, example_id: int) -> list[Proposal]:
        rows = self._rows("SELECT * FROM proposals WHERE example_id = ? ORDER BY id", (example_id,))
        return [_proposal(r) for r in rows]

    def proposals_for(self, model: str, ids: list[int] | None = None) -> dict[int, Proposal]:
        sql, args = "SELECT * FROM proposals WHERE model = ?", [model]
        if ids is not None:
            sql += f" AND example_id IN ({','.join('?' * len(ids)) or 'NULL'})"
            args += ids
        return {r["example_id"]: _proposal(r) for r in self._rows(sql, args)}

    def proposal_models(self) -> list[str]:
        """Every model that has proposed something, most used first."""
        return [r[0] for r in self.conn.execute("SELECT model FROM proposals GROUP BY model ORDER BY COUNT(*) DESC")]

    def unproposed(
        self, model: str, *, prompt_version: str = "v1", after: int = 0, limit: int = 1000,
        flt: ExampleFilter = ExampleFilter(),
    ) -> list[Example]:
        """Examples with no proposal from this model yet, in id order (to resume a run)."""
        where, args = filter_sql(flt)
        sql = (
            f"SELECT * FROM examples e WHERE {where} AND e.id > ? AND NOT EXISTS (SELECT 1 FROM proposals p "
            "WHERE p.example_id = e.id AND p.model = ? AND p.prompt_version = ?) ORDER BY e.id LIMIT ?"
        )
        return [_example(r) for r in self._rows(sql, [*args, after, model, prompt_version, limit])]

    def count_unproposed(self, model: str, *, prompt_version: str = "v1", flt: ExampleFilter = ExampleFilter()) -> int:
        where, args = filter_sql(flt)
        return self.conn.execute(
            f"SELECT COUNT(*) FROM examples e WHERE {where} AND NOT EXISTS (SELECT 1 FROM proposals p "
            "WHERE p.example_id = e.id AND p.model = ? AND p.prompt_version = ?)",
            [*args, model, prompt_version],
        ).fetchone()[0]

    # ---------------------------------------------------------------- decisions

    def decide(
        self, example_id: int, kind: DecisionKind | str, action: str | None = None, *, model: str | None = None
    ) -> Decision:
        """Append one operator decision and refresh the example's label, atomically."""
        return self.decide_many([(example_id, kind, action, model)])[0]

    def decide_many(self, items: list[tuple[int, DecisionKind | str, str | None, str | None]]) -> list[Decision]:
        kinds_needing_action = (DecisionKind.ACCEPT, DecisionKind.OVERRIDE, DecisionKind.IMPORT)
        known = set(self.action_names())
        out: list[Decision] = []
        with self.transaction() as c:
            for example_id, kind, action, model in items:
                kind = DecisionKind(kind)
                if kind == DecisionKind.UNDO:
                    raise ValueError("use undo() to undo a decision")
                if kind in kinds_needing_action and action not in known:
                    raise BadInput(f"unknown action {action!r}")
                if kind not in kinds_needing_action:
                    action = None
                d = Decision(example_id=example_id, kind=kind, action=action, model=model)
                d.id = c.execute(
                    "INSERT INTO decisions (example_id, kind, action, model, at) VALUES (?, ?, ?, ?, ?)",
                    (example_id, str(kind), action, model, d.at),
                ).lastrowid
                self._refresh(c, example_id)
                out.append(d)
        return out

    def undo(self, decision_id: int | None = None) -> Decision | None:
        """Cancel a decision (default: the newest one not yet undone) by appending an undo."""
        with self.transaction() as c:
            if decision_id is None:
                row = c.execute(
                    "SELECT id, example_id FROM decisions d WHERE kind IN ('accept','override','skip','flag') "
                    "AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id) ORDER BY id DESC LIMIT 1"
                ).fetchone()
            else:
                row = c.execute(
                    "SELECT id, example_id FROM decisions d WHERE id = ? AND kind IN ('accept','override','skip','flag') "
                    "AND NOT EXISTS (SELECT 1 FROM decisions u WHERE u.undoes = d.id)",
                    (decision_id,),
                ).fetchone()
            if row is None:
                return None
            d = Decision(example_id=row[1], kind=DecisionKind.UNDO, undoes=row[0])
            d.id = c.execute(
                "INSERT INTO decisions (example_id, kind, undoes, at) VALUES (?, 'undo', ?, ?)",
                (d.example_id, d.undoes, d.at),
            ).lastrowid
            self._refresh(c, d.example_id)
            return d

    def history(self, example_id: int) -> list[Decision]:
        rows = self._rows("SELECT * FROM decisions WHERE example_id = ? ORDER BY id", (example_id,))
        return [Decision(**{k: v for k, v in r.items()}) for r in rows]

    def decision_count(self, since: str | None = None) -> int:
        """Operator decisions (not imports or undos), optionally since an ISO time."""
        sql = "SELECT COUNT(*) FROM decisions WHERE kind IN ('accept','override','skip','flag')"
        args: list[Any] = []
        if since:
            sql += " AND at >= ?"
            args.append(since)
        return self.conn.execute(sql, args).fetchone()[0]

    def _refresh(self, c: sqlite3.Connection, example_id: int) -> None:
        """Replay an example's decisions into its cached label and status."""
        rows = c.execute(
            "SELECT id, kind, action, undoes FROM decisions WHERE example_id = ? ORDER BY id", (example_id,)
        ).fetchall()
        undone = {r[3] for r in rows if r[1] == "undo"}
        label, status = None, Status.UNREVIEWED
        for _id, kind, action, _undoes in rows:
            if _id in undone or kind == "undo":
                continue
            if kind in ("accept", "override", "import"):
                label, status = action, Status.REVIEWED
            elif kind == "skip":
                status = Status.SKIPPED
            elif kind == "flag":
                status = Status.FLAGGED
        c.execute("UPDATE examples SET label = ?, status = ? WHERE id = ?", (label, str(status), example_id))

    # ---------------------------------------------------------------- jobs

    def create_job(self, job: Job) -> Job:
        with self.transaction() as c:
            job.id = c.execute(
                "INSERT INTO jobs (kind, provider, status, model, remote_id, params, result, error, progress_done, "
                "progress_total, cost, created_at, updated_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job.kind, job.provider, str(job.status), job.model, job.remote_id, json.dumps(job.params),
                    json.dumps(job.result), job.error, job.progress_done, job.progress_total, job.cost,
                    job.created_at, job.updated_at, job.finished_at,
                ),
            ).lastrowid
        return job

    def update_job(self, job_id: int, **fields: Any) -> Job:
        allowed = {"status", "model", "remote_id", "params", "result", "error", "progress_done", "progress_total", "cost"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {bad}")
        values: dict[str, Any] = {}
        for k, v in fields.items():
            values[k] = json.dumps(v) if k in ("params", "result") else (str(v) if k == "status" else v)
        values["updated_at"] = now_iso()
        if "status" in fields and JobStatus(fields["status"]).terminal:
            values["finished_at"] = values["updated_at"]
        with self.transaction() as c:
            c.execute(
                f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?", [*values.values(), job_id]
            )
        job = self.job(job_id)
        assert job is not None
        return job

    def job(self, job_id: int) -> Job | None:
        rows = self._rows("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def jobs(self, *, kind: str | None = None, active_only: bool = False, limit: int = 200) -> list[Job]:
        sql, args = "SELECT * FROM jobs WHERE 1", []
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        if active_only:
            sql += " AND status NOT IN ('succeeded', 'failed', 'cancelled')"
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [_job(r) for r in self._rows(sql, args)]

    def add_job_events(self, events: list[JobEvent]) -> int:
        """Store events; one with a remote id already stored for its job is ignored."""
        with self.transaction() as c:
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO job_events (job_id, remote_id, at, level, type, message, data) "
                "VALUES (?,?,?,?,?,?,?)",
                [(e.job_id, e.remote_id, e.at, e.level, e.type, e.message, json.dumps(e.data)) for e in events],
            )
            return c.total_changes - before

    def job_events(self, job_id: int, *, after: int = 0, limit: int = 10_000) -> list[JobEvent]:
        rows = self._rows(
            "SELECT * FROM job_events WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?", (job_id, after, limit)
        )
        return [JobEvent(**{**r, "data": json.loads(r["data"])}) for r in rows]

    # ---------------------------------------------------------------- evaluations

    def add_evaluation(self, ev: Evaluation) -> Evaluation:
        data = ev.model_dump(exclude={"id"})
        data["details"] = json.dumps(data["details"])
        with self.transaction() as c:
            ev.id = c.execute(
                f"INSERT INTO evaluations ({', '.join(data)}) VALUES ({', '.join('?' * len(data))})",
                list(data.values()),
            ).lastrowid
        return ev

    def evaluations(self, *, model: str | None = None, limit: int = 500) -> list[Evaluation]:
        sql, args = "SELECT * FROM evaluations WHERE 1", []
        if model:
            sql += " AND model = ?"
            args.append(model)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return [Evaluation(**{**r, "details": json.loads(r["details"])}) for r in self._rows(sql, args)]


    def latest_evaluations(self, split: str | None = None) -> list[Evaluation]:
        """The newest evaluation of each model (on one split, or on the newest evaluated split), oldest first."""
        if split is None:
            row = self.conn.execute("SELECT split FROM evaluations ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                return []
            split = row[0]
        rows = self._rows(
            "SELECT * FROM evaluations WHERE id IN (SELECT MAX(id) FROM evaluations WHERE split IS ? GROUP BY model) "
            "ORDER BY id", (split,),
        )
        return [Evaluation(**{**r, "details": json.loads(r["details"])}) for r in rows]

    # ---------------------------------------------------------------- trained models and uploads

    def save_model(self, model: TrainedModel) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO models (id, provider, kind, base, job_id, params, metrics, artifact, created_at) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                (model.id, model.provider, model.kind, model.base, model.job_id, json.dumps(model.params),
                 json.dumps(model.metrics), model.artifact, model.created_at),
            )

    def trained_model(self, model_id: str, *, with_artifact: bool = True) -> TrainedModel | None:
        cols = "*" if with_artifact else "id, provider, kind, base, job_id, params, metrics, created_at"
        rows = self._rows(f"SELECT {cols} FROM models WHERE id = ?", (model_id,))
        return _trained_model(rows[0]) if rows else None

    def trained_models(self, *, provider: str | None = None, kind: str | None = "finetune") -> list[TrainedModel]:
        """Models training produced (by default fine-tunes, not the local teacher's cache)."""
        sql = "SELECT id, provider, kind, base, job_id, params, metrics, created_at FROM models WHERE 1"
        args: list[Any] = []
        if provider:
            sql += " AND provider = ?"
            args.append(provider)
        if kind:
            sql += " AND kind = ?"
            args.append(kind)
        return [_trained_model(r) for r in self._rows(sql + " ORDER BY created_at", args)]

    def find_upload(self, provider: str, base_url: str, sha256: str, purpose: str) -> str | None:
        row = self.conn.execute(
            "SELECT remote_id FROM uploads WHERE provider = ? AND base_url = ? AND sha256 = ? AND purpose = ?",
            (provider, base_url, sha256, purpose),
        ).fetchone()
        return row[0] if row else None

    def record_upload(self, provider: str, base_url: str, sha256: str, purpose: str, remote_id: str,
                      filename: str, size: int) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT OR REPLACE INTO uploads (provider, base_url, sha256, purpose, remote_id, filename, bytes, "
                "created_at) VALUES (?,?,?,?,?,?,?,?)",
                (provider, base_url, sha256, purpose, remote_id, filename, size, now_iso()),
            )


INSERT_BATCH = 64  # rows per INSERT statement: a quarter less per-row overhead than one by one


def _insert_examples(c: sqlite3.Connection, rows: list[ExampleRow], at: str, *, ignore: bool) -> None:
    """Insert rows INSERT_BATCH to a statement. `at` is our own ISO timestamp, safe as a literal."""

    def values(count: int) -> str:
        return ",".join(
            f"(?{6 * i + 1},?{6 * i + 2},?{6 * i + 3},?{6 * i + 4},?{6 * i + 5},?{6 * i + 6},'{at}',"
            f"CASE WHEN ?{6 * i + 6} IS NULL THEN 'unreviewed' ELSE 'reviewed' END)"
            for i in range(count)
        )

    head = (f"INSERT {'OR IGNORE ' if ignore else ''}INTO examples "
            "(text, conversation, source, split, hash, label, created_at, status) VALUES ")
    whole = len(rows) - len(rows) % INSERT_BATCH
    if whole:
        c.executemany(
            head + values(INSERT_BATCH),
            (tuple(chain.from_iterable(rows[k:k + INSERT_BATCH])) for k in range(0, whole, INSERT_BATCH)),
        )
    if whole < len(rows):
        c.executemany(head + values(1), rows[whole:])


def _new_action(name: str, describe: Callable[[str], str], prefix: str = "") -> Action:
    try:
        return Action(name=name, description=describe(name))
    except ValidationError:
        raise BadInput(f"{prefix}label {name!r} cannot be an action name") from None


def _trained_model(r: dict[str, Any]) -> TrainedModel:
    return TrainedModel(**{**r, "params": json.loads(r["params"]), "metrics": json.loads(r["metrics"])})


def _example(r: dict[str, Any]) -> Example:
    conv = r.get("conversation")
    return Example(
        id=r["id"], text=r["text"], source=r["source"], split=r["split"], hash=r["hash"],
        created_at=r["created_at"], label=r["label"], status=Status(r["status"]),
        conversation=[Message(**m) for m in json.loads(conv)] if conv else None,
    )


def _proposal(r: dict[str, Any]) -> Proposal:
    return Proposal(**{k: v for k, v in r.items() if k != "tokens"} | {"valid": bool(r["valid"])})


def _job(r: dict[str, Any]) -> Job:
    return Job(**{**r, "params": json.loads(r["params"]), "result": json.loads(r["result"])})


__all__ = ["Store", "ExampleFilter", "ImportResult", "RoutelabError", "fts_query"]
