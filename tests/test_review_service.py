"""Review services without the TUI: best proposal, bulk accept (service and CLI), the row window, fuzzy picking."""

from __future__ import annotations

import json
import random

from routelab.domain import DecisionKind, NewExample, Proposal, Status
from routelab.services.review import SessionPace, best_proposal, bulk_accept, count_bulk
from routelab.store import ExampleFilter, Store
from routelab.tui.components.example_list import RowWindow
from routelab.tui.components.picker import PickItem, fuzzy_rank
from tests.test_tui_review import operator_decisions, seed


def P(model, action, conf, valid=True):
    return Proposal(example_id=1, model=model, action=action, confidence=conf, valid=valid)


def test_best_proposal_prefers_teacher_then_confidence():
    props = [P("local", "a", 0.99), P("gpt-4.1", "b", 0.6), P("x", None, None, valid=False)]
    assert best_proposal(props, "gpt-4.1").model == "gpt-4.1"
    assert best_proposal(props, "other").model == "local"
    assert best_proposal(props, None).action == "a"
    assert best_proposal([P("gpt-4.1", None, None, valid=False), P("local", "c", None)], "gpt-4.1").model == "local"
    assert best_proposal([P("x", None, None, valid=False)], None) is None
    assert best_proposal([], "gpt-4.1") is None


def test_bulk_accept_each_its_own_decision(store):
    ids = seed(store)
    store.decide(ids[1], DecisionKind.SKIP)  # humans win: skipped questions are left alone
    flt = ExampleFilter()
    assert count_bulk(store, flt, "gpt-4.1", 0.9) == 3
    result = bulk_accept(store, flt, "gpt-4.1", 0.9)
    assert result.accepted == 3
    assert [e for _, e in result.decisions] == [ids[0], ids[3], ids[5]]
    assert count_bulk(store, flt, "gpt-4.1", 0.9) == 0
    assert bulk_accept(store, flt, "gpt-4.1", 0.9).accepted == 0  # idempotent
    assert store.example(ids[1]).status == Status.SKIPPED
    store.undo()
    assert store.example(ids[5]).status == Status.UNREVIEWED
    assert [d.kind for d in store.history(ids[5])] == ["accept", "undo"]


def test_bulk_accept_respects_the_filter(store):
    ids = seed(store, held_out=True)
    # the test split (ids 2 and 6) is held out unless named
    assert count_bulk(store, ExampleFilter(source="synthetic"), "gpt-4.1") == 1
    assert count_bulk(store, ExampleFilter(query="payslip"), "gpt-4.1", 0.9) == 1
    assert count_bulk(store, ExampleFilter(), "local", 0.65) == 1
    assert count_bulk(store, ExampleFilter(split="test"), "local", 0.65) == 1
    r = bulk_accept(store, ExampleFilter(), "gpt-4.1")
    assert sorted(e for _, e in r.decisions) == [ids[0], ids[1], ids[3], ids[4], ids[5]]
    r = bulk_accept(store, ExampleFilter(split="test"), "gpt-4.1")
    assert sorted(e for _, e in r.decisions) == [ids[2], ids[6]]


def test_cli_accept(store, db_path, run_cli):
    ids = seed(store, held_out=True)
    r = run_cli("accept", "--db", db_path, "--model", "gpt-4.1", "--min-confidence", "0.9", "--dry-run")
    assert r.code == 0 and "would accept 4" in r.out
    assert operator_decisions(store) == []
    r = run_cli("accept", "--db", db_path, "--model", "gpt-4.1", "--min-confidence", "0.9", "--source", "user")
    assert r.code == 0, r
    assert "accepted 3 proposals from gpt-4.1" in r.out
    assert [d[0] for d in operator_decisions(store)] == [ids[0], ids[1], ids[3]]
    r = run_cli("accept", "--db", db_path, "--model", "gpt-4.1", "--json")
    # the rest, at any confidence (the invalid one excepted), but not the two test questions
    assert r.code == 0 and json.loads(r.out) | {"model": None} == {
        "accepted": 2, "model": None, "min_confidence": None, "test_left_out": 2}
    assert ids[2] not in [d[0] for d in operator_decisions(store)]
    r = run_cli("accept", "--db", db_path, "--model", "gpt-4.1", "--split", "test")
    assert r.code == 0 and "accepted 2 proposals" in r.out and "left out" not in r.out
    assert [d[0] for d in operator_decisions(store)][-2:] == [ids[2], ids[6]]


def test_cli_accept_bad_input(store, db_path, run_cli, tmp_path):
    seed(store)
    r = run_cli("accept", "--db", db_path, "--model", "nobody")
    assert r.code == 2 and "no proposals from model 'nobody'" in r.err and "gpt-4.1" in r.err
    r = run_cli("accept", "--db", db_path, "--model", "gpt-4.1", "--min-confidence", "1.5")
    assert r.code == 2 and "between 0 and 1" in r.err
    r = run_cli("accept", "--db", db_path, "--model", "gpt-4.1", "--action", "nope")
    assert r.code == 2 and "unknown action" in r.err
    r = run_cli("accept", "--db", tmp_path / "missing.db", "--model", "gpt-4.1")
    assert r.code == 2 and not (tmp_path / "missing.db").exists()
    r = run_cli("accept", "--db", db_path)
    assert r.code == 2
    assert operator_decisions(store) == []


