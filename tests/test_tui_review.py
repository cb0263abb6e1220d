"""The Review pane driven with Pilot: every decision is asserted in the store."""

from __future__ import annotations

import pytest

from routelab.domain import DecisionKind, NewExample, Proposal, Status
from routelab.store import ExampleFilter, Store
from routelab.tui.app import RoutelabApp
from routelab.tui.components.bulk import BulkAcceptScreen
from routelab.tui.components.help import HelpScreen
from routelab.tui.components.picker import PickerScreen
from routelab.tui.panes.review import ReviewPane

SIZE = (120, 40)

QUESTIONS = [
    ("where is my payslip for May", "user", "train"),
    ("book me off next friday", "user", "train"),
    ("what is the remote work policy", "synthetic", "test"),
    ("my manager is bullying me", "user", "validation"),
    ("payslip shows the wrong tax code", "user", "train"),
    ("how many days of leave do I get", "synthetic", "train"),
    ("cancel my holiday on monday", "user", "test"),
    ("asdfgh", "user", "unassigned"),
]


def seed(store: Store, *, held_out: bool = False) -> list[int]:
    """Eight questions with proposals from two models (one invalid, some disagreeing). `held_out`:
    ids 2 and 6 are in the test split (which review leaves out unless named), else in validation."""
    store.set_setting("teacher", "gpt-4.1")
    store.add_examples([NewExample(text=t, source=s, split=sp if held_out or sp != "test" else "validation")
                        for t, s, sp in QUESTIONS])
    ids = [e.id for e in store.page(limit=100)]
    teacher = ["get_payslip", "book_holiday", "get_policy", "escalate", "get_payslip", "get_policy", "book_holiday", None]
    conf = [0.95, 0.91, 0.55, 0.97, 0.85, 0.92, 0.4, None]
    for i, (a, c) in zip(ids, zip(teacher, conf)):
        store.add_proposal(Proposal(example_id=i, model="gpt-4.1", action=a, valid=a is not None, confidence=c,
                                    raw=None if a else "I cannot help with that"))
    local = {ids[0]: ("get_payslip", 0.7), ids[2]: ("escalate", 0.8), ids[6]: ("get_policy", 0.6)}
    for i, (a, c) in local.items():
        store.add_proposal(Proposal(example_id=i, model="local", action=a, confidence=c))
    return ids


def operator_decisions(store: Store) -> list[tuple[int, str, str | None, str | None]]:
    rows = store.conn.execute(
        "SELECT example_id, kind, action, model FROM decisions WHERE kind != 'import' ORDER BY id"
    ).fetchall()
    return [tuple(r) for r in rows]


async def started(app: RoutelabApp, pilot) -> ReviewPane:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    return app.query_one(ReviewPane)


async def test_whole_session_accept_number_skip_flag_undo(store, db_path):
    ids = seed(store)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        assert pane.shown.id == ids[0]
        assert pane.best.model == "gpt-4.1"  # the configured teacher wins over local
        await pilot.press("enter")  # accept the teacher's get_payslip
        assert pane.shown.id == ids[1]  # the next unreviewed question, at once
        await pilot.press("a")  # accept book_holiday
        await pilot.press("4")  # override get_policy -> escalate
        assert pane.shown.id == ids[3]
        await pilot.press("4")  # same as the proposal: recorded as an accept of gpt-4.1's
        await pilot.press("s")  # skip ids[4]
        await pilot.press("f")  # flag ids[5]
        assert pane.shown.id == ids[6]
        assert pane.window.count == 2
        await pilot.press("u")  # undo the flag: ids[5] is back under the cursor
        assert pane.shown.id == ids[5]
        assert pane.window.count == 3
        await pilot.press("u")  # undo the skip
        assert pane.shown.id == ids[4]
        assert pane.status_counts["reviewed"] == 4
        assert pane.status_counts["unreviewed"] == 4

    assert operator_decisions(store) == [
        (ids[0], "accept", "get_payslip", "gpt-4.1"),
        (ids[1], "accept", "book_holiday", "gpt-4.1"),
        (ids[2], "override", "escalate", None),
        (ids[3], "accept", "escalate", "gpt-4.1"),
        (ids[4], "skip", None, None),
        (ids[5], "flag", None, None),
        (ids[5], "undo", None, None),
        (ids[4], "undo", None, None),
    ]
    assert store.example(ids[2]).label == "escalate"
    assert store.example(ids[4]).status == Status.UNREVIEWED
    assert store.example(ids[5]).status == Status.UNREVIEWED


