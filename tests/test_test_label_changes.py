"""Test labels changed after a model proposed for them: derived from the decision and proposal logs,
and reported by `routelab eval` (a table line and `test_labels_changed_after_proposal`)."""

from __future__ import annotations

import json

from routelab.domain import DecisionKind, NewExample, Proposal
from routelab.services.eval_caveats import changed_test_labels_line
from routelab.store.decisions import Entry

# one clock for both logs: the import is stamped now (2026); these stamp what comes after it
PROPOSED = "2030-01-01T00:00:00.000+00:00"
BEFORE, AFTER, LATER = "2029-06-01T00:00:00.000+00:00", "2030-06-01T00:00:00.000+00:00", "2030-07-01T00:00:00.000+00:00"


def _decide(store, n: int, example_id: int, kind: str, action: str | None, at: str) -> str:
    entry_id = f"e{n}"
    store.apply_entries([Entry(id=entry_id, op="decide", example_id=example_id, kind=kind, action=action, at=at)])
    return entry_id


def _cancel(store, n: int, example_id: int, target: str, at: str) -> None:
    store.apply_entries([Entry(id=f"c{n}", op="cancel", example_id=example_id, target=target, at=at)])


def _propose(store, example_id: int, action: str = "get_policy", at: str = PROPOSED, model: str = "gpt-4.1") -> None:
    store.add_proposal(Proposal(example_id=example_id, model=model, action=action, confidence=0.9, created_at=at))


def test_only_labels_that_moved_after_a_proposal_count(store):
    texts = ["relabelled after", "relabelled before", "first labelled after", "changed and undone",
             "changed and changed back", "train question", "never proposed", "undo of an old accept"]
    labels = ["escalate", "escalate", None, "escalate", "escalate", "escalate", "escalate", None]
    splits = ["test"] * 5 + ["train", "test", "test"]
    store.add_examples([NewExample(text=t, label=a, split=s) for t, a, s in zip(texts, labels, splits)])
    ids = [e.id for e in store.page(limit=100)]
    for i in ids[:6] + ids[7:]:
        _propose(store, i)
    _decide(store, 1, ids[0], "override", "book_holiday", AFTER)  # counts: relabelled
    _decide(store, 2, ids[1], "override", "book_holiday", BEFORE)  # before any proposal: the label then
    _decide(store, 3, ids[2], "accept", "get_policy", AFTER)  # counts: first labelled, the answer on screen
    undone = _decide(store, 4, ids[3], "override", "get_payslip", AFTER)
    _cancel(store, 4, ids[3], undone, LATER)  # back to the imported label: nothing left to count
    _decide(store, 5, ids[4], "override", "get_payslip", AFTER)
    _decide(store, 6, ids[4], "override", "escalate", LATER)  # changed back by hand
    _decide(store, 7, ids[5], "override", "book_holiday", AFTER)  # train: not held out
    _decide(store, 8, ids[6], "override", "book_holiday", AFTER)  # no model answered for it
    old = _decide(store, 9, ids[7], "accept", "get_payslip", BEFORE)
    _cancel(store, 9, ids[7], old, AFTER)  # the label made before the proposal, taken back after it...
    _decide(store, 10, ids[7], "override", "book_holiday", LATER)  # ...and another given: relabelled
    changes = store.changed_test_labels()
    assert changes.example_ids == [ids[0], ids[2], ids[7]]
    assert (changes.total, changes.relabelled, changes.first_labelled) == (3, 2, 1)
    assert store.example(ids[1]).label == "book_holiday" and store.example(ids[3]).label == "escalate"


def test_the_first_proposal_of_any_model_is_the_line(store):
    store.add_examples([NewExample(text="a held-out question", label="escalate", split="test")])
    (ex,) = store.page(limit=1)
    _propose(store, ex.id, model="local", at=LATER)
    _decide(store, 1, ex.id, "override", "get_payslip", AFTER)  # before local answered...
    assert store.changed_test_labels().total == 0
    _propose(store, ex.id, model="gpt-4.1", at=BEFORE)  # ...but after gpt-4.1 had
    assert store.changed_test_labels().example_ids == [ex.id]
    # the same millisecond as the proposal counts as after it
    store.add_examples([NewExample(text="another", label="escalate", split="test")])
    other = store.page(limit=2)[1]
    _propose(store, other.id, at=AFTER)
    _decide(store, 2, other.id, "override", "get_payslip", AFTER)
    assert store.changed_test_labels().total == 2


def test_no_test_split_or_no_proposal_is_zero(store):
    assert store.changed_test_labels().total == 0
    store.add_examples([NewExample(text="q", label="escalate", split="test")])
    store.decide(store.page(limit=1)[0].id, DecisionKind.OVERRIDE, "get_payslip")
    assert store.changed_test_labels().total == 0
    assert changed_test_labels_line(store.changed_test_labels()) == "test labels changed after a model proposed for them: 0"


def test_eval_reports_the_test_labels_changed_after_a_proposal(demo_store, run_cli):
    path = demo_store.path
    r = run_cli("--db", path, "eval", "--models", "local-zero-shot", "--json")
    assert r.code == 0, r
    out = json.loads(r.out)
    assert out["test_labels_changed_after_proposal"] == 0
    # the eval's predictions are proposals: a reviewer who now takes the model's answer for a test question
    test = [e for e in demo_store.page(limit=1000) if e.split == "test"]
    wrong = [(e, p) for e in test for p in demo_store.proposals(e.id)
             if p.model == "local-zero-shot" and p.valid and p.action != e.label][:3]
    assert len(wrong) == 3
    for e, p in wrong:
        demo_store.decide(e.id, DecisionKind.ACCEPT, p.action, model=p.model)
    r = run_cli("--db", path, "eval", "--models", "local-zero-shot", "--json")
    out = json.loads(r.out)
    assert out["test_labels_changed_after_proposal"] == 3
    assert out["test_label_changes"] == {"total": 3, "relabelled": 3, "first_labelled": 0,
                                         "example_ids": sorted(e.id for e, _ in wrong)}
    r = run_cli("--db", path, "eval", "--models", "local-zero-shot")
    assert r.code == 0 and "test labels changed after a model proposed for them: 3 (3 relabelled" in r.out
    r = run_cli("--db", path, "eval", "--show", "--json")
    assert json.loads(r.out)["test_labels_changed_after_proposal"] == 3
    demo_store.undo()  # the newest one taken back: its imported label is back
    r = run_cli("--db", path, "eval", "--show")
    assert "test labels changed after a model proposed for them: 2 " in r.out


async def test_the_evaluate_pane_says_how_many_test_labels_changed(demo_store):
    from textual.widgets import Static

    from routelab.config import Settings
    from routelab.services import evaluation as ev
    from tests.test_eval_pane import PaneApp, _settle

    ev.evaluate(demo_store, [ev.ZERO_SHOT], settings=Settings())
    test = [e for e in demo_store.page(limit=1000) if e.split == "test"][:2]
    for e in test:
        demo_store.decide(e.id, DecisionKind.OVERRIDE, "escalate" if e.label != "escalate" else "get_policy")
    app = PaneApp(demo_store.path, auto_run=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await _settle(app, pilot)
        status = str(app.query_one("#eval-status", Static).render())
        assert "2 test labels changed after a model proposed for them" in status
