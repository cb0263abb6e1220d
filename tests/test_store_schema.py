"""A crafted workspace: on open, a schema routelab did not make is refused before anything is written."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from routelab.domain import BadInput, NewExample, Proposal
from routelab.store import ExampleFilter, Store
from routelab.store.schema import LATEST, MIGRATIONS

EVIL = "CREATE TRIGGER evil AFTER INSERT ON decisions BEGIN UPDATE examples SET label = 'x'; END"


def _workspace(path):
    """A real workspace with actions, questions and a teacher's proposals."""
    with Store.open(path) as s:
        from routelab.domain import Action

        s.upsert_actions([Action(name="get_policy"), Action(name="escalate")])
        s.add_examples([NewExample(text=f"question {i}") for i in range(20)])
        s.add_proposals([Proposal(example_id=e.id, model="m", action="get_policy", confidence=0.9)
                         for e in s.page(limit=20)])
    return path


def _craft(path, *statements, writable_schema=False):
    c = sqlite3.connect(path, isolation_level=None)
    if writable_schema:
        c.execute("PRAGMA writable_schema = ON")
    for statement in statements:
        c.execute(statement)
    c.close()


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_extra_trigger_that_rewrites_labels_is_refused_on_open(tmp_path):
    path = _workspace(tmp_path / "crafted.db")
    _craft(path, EVIL)
    before = _digest(path)
    with pytest.raises(BadInput) as e:
        Store.open(path)
    message = str(e.value)
    assert "\n" not in message and "unexpected trigger 'evil'" in message and str(path) in message
    assert _digest(path) == before


def test_the_cli_refuses_a_crafted_workspace_with_one_line_and_exit_2(run_cli, tmp_path):
    path = _workspace(tmp_path / "crafted.db")
    _craft(path, EVIL)
    before = _digest(path)
    r = run_cli("--db", path, "actions", "list")
    assert r.code == 2 and r.out == ""
    assert r.err.count("\n") == 1 and "evil" in r.err and "Traceback" not in r.err
    r = run_cli("--db", path, "accept", "--model", "m")  # a writer is refused the same way
    assert r.code == 2 and "evil" in r.err
    assert _digest(path) == before and path.exists()


@pytest.mark.parametrize(
    ("statements", "named"),
    [
        (["CREATE VIEW labels AS SELECT id, label FROM examples"], "unexpected view 'labels'"),
        (["CREATE TABLE notes (x)"], "unexpected table 'notes'"),
        (["CREATE INDEX examples_text ON examples (text)"], "unexpected index 'examples_text'"),
        # a trigger hidden among the search index's shadow tables, or on one of them
        (["CREATE TRIGGER examples_fts_sync AFTER INSERT ON decisions BEGIN DELETE FROM proposals; END"],
         "unexpected trigger 'examples_fts_sync'"),
        (["CREATE TRIGGER t AFTER INSERT ON examples_fts_data BEGIN SELECT 1; END"], "unexpected trigger 't'"),
        # one of routelab's own triggers, its body replaced: decisions are no longer append-only
        (["DROP TRIGGER decisions_append_only_delete",
          "CREATE TRIGGER decisions_append_only_delete BEFORE DELETE ON decisions BEGIN SELECT 1; END"],
         "trigger 'decisions_append_only_delete' differs"),
        (["DROP INDEX examples_label"], "index 'examples_label' is missing"),
    ],
)
def test_every_kind_of_foreign_schema_object_is_named(tmp_path, statements, named):
    path = _workspace(tmp_path / "crafted.db")
    _craft(path, *statements)
    before = _digest(path)
    with pytest.raises(BadInput, match=named):
        Store.open(path)
    assert _digest(path) == before


def test_a_trigger_slipped_in_under_sqlites_own_prefix_is_refused(tmp_path):
    """SQLite reserves sqlite_* names, but a file edited with writable_schema can carry one, and it fires."""
    path = _workspace(tmp_path / "crafted.db")
    _craft(path, "INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES "
                 "('trigger', 'sqlite_evil', 'decisions', 0, "
                 "'CREATE TRIGGER sqlite_evil AFTER INSERT ON decisions BEGIN UPDATE examples SET label = ''x''; END')",
           writable_schema=True)
    with pytest.raises(BadInput, match="unexpected trigger 'sqlite_evil'"):
        Store.open(path)


def test_an_old_crafted_workspace_is_refused_before_it_is_migrated(tmp_path):
    path = tmp_path / "old.db"
    _craft(path, *MIGRATIONS[0], EVIL, "PRAGMA user_version = 1")
    with pytest.raises(BadInput, match="evil"):
        Store.open(path)
    c = sqlite3.connect(path)
    assert c.execute("PRAGMA user_version").fetchone() == (1,)  # nothing was migrated
    assert "models" not in {n for (n,) in c.execute("SELECT name FROM sqlite_master")}


def test_a_database_that_is_not_a_workspace_is_refused_even_with_no_tables(tmp_path):
    path = tmp_path / "other.db"
    _craft(path, "CREATE VIEW v AS SELECT 1")
    with pytest.raises(BadInput, match="not a routelab workspace"):
        Store.open(path)


@pytest.mark.parametrize("version", range(1, LATEST))
def test_workspaces_of_every_older_version_still_open(tmp_path, version):
    path = tmp_path / "old.db"
    _craft(path, *[s for migration in MIGRATIONS[:version] for s in migration], f"PRAGMA user_version = {version}")
    with Store.open(path) as s:
        assert s.schema_version == LATEST
    with Store.open(path) as s:  # and, migrated, opens again
        assert s.count() == 0


def test_what_routelab_and_sqlite_themselves_add_is_expected(tmp_path):
    """ANALYZE's statistics, a big import's rebuilt indexes, a filled search index."""
    path = _workspace(tmp_path / "w.db")
    with Store.open(path) as s:
        s.add_examples([NewExample(text=f"bulk {i}") for i in range(25_000)])  # the bulk path rebuilds indexes
        s.decide(s.page()[0].id, "accept", "get_policy")
        s.conn.execute("ANALYZE")
    with Store.open(path) as s:
        assert s.count(ExampleFilter(query="bulk")) == 25_000
