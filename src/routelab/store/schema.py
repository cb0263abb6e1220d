"""The workspace schema and its forward migrations.

The schema is a public interface: people open the file with sqlite3 or Datasette.
CHECKs are written with OR, not IN (...): SQLite builds an ephemeral table for an IN
list on every row checked, which made a million-row import two and a half times slower.
Each migration is a list of statements applied in one transaction; PRAGMA user_version
records how many have run. Never edit a released migration: append a new one.
"""

from __future__ import annotations

MIGRATIONS: list[list[str]] = [
    # 1: the foundation
    [
        """CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )""",
        """CREATE TABLE actions (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL DEFAULT '',
            code INTEGER NOT NULL UNIQUE,
            active INTEGER NOT NULL DEFAULT 1 CHECK (active = 0 OR active = 1),
            created_at TEXT NOT NULL
        )""",
        # label/status are a cache of the decisions log, kept in the same transaction as
        # each decision, so the review filters stay index lookups at a million rows.
        """CREATE TABLE examples (
            id INTEGER PRIMARY KEY,
            text TEXT NOT NULL,
            conversation TEXT,
            source TEXT NOT NULL,
            split TEXT NOT NULL DEFAULT 'unassigned' CHECK (
                split = 'train' OR split = 'validation' OR split = 'test' OR split = 'unassigned'),
            hash TEXT NOT NULL,
            created_at TEXT NOT NULL,
            label TEXT,
            status TEXT NOT NULL DEFAULT 'unreviewed' CHECK (
                status = 'unreviewed' OR status = 'reviewed' OR status = 'skipped' OR status = 'flagged')
        )""",
        # A named index (not a column UNIQUE) so a bulk import can rebuild it by sorting.
        "CREATE UNIQUE INDEX examples_hash ON examples (hash)",
        "CREATE INDEX examples_status ON examples (status, id)",
        "CREATE INDEX examples_source ON examples (source, id)",
        "CREATE INDEX examples_split ON examples (split, id)",
        "CREATE INDEX examples_label ON examples (label, id)",
        """CREATE VIRTUAL TABLE examples_fts USING fts5 (
            text, content='examples', content_rowid='id'
        )""",
        # Inserts are indexed in bulk by the store (faster than a trigger per row).
        """CREATE TRIGGER examples_fts_delete AFTER DELETE ON examples BEGIN
            INSERT INTO examples_fts (examples_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END""",
        """CREATE TRIGGER examples_fts_update AFTER UPDATE OF text ON examples BEGIN
            INSERT INTO examples_fts (examples_fts, rowid, text) VALUES ('delete', old.id, old.text);
            INSERT INTO examples_fts (rowid, text) VALUES (new.id, new.text);
        END""",
        """CREATE TABLE proposals (
            id INTEGER PRIMARY KEY,
            example_id INTEGER NOT NULL REFERENCES examples (id),
            model TEXT NOT NULL,
            prompt_version TEXT NOT NULL DEFAULT 'v1',
            action TEXT,
            valid INTEGER NOT NULL DEFAULT 1 CHECK (valid = 0 OR valid = 1),
            confidence REAL,
            raw TEXT,
            tokens INTEGER NOT NULL DEFAULT 0,
            tokens_in INTEGER NOT NULL DEFAULT 0,
            tokens_out INTEGER NOT NULL DEFAULT 0,
            cost REAL NOT NULL DEFAULT 0,
            latency_ms REAL,
            created_at TEXT NOT NULL,
            UNIQUE (example_id, model, prompt_version)
        )""",
        "CREATE INDEX proposals_model ON proposals (model, example_id)",
        "CREATE INDEX proposals_action ON proposals (action, example_id)",
        # Append-only: the store never updates or deletes a decision.
        """CREATE TABLE decisions (
            id INTEGER PRIMARY KEY,
            example_id INTEGER NOT NULL REFERENCES examples (id),
            kind TEXT NOT NULL CHECK (kind = 'accept' OR kind = 'override' OR kind = 'skip'
                OR kind = 'flag' OR kind = 'undo' OR kind = 'import'),
            action TEXT,
            model TEXT,
            undoes INTEGER REFERENCES decisions (id),
            at TEXT NOT NULL
        )""",
        "CREATE INDEX decisions_example ON decisions (example_id, id)",
        """CREATE TRIGGER decisions_append_only_update BEFORE UPDATE ON decisions BEGIN
            SELECT RAISE(ABORT, 'decisions are append-only');
        END""",
        """CREATE TRIGGER decisions_append_only_delete BEFORE DELETE ON decisions BEGIN
            SELECT RAISE(ABORT, 'decisions are append-only');
        END""",
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            provider TEXT NOT NULL,
            status TEXT NOT NULL,
            model TEXT,
            remote_id TEXT,
            params TEXT NOT NULL DEFAULT '{}',
            result TEXT NOT NULL DEFAULT '{}',
            error TEXT,
            progress_done INTEGER NOT NULL DEFAULT 0,
            progress_total INTEGER,
            cost REAL NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            finished_at TEXT
        )""",
        "CREATE INDEX jobs_status ON jobs (status)",
        """CREATE TABLE job_events (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs (id),
            remote_id TEXT,
            at TEXT NOT NULL,
            level TEXT NOT NULL DEFAULT 'info',
            type TEXT NOT NULL DEFAULT 'message',
            message TEXT NOT NULL DEFAULT '',
            data TEXT NOT NULL DEFAULT '{}',
            UNIQUE (job_id, remote_id)
        )""",
        "CREATE INDEX job_events_job ON job_events (job_id, id)",
        """CREATE TABLE evaluations (
            id INTEGER PRIMARY KEY,
            job_id INTEGER REFERENCES jobs (id),
            model TEXT NOT NULL,
            split TEXT,
            source TEXT,
            n INTEGER NOT NULL,
            correct INTEGER NOT NULL,
            accuracy REAL NOT NULL,
            ci_low REAL NOT NULL,
            ci_high REAL NOT NULL,
            macro_f1 REAL,
            invalid_rate REAL NOT NULL DEFAULT 0,
            latency_p50_ms REAL,
            latency_p95_ms REAL,
            cost_per_1k REAL,
            details TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX evaluations_model ON evaluations (model, id)",
    ],
]