async def test_accept_without_a_valid_proposal_does_nothing(store, db_path):
    ids = seed(store)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        await pilot.press("G")  # last: "asdfgh", whose only proposal is invalid
        assert pane.shown.id == ids[-1]
        assert pane.best is None
        await pilot.press("enter")
        assert pane.shown.id == ids[-1]
        await pilot.press("j", "k", "g")
        assert pane.shown.id == ids[0]
        await pilot.press("down", "down", "up")
        assert pane.shown.id == ids[1]
    assert operator_decisions(store) == []


async def test_override_through_the_fuzzy_picker(store, db_path):
    ids = seed(store)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        await pilot.press("o")
        assert isinstance(app.screen, PickerScreen)
        await pilot.press("e", "s", "c")
        await pilot.press("enter")
        assert not isinstance(app.screen, PickerScreen)
        assert pane.shown.id == ids[1]
        await pilot.press("o", "escape")  # cancelled: nothing decided
        assert pane.shown.id == ids[1]
    assert operator_decisions(store) == [(ids[0], "override", "escalate", None)]


async def test_filters_and_search(store, db_path):
    ids = seed(store)
    store.decide(ids[1], DecisionKind.SKIP)
    store.decide(ids[3], DecisionKind.FLAG)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        assert pane.window.count == 6
        await pilot.press("v", *"skip", "enter")
        assert pane.flt == ExampleFilter(status=Status.SKIPPED).guarded()
        assert pane.window.count == 1 and pane.shown.id == ids[1]
        await pilot.press("enter")  # accept it: it leaves the skipped filter
        assert pane.window.count == 0 and pane.shown is None
        await pilot.press("v", *"all", "enter", "v", *"disa", "enter")
        assert pane.flt == ExampleFilter(disagreement=True).guarded()
        assert {pane.window.get(i).id for i in range(pane.window.count)} == {ids[2], ids[6]}
        await pilot.press("v", *"clea", "enter")
        assert pane.flt == ExampleFilter(status=Status.UNREVIEWED).guarded()
        await pilot.press("v", *"synt", "enter")
        assert pane.window.count == 2
        await pilot.press("v", *"clea", "enter", "slash", *"pays", "enter")
        assert pane.flt.query == "pays"
        assert [pane.window.get(i).id for i in range(pane.window.count)] == [ids[0], ids[4]]
        await pilot.press("2")  # decisions work inside a search too
        assert pane.shown.id == ids[4]
        await pilot.press("escape")  # clears the search
        assert pane.flt.query is None
        await pilot.press("v", *"low", "enter")
        assert pane.window.count == store.count(ExampleFilter(status=Status.UNREVIEWED, max_confidence=0.6))
        await pilot.press("v", *"n get_pa", "enter")
        assert pane.flt.action == "get_payslip"
    assert (ids[1], "accept", "book_holiday", "gpt-4.1") in operator_decisions(store)
    assert (ids[0], "override", "book_holiday", None) in operator_decisions(store)


async def test_reviewed_filter_keeps_item_and_moves_on(store, db_path):
    ids = seed(store)
    store.decide(ids[0], DecisionKind.ACCEPT, "get_payslip", model="gpt-4.1")
    store.decide(ids[1], DecisionKind.ACCEPT, "book_holiday", model="gpt-4.1")
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        await pilot.press("v", *"reviewed", "enter")
        assert pane.window.count == 2
        await pilot.press("3")  # relabel: it stays reviewed, the cursor moves to the next one
        assert pane.window.count == 2 and pane.shown.id == ids[1]
        await pilot.press("u")
        assert pane.shown.id == ids[0]
    assert store.example(ids[0]).label == "get_payslip"


