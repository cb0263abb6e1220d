"""The SQLite workspace: `Store.open(path)` and the queries of every table behind it.

One module per table (store/store.py says how they make one `Store`); opening, pragmas,
transactions and migrations in connection.py, the open-time schema check in
schema_check.py, the schema itself in schema.py.

Which SQL is whose. The schema is hand-written DDL (schema.py): CHECKs written with OR
for import speed, append-only triggers on decisions, an external-content FTS5 index
filled in bulk instead of by per-row triggers, and migrations that never change once
released, since the schema check on open compares a file against exactly that SQL;
sqlite-utils' create_table and enable_fts cannot say any of it. sqlite-utils writes the
cold tables: settings (upsert), actions and jobs (insert, update), job_events
(insert_all, ignoring events already stored), evaluations, and models and uploads
(insert, replacing), each inside the store's own BEGIN IMMEDIATE transaction, where its
savepoints nest. These run a few times per command or job, so its per-call
introspection (about a tenth of a millisecond) is never felt. Hand-written SQL stays
where a million rows are measured: import_rows (64-row INSERTs, the search index filled
per chunk, indexes rebuilt by sorting), keyset pages, counts and search built from one
`filter_sql`, proposals (a local model writes thousands a second), decisions (one
keypress each, the label cache refreshed in the same transaction) and bulk accept.
Reads stay plain SELECTs everywhere: sqlite-utils wraps each read in a savepoint, which
would tangle with a transaction another thread has open on the same connection.
"""

from routelab.domain import ExampleFilter
from routelab.store.endpoints import Endpoint
from routelab.store.filters import filter_sql, fts_query
from routelab.store.imports import ImportResult
from routelab.store.store import Store

__all__ = ["Endpoint", "Store", "ExampleFilter", "ImportResult", "filter_sql", "fts_query"]
