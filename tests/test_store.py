"""The workspace: schema, migrations, paging, counts, search, decisions, concurrency."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from routelab.domain import Action, BadInput, NewExample, Proposal, Status
from routelab.store import ExampleFilter, Store
from routelab.store.schema import LATEST, MIGRATIONS


def add(store, *texts, **kw):
    return store.add_examples([NewExample(text=t, **kw) for t in texts])


def test_public_schema_tables_and_pragmas(store):
    tables = set(store.db.table_names())
    assert {"actions", "examples", "proposals", "decisions", "jobs", "job_events", "evaluations"} <= tables
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.schema_version == LATEST


def test_migrations_run_forward_from_every_version(tmp_path):
    path = tmp_path / "old.db"
    c = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        c.execute(statement)
    c.execute("PRAGMA user_version = 1")
    c.execute("INSERT INTO actions (name, description, code, created_at) VALUES ('a', '', 1, 'now')")
    c.execute("INSERT INTO examples (text, source, hash, created_at) VALUES ('my card is lost', 'user', 'h1', 'now')")
    c.execute("INSERT INTO examples_fts (rowid, text) VALUES (1, 'my card is lost')")
    c.commit()
    c.close()
    with Store.open(path) as s:
        assert s.schema_version == LATEST
        assert s.action_names() == ["a"]  # data survives
        assert "models" in s.db.table_names()
        # search still finds the old question, and new ones
        assert [e.text for e in s.page(ExampleFilter(query="lost car"))] == ["my card is lost"]
        add(s, "a lost wallet")
        assert s.count(ExampleFilter(query="lost")) == 2
        # 3: the search index was rebuilt without token counts, merging 16 segments at a time
        assert s.conn.execute("SELECT v FROM examples_fts_config WHERE k = 'automerge'").fetchone() == (16,)
        assert "examples_fts_docsize" not in s.db.table_names()
        # the triggers still keep it in step with the text; ranking still works (slower)
        s.conn.execute("UPDATE examples SET text = 'my wallet is gone' WHERE id = 1")
        assert s.count(ExampleFilter(query="card")) == 0 and s.count(ExampleFilter(query="wallet")) == 2
        ranked = s.conn.execute("SELECT rowid FROM examples_fts WHERE examples_fts MATCH 'wallet' ORDER BY rank")
        assert len(ranked.fetchall()) == 2


def test_action_codes_are_stable(store):
    assert [a.code for a in store.actions()] == [1, 2, 3, 4]
    store.upsert_actions([Action(name="new_one", description="x")])
    assert store.actions()[-1].code == 5
    with pytest.raises(BadInput, match="codes never change"):
        store.upsert_actions([Action(name="get_policy", code=9)])
    with pytest.raises(BadInput, match="already used"):
        store.upsert_actions([Action(name="other", code=1)])


def test_keyset_paging_counts_and_search(store):
    add(store, *[f"question number {i}" for i in range(120)], source="synthetic")
    add(store, "where is my payslip", "payslip missing overtime", source="user", split="test")
    first = store.page(ExampleFilter(), limit=50)
    second = store.page(ExampleFilter(), after=first[-1].id, limit=50)
    assert len(first) == 50 and second[0].id == first[-1].id + 1
    back = store.page(ExampleFilter(), before=second[0].id, limit=50)
    assert [e.id for e in back] == [e.id for e in first]
    assert store.page_at(ExampleFilter(), offset=50, limit=1)[0].id == second[0].id
    assert store.count() == 122
    assert store.counts_by("source") == {"synthetic": 120, "user": 2}
    assert store.counts_by("split") == {"unassigned": 120, "test": 2}
    hits = store.page(ExampleFilter(query="payslip"))
    assert [e.text for e in hits] == ["where is my payslip", "payslip missing overtime"]
    assert store.count(ExampleFilter(query="paysl overt")) == 1  # prefix words, all required
    assert store.count(ExampleFilter(query='"[bold * OR')) == 0  # user input never breaks FTS syntax


def test_decisions_are_append_only_and_undo_restores(store):
    add(store, "book friday off")
    eid = store.page()[0].id
    store.add_proposal(Proposal(example_id=eid, model="m", action="book_holiday", confidence=0.9))
    store.decide(eid, "accept", "book_holiday", model="m")
    store.decide(eid, "override", "escalate")
    assert store.example(eid).label == "escalate"
    store.undo()
    assert store.example(eid).label == "book_holiday"
    store.undo()
    assert store.example(eid).status == Status.UNREVIEWED and store.example(eid).label is None
    assert store.undo() is None  # nothing left to undo
    assert [d.kind for d in store.history(eid)] == ["accept", "override", "undo", "undo"]
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store.conn.execute("DELETE FROM decisions")
    with pytest.raises(BadInput):
        store.decide(eid, "override", "not_an_action")


def test_filters(store):
    add(store, "a question", "b question", "c question")
    a, b, c = store.page()
    store.add_proposals([
        Proposal(example_id=a.id, model="m1", action="get_policy", confidence=0.95),
        Proposal(example_id=a.id, model="m2", action="escalate", confidence=0.4),
        Proposal(example_id=b.id, model="m1", action="get_policy", confidence=0.9),
        Proposal(example_id=c.id, model="m1", action=None, valid=False, raw="nonsense"),
    ])
    assert store.add_proposal(Proposal(example_id=a.id, model="m1", action="escalate")) is False  # one per model
    store.decide(b.id, "skip")
    assert [e.id for e in store.page(ExampleFilter(disagreement=True))] == [a.id]
    assert [e.id for e in store.page(ExampleFilter(max_confidence=0.5))] == [a.id, c.id]
    assert [e.id for e in store.page(ExampleFilter(max_confidence=0.5, model="m1"))] == [c.id]
    assert [e.id for e in store.page(ExampleFilter(status=Status.SKIPPED))] == [b.id]
    assert [e.id for e in store.page(ExampleFilter(action="get_policy"))] == [a.id, b.id]
    assert store.unproposed("m2") == [b, c] or [e.id for e in store.unproposed("m2")] == [b.id, c.id]
    assert store.proposal_models() == ["m1", "m2"]


def test_two_processes_write_side_by_side(store):
    """A second process appends decisions while this one writes proposals: nothing is lost."""
    add(store, *[f"q{i}" for i in range(200)])
    ids = [e.id for e in store.page(limit=200)]
    code = (
        "import sys; from routelab.store import Store\n"
        f"s = Store.open({str(store.path)!r})\n"
        f"for i in {ids!r}: s.decide(i, 'flag')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    for i in ids:
        store.add_proposal(Proposal(example_id=i, model="m", action="escalate", confidence=0.5))
    assert proc.wait(timeout=120) == 0
    assert store.count(ExampleFilter(status=Status.FLAGGED)) == 200
    assert store.conn.execute("SELECT COUNT(*) FROM proposals").fetchone()[0] == 200


def test_jobs_and_events_dedup(store):
    from routelab.domain import Job, JobEvent

    job = store.create_job(Job(kind="finetune", provider="openai"))
    ev = [JobEvent(job_id=job.id, remote_id="ev1", message="hello"), JobEvent(job_id=job.id, remote_id="ev2")]
    assert store.add_job_events(ev) == 2
    assert store.add_job_events(ev) == 0
    done = store.update_job(job.id, status="succeeded", result={"model": "x"})
    assert done.finished_at and done.result == {"model": "x"}


def test_conflict_filter_finds_labels_a_model_disagrees_with(store):
    add(store, "x one", "x two", "x three")
    a, b, c = store.page()
    store.decide(a.id, "override", "get_policy")
    store.decide(b.id, "override", "escalate")
    store.add_proposals([
        Proposal(example_id=a.id, model="m", action="get_policy", confidence=0.9),
        Proposal(example_id=b.id, model="m", action="get_payslip", confidence=0.9),
        Proposal(example_id=c.id, model="m", action="get_payslip", confidence=0.9),  # unlabelled: no conflict
    ])
    assert [e.id for e in store.page(ExampleFilter(conflict=True))] == [b.id]
    assert store.count(ExampleFilter(conflict=True, model="other")) == 0


def test_bulk_accept_queries_touch_only_unreviewed_valid_confident_proposals(store):
    add(store, "q one", "q two", "q three", "q four")
    a, b, c, d = store.page()
    store.add_proposals([
        Proposal(example_id=a.id, model="m", action="get_policy", confidence=0.95),
        Proposal(example_id=b.id, model="m", action="escalate", confidence=0.5),
        Proposal(example_id=c.id, model="m", action=None, valid=False, confidence=0.99),
        Proposal(example_id=d.id, model="m", action="get_payslip", confidence=0.97),
    ])
    store.decide(d.id, "override", "escalate")  # a human label is never bulk accepted
    assert store.count_bulk_accept(ExampleFilter(), "m") == 2
    assert store.count_bulk_accept(ExampleFilter(), "m", 0.9) == 1
    assert store.count_bulk_accept(ExampleFilter(), "other") == 0
    assert store.bulk_accept_candidates(ExampleFilter(), "m") == [(a.id, "get_policy"), (b.id, "escalate")]
    assert store.bulk_accept_candidates(ExampleFilter(), "m", after=a.id, limit=1) == [(b.id, "escalate")]
    assert store.bulk_accept_candidates(ExampleFilter(source="elsewhere"), "m") == []


def test_data_version_changes_on_another_connections_commit(store):
    before = store.data_version()
    add(store, "my own write")
    assert store.data_version() == before  # a view does not reload for its own writes
    with Store.open(store.path) as other:
        other.decide(store.page()[0].id, "flag")
    assert store.data_version() != before