MIGRATIONS.append(
    # 2: trained models (local artifacts live in the workspace) and uploaded files
    [
        """CREATE TABLE models (
            id TEXT PRIMARY KEY,
            provider TEXT NOT NULL,
            kind TEXT NOT NULL DEFAULT 'finetune',
            base TEXT,
            job_id INTEGER REFERENCES jobs (id),
            params TEXT NOT NULL DEFAULT '{}',
            metrics TEXT NOT NULL DEFAULT '{}',
            artifact BLOB,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE uploads (
            id INTEGER PRIMARY KEY,
            provider TEXT NOT NULL,
            base_url TEXT NOT NULL DEFAULT '',
            sha256 TEXT NOT NULL,
            purpose TEXT NOT NULL,
            remote_id TEXT NOT NULL,
            filename TEXT NOT NULL,
            bytes INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (provider, base_url, sha256, purpose)
        )""",
    ]
)

MIGRATIONS.append(
    # 3: a search index that builds about twice as fast, for million-row imports:
    # - columnsize=0: no per-row token counts (the examples_fts_docsize table). Only
    #   ranking by relevance (bm25, ORDER BY rank) needs them, and routelab lists matches
    #   in id order; a query that ranks still works, it tokenizes the matches instead.
    # - automerge 16: segments are merged 16 at a time, not 4.
    # Search measured the same at a million rows (FTS page p50 ~21 ms).
    [
        "DROP TRIGGER examples_fts_delete",
        "DROP TRIGGER examples_fts_update",
        "DROP TABLE examples_fts",
        """CREATE VIRTUAL TABLE examples_fts USING fts5 (
            text, content='examples', content_rowid='id', columnsize=0
        )""",
        "INSERT INTO examples_fts (examples_fts, rank) VALUES ('automerge', 16)",
        "INSERT INTO examples_fts (examples_fts) VALUES ('rebuild')",
        """CREATE TRIGGER examples_fts_delete AFTER DELETE ON examples BEGIN
            INSERT INTO examples_fts (examples_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END""",
        """CREATE TRIGGER examples_fts_update AFTER UPDATE OF text ON examples BEGIN
            INSERT INTO examples_fts (examples_fts, rowid, text) VALUES ('delete', old.id, old.text);
            INSERT INTO examples_fts (rowid, text) VALUES (new.id, new.text);
        END""",
    ]
)