def test_row_window_matches_the_store(store):
    store.add_examples([NewExample(text=f"question number {i}", source="user") for i in range(500)])
    rnd = random.Random(5)
    for i in rnd.sample(range(1, 501), 150):
        store.decide(i, DecisionKind.SKIP)
    flt = ExampleFilter(status=Status.UNREVIEWED)
    truth = [e.id for e in store.page(flt, limit=1000)]
    w = RowWindow(store, flt, page=10, max_rows=40)
    w.reset()
    assert w.count == len(truth) == 350
    # walk forward, backward, and jump around: always the same row as a full query
    order = list(range(350)) + list(range(349, -1, -1)) + [rnd.randrange(350) for _ in range(200)] + [349, 0, 175]
    for off in order:
        assert w.get(off).id == truth[off], off
        assert len(w.rows) <= 40 + 10
    assert w.get(350) is None and w.get(-1) is None
    # a decided row leaves; an undone one comes back where it belongs
    w.get(100)
    eid = truth[100]
    w.remove(100)
    assert w.count == 349 and w.get(100).id == truth[101]
    back = store.example(eid)
    assert w.insert(back) == 100 and w.count == 350 and w.get(100).id == eid
    assert w.offset_of(eid) == 100
    # reanchor after outside changes
    assert w.reanchor(truth[200], 200, 350) == 200 and w.get(200).id == truth[200] and w.get(199).id == truth[199]
    assert w.reload_around(truth[300]) == 300


def test_row_window_shrinks_when_rows_vanish_elsewhere(store, db_path):
    store.add_examples([NewExample(text=f"q {i}") for i in range(30)])
    flt = ExampleFilter(status=Status.UNREVIEWED)
    w = RowWindow(store, flt, page=10)
    w.reset()
    with Store.open(db_path) as other:
        for i in range(21, 31):
            other.decide(i, DecisionKind.SKIP)
    for off in range(30):
        w.get(off)
    assert w.count == 20  # learned while paging, without a COUNT


def test_fuzzy_rank_banking77_style():
    names = ["card_payment_fee_charged", "card_arrival", "pending_top_up", "top_up_failed", "exchange_rate",
             "declined_card_payment", "lost_or_stolen_card", "activate_my_card", "reverted_card_payment?"]
    items = [PickItem(n, n, str(i + 1)) for i, n in enumerate(names)]
    assert fuzzy_rank("lost", items)[0].value == "lost_or_stolen_card"
    assert fuzzy_rank("tuf", items)[0].value == "top_up_failed"
    assert fuzzy_rank("xr", items)[0].value == "exchange_rate"
    assert fuzzy_rank("decl", items)[0].value == "declined_card_payment"
    assert fuzzy_rank("5", items)[0].value == "exchange_rate"  # a code picks exactly
    assert fuzzy_rank("zzz", items) == []
    assert len(fuzzy_rank("", items)) == len(items)


def test_session_pace_uses_the_injected_clock():
    now = [1000.0]
    pace = SessionPace(clock=lambda: now[0])
    assert pace.per_minute() is None
    for _ in range(30):
        pace.record()
        now[0] += 2.0  # one decision every two seconds
    assert round(pace.per_minute()) == 30
    now[0] += 600  # a long break: the window forgets
    assert pace.per_minute() == 0


def test_reopening_the_workspace_keeps_other_processes_safe(store, db_path):
    """The TUI opens the workspace several times (panes, workers). Opening must not drop this
    process's SQLite locks, or another process closing its connection deletes our -wal file."""
    import subprocess
    import sys

    ids = seed(store)
    Store.open(db_path).close()  # e.g. a worker thread counting
    probe = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT 1').fetchone(); c.close()"
    subprocess.run([sys.executable, "-c", probe, str(db_path)], check=True)
    assert (db_path.parent / (db_path.name + "-wal")).exists()
    store.decide(ids[0], DecisionKind.SKIP)
    count = "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(\"SELECT COUNT(*) FROM decisions WHERE kind = 'skip'\").fetchone()[0])"
    out = subprocess.run([sys.executable, "-c", count, str(db_path)], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "1"


def test_row_window_provisional_count_grows_while_paging(store):
    store.add_examples([NewExample(text=f"question {i}") for i in range(35)])
    flt = ExampleFilter(status=Status.UNREVIEWED)
    w = RowWindow(store, flt, page=10, max_rows=20)
    w.reset(defer_count=True)
    assert (w.count, w.exact) == (11, False)
    off = 0
    while w.get(off) is not None:
        assert w.get(off).id == off + 1
        off += 1
    assert off == 35 and w.count == 35
    w.set_count(store.count(flt))
    assert w.exact and w.get(0).id == 1 and w.get(34).id == 35


async def test_pane_counts_a_big_filter_in_the_background(store, db_path):
    from routelab.tui.app import RoutelabApp
    from routelab.tui.panes.review import ReviewPane

    store.add_examples([NewExample(text=f"question {i}") for i in range(450)])
    app = RoutelabApp(db_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        pane = app.query_one(ReviewPane)
        assert pane.window.exact and pane.window.count == 450
        await pilot.press("G")
        assert pane.shown.id == 450
        await pilot.press("v", "s", "k", "i", "enter", "v", "u", "n", "r", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert pane.window.exact and pane.window.count == 450
