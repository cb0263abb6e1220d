"""The test split is held out of review: no queue, filter default or bulk accept reaches a test
question unless the reviewer names the test split (real workspaces, the real CLI and app)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from routelab.config import settings as load_settings
from routelab.domain import DecisionKind, ExampleFilter, Status
from routelab.services.review_session import ReviewSession
from routelab.store import Store
from routelab.tui.app import RoutelabApp
from routelab.tui.components.bulk import BulkAcceptScreen
from routelab.tui.components.review_filters import UNREVIEWED, apply_choice, describe, filter_menu
from tests.conftest import DATA
from tests.test_tui_review import SIZE, operator_decisions, seed, started

BANKING = DATA / "banking77"


WRONG_TEST_LABELS = 5


@pytest.fixture
def banking(tmp_path, run_cli):
    """BANKING77's train and test slices imported with their labels, then labelled by the local teacher.
    The first test labels are moved to the next category (label errors, as the real test set has), so
    the teacher disagrees with some test labels: what the app used to open on."""
    db = tmp_path / "bank.db"
    lines = (BANKING / "test_slice.csv").read_text().splitlines()
    cats = sorted({ln.rsplit(",", 1)[1] for ln in lines[1:]})
    for k in range(1, WRONG_TEST_LABELS + 1):
        text, cat = lines[k].rsplit(",", 1)
        lines[k] = f"{text},{cats[(cats.index(cat) + 1) % len(cats)]}"
    (tmp_path / "test.csv").write_text("\n".join(lines) + "\n")
    r = run_cli("import", BANKING / "train_slice.csv", "--db", db, "--split", "train", "--create-actions")
    assert r.code == 0, r
    assert run_cli("import", tmp_path / "test.csv", "--db", db, "--split", "test").code == 0
    r = run_cli("label", "--db", db, "--provider", "local")
    assert r.code == 0, r
    return db


def test_guarded_filter_leaves_the_test_split_out_unless_named(store):
    seed(store, held_out=True)
    plain = ExampleFilter(status=Status.UNREVIEWED)
    assert store.count(plain) == 8  # services (labelling, eval, export) see every split
    assert store.count(plain.guarded()) == 6
    assert plain.guarded().guarded() == plain.guarded()
    named = ExampleFilter(split="test").guarded()
    assert not named.hide_test and store.count(named) == 2
    assert store.count(replace(ExampleFilter().guarded(), split="train")) == 4


def test_labelled_dataset_opens_on_a_queue_without_test_questions(banking):
    with Store.open(banking) as s:
        assert s.count(ExampleFilter(status=Status.UNREVIEWED)) == 0  # every question came with its label
        # what the app used to open on: the test labels the teacher disagrees with
        assert s.count(ExampleFilter(conflict=True, split="test")) >= WRONG_TEST_LABELS
        train = s.count(ExampleFilter(split="train"))
    session = ReviewSession.open(banking, load_settings())
    try:
        flt, why = session.opening_filter()
        assert why is not None and flt.hide_test
        rows = session.page(flt, limit=1000)
        assert rows and {e.split for e in rows} == {"train"} and len(rows) <= train
        assert session.count(flt) == len(rows)
        # every default the pane offers is held out too
        for choice in ("all", "conflict", "disagreement", "clear", "status:reviewed"):
            assert all(e.split != "test" for e in session.page(apply_choice(flt, choice), limit=1000)), choice
        # named, the test split is there
        named = apply_choice(flt, "split:test")
        assert named.split == "test" and session.count(named) > 0
        assert {e.split for e in session.page(named, limit=1000)} == {"test"}
        assert session.held_out(ExampleFilter().guarded()) == 20 and session.held_out(named) == 0
    finally:
        session.close()


async def test_the_app_opens_without_test_questions_and_shows_them_when_named(banking):
    app = RoutelabApp(banking)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        assert pane.window.count > 0
        assert {pane.window.get(i).split for i in range(pane.window.count)} == {"train"}
        await pilot.press("v", *"split test", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert pane.flt.split == "test" and pane.window.count == 20
        assert "split test (held out)" in pane._filter_text()
        assert {pane.window.get(i).split for i in range(pane.window.count)} == {"test"}
        await pilot.press("v", *"split test", "enter")  # chosen again: off, and held out again
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert pane.flt.split is None and pane.flt.hide_test
        assert all(pane.window.get(i).split != "test" for i in range(pane.window.count))


async def test_bulk_accept_in_the_app_leaves_test_questions_alone_unless_named(store, db_path):
    ids = seed(store, held_out=True)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        assert pane.window.count == 6 and ids[2] not in {pane.window.get(i).id for i in range(6)}
        await pilot.press("A", "ctrl+a", "ctrl+k", "0")  # every proposal of the teacher's
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.counted == ("gpt-4.1", 0.0, 5)  # ids 0, 1, 3, 4, 5: the test ones left out
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, BulkAcceptScreen)
        assert store.example(ids[2]).status == Status.UNREVIEWED
        assert store.example(ids[6]).status == Status.UNREVIEWED
        await pilot.press("v", *"split test", "enter", "A", "ctrl+a", "ctrl+k", "0")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.counted == ("gpt-4.1", 0.0, 2)  # named: the two test questions
        await pilot.press("escape")
    assert {d[0] for d in operator_decisions(store)} == {ids[0], ids[1], ids[3], ids[4], ids[5]}


async def test_a_confusion_of_a_test_evaluation_opens_its_test_questions(store, db_path):
    from routelab.tui.messages import ShowExamples

    ids = seed(store, held_out=True)
    store.decide(ids[4], DecisionKind.ACCEPT, "get_payslip", model="gpt-4.1")
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        app.post_message(ShowExamples([ids[4], ids[6]], "a confusion"))  # no split named: held out
        await pilot.pause()
        assert pane.window.count == 1 and pane.shown.id == ids[4]
        app.post_message(ShowExamples([ids[2], ids[6]], "a confusion", "test"))  # an evaluation on test
        await pilot.pause()
        assert pane.window.count == 2 and pane.shown.id == ids[2]
        assert "(held out)" in pane._filter_text()


def test_filter_menu_names_the_test_split_and_says_it_is_held_out():
    items = {i.value: i.label for i in filter_menu(UNREVIEWED, sources=[], models=[], actions=[])}
    assert "held out" in items["split:test"] and "held out" not in items["split:train"]
    assert "all questions but test" in items["all"]
    assert apply_choice(UNREVIEWED, "all").hide_test and apply_choice(UNREVIEWED, "clear") == UNREVIEWED
    assert describe(apply_choice(UNREVIEWED, "split:test")) == "unreviewed · split test (held out)"


async def test_empty_hint_names_the_held_out_questions(store, db_path):
    ids = seed(store, held_out=True)
    for i in ids:
        if i not in (ids[2], ids[6]):
            store.decide(i, DecisionKind.SKIP)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        await pilot.press("v", *"clea", "enter")  # the unreviewed questions: only test ones are left
        assert pane.shown is None
        hint = str(pane.query_one("#review-detail").renderable.renderables[0])
        assert "2 test-split questions held out: v, split test shows them" in hint