MIGRATIONS.append(
    # 4: named endpoints (`routelab endpoints add`) and what each endpoint was found to support.
    # An endpoint row holds its URL and the NAME of the environment variable with its key,
    # never a key. Capabilities are keyed by the endpoint's URL (with Azure's api-version),
    # so the default endpoint (OPENAI_BASE_URL) is remembered the same way and a changed URL
    # is probed afresh.
    [
        """CREATE TABLE endpoints (
            name TEXT PRIMARY KEY,
            kind TEXT NOT NULL DEFAULT 'openai' CHECK (kind = 'openai' OR kind = 'azure'),
            base_url TEXT NOT NULL,
            api_key_env TEXT,
            api_version TEXT,
            declared TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE endpoint_capabilities (
            endpoint TEXT PRIMARY KEY,
            detected TEXT NOT NULL DEFAULT '{}',
            updated_at TEXT NOT NULL
        )""",
    ]
)

MIGRATIONS.append(
    # 5: decisions applied from the decision journal carry the journal entry's id, so an
    # entry is applied once however often the journal is replayed (services/decision_journal.py).
    # Adding a NULL column and a partial index is instant at a million decisions.
    [
        "ALTER TABLE decisions ADD COLUMN entry TEXT",
        "CREATE UNIQUE INDEX decisions_entry ON decisions (entry) WHERE entry IS NOT NULL",
    ]
)

MIGRATIONS.append(
    # 6: the fallback action (out of scope): the one a router answers when no other fits, and
    # the one evaluation separates in-scope accuracy from out-of-scope recall by. The partial
    # unique index keeps it to one per catalog; the store moves the flag (marking one clears
    # the other) in one transaction.
    [
        "ALTER TABLE actions ADD COLUMN fallback INTEGER NOT NULL DEFAULT 0 CHECK (fallback = 0 OR fallback = 1)",
        "CREATE UNIQUE INDEX actions_fallback ON actions (fallback) WHERE fallback = 1",
    ]
)

MIGRATIONS.append(
    # 7 (6 is the fallback action's): every export written, as its own record. Which export (the
    # digest of its data, where it went), which seed and validation fraction, the questions of each
    # file, and the ones it moved into the validation split of the workspace (only where the
    # workspace had no validation split, or from unassigned; `moved` counts them by the split they
    # came from). Ids are stored sorted, delta-encoded and zlib-compressed (store/exports.py):
    # a million dense ids take a few kilobytes. Eval reads it to say whether a fine-tuned model was
    # trained on the questions it is scored on.
    [
        """CREATE TABLE exports (
            id INTEGER PRIMARY KEY,
            digest TEXT NOT NULL,
            out_dir TEXT NOT NULL,
            seed INTEGER NOT NULL,
            val_fraction REAL NOT NULL,
            train_ids BLOB NOT NULL,
            validation_ids BLOB NOT NULL,
            moved TEXT NOT NULL DEFAULT '{}',
            moved_ids BLOB NOT NULL,
            at TEXT NOT NULL
        )""",
        "CREATE INDEX exports_digest ON exports (digest, id)",
    ]
)

LATEST = len(MIGRATIONS)