async def test_bulk_accept_from_the_pane(store, db_path):
    ids = seed(store)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        await pilot.press("A")
        assert isinstance(app.screen, BulkAcceptScreen)
        await pilot.press("ctrl+a", "ctrl+k", *"0.9")  # threshold 0.9
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen.counted == ("gpt-4.1", 0.9, 4)
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not isinstance(app.screen, BulkAcceptScreen)
        assert pane.window.count == 4
        await pilot.press("u")  # a bulk accept is one step: one u takes all of it back
        await app.workers.wait_for_complete()
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert pane.window.count == 8 and pane.status_counts["unreviewed"] == 8
        assert "Undone a bulk accept: 4 questions are unreviewed again." in notes(app)
        await pilot.press("u")  # nothing of this session is left: the workspace has nothing to undo
        assert "Nothing to undo." in notes(app)
    accepted = [d for d in operator_decisions(store) if d[1] == "accept"]
    assert accepted == [
        (ids[0], "accept", "get_payslip", "gpt-4.1"),
        (ids[1], "accept", "book_holiday", "gpt-4.1"),
        (ids[3], "accept", "escalate", "gpt-4.1"),
        (ids[5], "accept", "get_policy", "gpt-4.1"),
    ]
    assert [d[0] for d in operator_decisions(store) if d[1] == "undo"] == [ids[5], ids[3], ids[1], ids[0]]
    assert all(store.example(i).status == Status.UNREVIEWED for i in ids)


async def test_bulk_accept_refuses_an_empty_or_invalid_threshold(store, db_path):
    seed(store)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("A")
        assert isinstance(app.screen, BulkAcceptScreen)
        for typed in ([], list("abc"), list("1.5"), list("-0.1")):
            await pilot.press("ctrl+a", "ctrl+k", *typed)  # an emptied field is not "confidence ≥ 0"
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert app.screen.counted is None
            assert "enter a confidence between 0 and 1" in str(app.screen.query_one("#bulk-count").render())
            await pilot.press("enter")
            assert isinstance(app.screen, BulkAcceptScreen), typed
        await pilot.press("escape")
    assert operator_decisions(store) == []


async def test_help_overlay_lists_every_binding(store, db_path):
    seed(store)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        listed = " ".join(k for _, keys in app.screen.sections for k, _ in keys)
        for key in ("Enter", "1 … 9", "o", "s", "f", "u", "j", "k", "g", "G", "/", "v", "A", "?", "Ctrl+Q", "F1"):
            assert key in listed
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_labels_from_another_process_show_up(store, db_path):
    ids = seed(store)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        with Store.open(db_path) as other:  # e.g. a second reviewer, or `routelab label`
            other.decide(ids[2], DecisionKind.ACCEPT, "get_policy", model="gpt-4.1")
            other.add_proposal(Proposal(example_id=ids[0], model="other-model", action="escalate", confidence=0.99))
        pane._poll()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert pane.window.count == 7
        assert pane.status_counts["reviewed"] == 1
        assert pane.shown.id == ids[0]
        assert any(p.model == "other-model" for p in store.proposals(ids[0]))
        await pilot.press("a")  # the teacher is still preferred over a more confident model
    assert operator_decisions(store)[-1] == (ids[0], "accept", "get_payslip", "gpt-4.1")


async def test_ctrl_q_quits(store, db_path):
    seed(store)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("ctrl+q")
    assert app.return_code == 0


@pytest.mark.parametrize("empty", [True])
async def test_empty_workspace(db_path, empty):
    Store.open(db_path).close()
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        await pilot.press("enter", "s", "u", "o", "j", "G", "A")
        assert pane.shown is None


async def test_show_examples_from_another_pane(store, db_path):
    from routelab.tui.messages import ShowExamples

    ids = seed(store)
    store.decide(ids[4], DecisionKind.ACCEPT, "get_payslip", model="gpt-4.1")
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        app.post_message(ShowExamples([ids[4], ids[6]], "gpt-4.1: get_payslip → book_holiday"))
        await pilot.pause()
        assert pane.flt == ExampleFilter(ids=(ids[4], ids[6])).guarded()
        assert pane.window.count == 2 and pane.shown.id == ids[4]  # reviewed ones too
        assert "get_payslip → book_holiday" in pane._filter_text()
        await pilot.press("3")  # relabel: stays in the set, the next one is shown
        assert pane.window.count == 2 and pane.shown.id == ids[6]
    assert operator_decisions(store)[-1] == (ids[4], "accept", "get_payslip", "gpt-4.1")


async def test_confirm_dialog_is_literal_and_answers(store, db_path):
    from routelab.tui.components.confirm import ConfirmScreen

    seed(store)
    app = RoutelabApp(db_path)
    answers: list[bool] = []
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        app.push_screen(ConfirmScreen("Cancel [@click=app.quit]job[/] \x1b[31m3?"), answers.append)
        await pilot.pause()
        assert "[@click=app.quit]job[/]" in str(app.screen.message) and "\x1b" not in str(app.screen.message)
        await pilot.press("y")
        app.push_screen(ConfirmScreen("again?"), answers.append)
        await pilot.pause()
        await pilot.press("escape")
        assert app.is_running
    assert answers == [True, False]


async def test_command_palette_lists_review_commands(store, db_path):
    seed(store)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for title in ("Review", "Jobs", "Evaluate", "Playground", "Review: search", "Review: filter",
                      "Review: bulk accept", "Review: undo", "Keys"):
            assert title in commands
        commands["Jobs"].callback()
        await pilot.pause()
        commands["Review: search"].callback()
        await pilot.pause()
        assert pane.query_one("#review-search").display and app.focused.id == "review-search"


# ---------------------------------------------------------------- labelled datasets (BANKING77-style)

LABELLED = [
    ("where is my payslip for May", "get_payslip"),  # the teacher agrees
    ("book me off next friday", "book_holiday"),  # the teacher says get_policy
    ("what is the remote work policy", "get_policy"),  # only the local model disagrees
    ("my manager is bullying me", "escalate"),  # the teacher says get_policy
    ("payslip shows the wrong tax code", "get_payslip"),  # the teacher's answer is invalid
]


def seed_labelled(store: Store, *, proposals: bool = True) -> list[int]:
    """Every question imported with its file label (status reviewed), then a `routelab label` run."""
    store.set_setting("teacher", "gpt-4.1")
    store.add_examples([NewExample(text=t, label=a, split="train") for t, a in LABELLED])
    ids = [e.id for e in store.page(limit=100)]
    if proposals:
        teacher = ["get_payslip", "get_policy", "get_policy", "get_policy", None]
        for i, a in zip(ids, teacher):
            store.add_proposal(Proposal(example_id=i, model="gpt-4.1", action=a, valid=a is not None,
                                        confidence=0.9 if a else None, raw=None if a else "no idea"))
        store.add_proposal(Proposal(example_id=ids[2], model="local", action="escalate", confidence=0.7))
    return ids


def notes(app: RoutelabApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_labelled_dataset_opens_on_the_teachers_disagreements(store, db_path):
    ids = seed_labelled(store)
    assert store.count(ExampleFilter(status=Status.UNREVIEWED)) == 0
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        assert pane.flt == ExampleFilter(conflict=True, model="gpt-4.1").guarded()
        assert [pane.window.get(i).id for i in range(pane.window.count)] == [ids[1], ids[3]]
        assert pane.shown.id == ids[1]
        assert "nothing unreviewed: showing labels the teacher disagrees with" in notes(app)
        assert "label ≠ proposal" in pane._filter_text()
        await pilot.press("enter")  # accept the teacher: the label changes, it agrees now and leaves
        assert store.example(ids[1]).label == "get_policy"
        assert pane.window.count == 1 and pane.shown.id == ids[3]
        await pilot.press("u")  # undo: the file label is back, and so is the question
        assert store.example(ids[1]).label == "book_holiday"
        assert pane.window.count == 2 and pane.shown.id == ids[1]
        await pilot.press("j", "4")  # override with escalate, the file's label: still disagrees, stays
        assert store.example(ids[3]).label == "escalate"
        assert pane.window.count == 2
        await pilot.press("k", "3")  # override with get_payslip: still ≠ the teacher's get_policy
        assert store.example(ids[1]).label == "get_payslip"
        await pilot.press("v", *"label", "enter")  # the picker entry toggles it off
        assert pane.flt == ExampleFilter(model="gpt-4.1").guarded()
        await pilot.press("v", *"label", "enter")
        assert pane.flt.conflict
        await pilot.press("v", *"all", "enter", "v", *"label", "enter")  # any model's disagreement
        assert pane.flt == ExampleFilter(conflict=True).guarded()
        assert [pane.window.get(i).id for i in range(pane.window.count)] == [ids[1], ids[2], ids[3]]
    assert operator_decisions(store) == [
        (ids[1], "accept", "get_policy", "gpt-4.1"),
        (ids[1], "undo", None, None),
        (ids[3], "override", "escalate", None),
        (ids[1], "override", "get_payslip", None),
    ]


async def test_labelled_dataset_without_teacher_disagreement_opens_on_any_or_all(store, db_path):
    ids = seed_labelled(store, proposals=False)
    store.add_proposal(Proposal(example_id=ids[4], model="local", action="escalate", confidence=0.7))
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        assert pane.flt == ExampleFilter(conflict=True).guarded()  # the teacher has not spoken: another model has
        assert pane.window.count == 1 and pane.shown.id == ids[4]
        assert "nothing unreviewed: showing labels a model's proposal disagrees with" in notes(app)


async def test_labelled_dataset_without_proposals_opens_on_all(db_path):
    with Store.open(db_path) as s:
        s.set_setting("teacher", "gpt-4.1")
        s.add_examples([NewExample(text=t, label=a) for t, a in LABELLED], create_actions=True)
        ids = [e.id for e in s.page(limit=100)]
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        assert pane.flt == ExampleFilter().guarded()
        assert pane.window.count == len(LABELLED) and pane.shown.id == ids[0]
        assert "nothing unreviewed: showing every question outside the test split" in notes(app)
        await pilot.press("enter")  # no proposal to accept: nothing happens
        await pilot.press("2")  # an override of an imported label appends; the label changes
        assert pane.shown.id == ids[1]
    with Store.open(db_path) as s:
        assert operator_decisions(s) == [(ids[0], "override", s.actions()[1].name, None)]
        assert s.example(ids[0]).label == s.actions()[1].name


async def test_unreviewed_work_left_opens_on_unreviewed(store, db_path):
    ids = seed_labelled(store)
    store.add_examples([NewExample(text="a question nobody labelled")])
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        assert pane.flt == ExampleFilter(status=Status.UNREVIEWED).guarded()
        assert pane.window.count == 1 and pane.shown.id > ids[-1]
        assert not any("nothing unreviewed" in n for n in notes(app))


async def test_empty_workspace_says_how_to_get_questions(db_path):
    Store.open(db_path).close()
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        assert pane.flt == ExampleFilter(status=Status.UNREVIEWED).guarded()
        hint = "no questions yet: routelab import FILE (or routelab demo)"
        assert pane.dataset.empty_hint == hint
        shown = " ".join(pane.dataset.render_line(y).text.strip() for y in range(3))  # wrapped to the list
        assert hint in shown.strip()
        assert hint in str(pane.query_one("#review-detail").renderable.renderables[0])
        with Store.open(db_path) as other:  # an import from another process: the hint goes
            other.add_examples([NewExample(text="where is my payslip")])
        pane._poll()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert pane.shown is not None


async def test_all_clears_the_other_filters_but_not_the_search(store, db_path):
    ids = seed(store)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        await pilot.press("v", *"disa", "enter", "v", *"low", "enter", "v", *"synt", "enter")
        assert pane.flt == ExampleFilter(status=Status.UNREVIEWED, disagreement=True, max_confidence=0.6,
                                         source="synthetic").guarded()
        assert pane._filter_text() == "unreviewed · disagreement · confidence < 0.6 · source synthetic"
        await pilot.press("v", *"reviewed", "enter")  # a status only changes the status
        assert pane.flt.status == Status.REVIEWED and pane.flt.disagreement
        await pilot.press("slash", *"policy", "enter")
        await pilot.press("v", *"all", "enter")  # every question: the rest goes, the search stays
        assert pane.flt == ExampleFilter(query="policy").guarded()
        assert pane._filter_text() == "all · /policy"
        assert pane.shown.id == ids[2]
        await pilot.press("v", *"clea", "enter")  # clear: back to the start
        assert pane.flt == ExampleFilter(status=Status.UNREVIEWED).guarded()
        await pilot.press("question_mark")
        listed = " ".join(f"{k} {w}" for _, keys in app.screen.sections for k, w in keys)
        assert "clears every other filter" in listed and "label ≠ proposal" in listed


BANKING = ["balance_not_updated_after_cheque_or_cash_deposit", "card_arrival", "card_not_working",
           "lost_or_stolen_card", "lost_or_stolen_phone", "activate_my_card", "cash_withdrawal_charge"]


async def test_action_picker_ranks_substrings_first(db_path):
    with Store.open(db_path) as s:
        s.add_examples([NewExample(text=f"question about {n}", label=n) for n in BANKING], create_actions=True)
        s.add_examples([NewExample(text="my card has not come yet")])
        assert [a.name for a in s.actions()] == sorted(BANKING)  # codes in this order
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await started(app, pilot)
        assert pane.shown.text == "my card has not come yet"
        await pilot.press("o", *"lost")
        assert [i.value for i in app.screen.shown[:2]] == ["lost_or_stolen_card", "lost_or_stolen_phone"]
        assert app.screen.shown[2].value == "balance_not_updated_after_cheque_or_cash_deposit"  # a subsequence
        await pilot.press("ctrl+a", "ctrl+k", *"arr")
        assert app.screen.shown[0].value == "card_arrival"
        await pilot.press("ctrl+a", "ctrl+k", *"card")  # prefixes of the name or of a word, by code
        assert [i.value for i in app.screen.shown[:4]] == ["activate_my_card", "card_arrival", "card_not_working",
                                                          "lost_or_stolen_card"]
        await pilot.press("ctrl+a", "ctrl+k", *"arr", "enter")
        assert not isinstance(app.screen, PickerScreen)
    with Store.open(db_path) as s:
        assert operator_decisions(s)[-1][1:3] == ("override", "card_arrival")


async def test_picker_options_are_one_line_each(store, db_path):
    seed(store)
    app = RoutelabApp(db_path)
    async with app.run_test(size=SIZE) as pilot:
        await started(app, pilot)
        await pilot.press("o")
        await pilot.pause()
        ol = app.screen.query_one("#picker-list")
        assert ol.option_count == 4
        lines = [ol.render_line(y).text.rstrip() for y in range(ol.size.height)]
        filled = [ln for ln in lines if ln.strip()]
        assert len(filled) == 4  # no option spills onto a second line
        assert any(ln.endswith("…") for ln in filled)  # a long description is cut, on its own line
        assert not any(ln.strip() == "…" for ln in lines)
