"""Evaluation with a fallback action (in-scope accuracy, out-of-scope recall and precision) and ECE."""

from __future__ import annotations

import json

import pytest

from routelab.domain import Example, Proposal
from routelab.services.evaluation import (
    expected_calibration_error,
    out_of_scope_metrics,
    score,
    to_json,
    wilson_interval,
)
from tests.conftest import DATA

CLINC = DATA / "clinc150" / "data_full_slice.json"
JSON_KEYS = {"fallback", "in_scope_accuracy", "in_scope", "oos_recall", "oos_precision", "oos_n", "ece"}

# (gold, predicted (None: invalid), confidence) of nine made-up questions; the fallback is "oos"
CASES = [
    ("a", "a", 0.95),  # right
    ("a", "b", 0.95),
    ("b", "b", 0.30),  # right; 0.3 exactly: bin (0.2, 0.3]
    ("b", "oos", 0.55),  # answered the fallback, wrongly
    ("oos", "oos", 0.55),  # right
    ("oos", "a", 0.25),  # out of scope, missed
    ("oos", "oos", 0.85),  # right
    ("a", None, None),  # invalid: no confidence
    ("c", "oos", 0.55),  # answered the fallback, wrongly
]


def _examples_and_proposals():
    examples = [Example(id=i, text=f"q{i}", source="user", split="test", hash=str(i), created_at="", label=g)
                for i, (g, _, _) in enumerate(CASES, start=1)]
    proposals = {i: Proposal(example_id=i, model="m", action=p, valid=p is not None, confidence=c)
                 for i, (_, p, c) in enumerate(CASES, start=1)}
    return examples, proposals


def test_ece_hand_computed():
    assert expected_calibration_error([0.8, 0.8, 0.8, 0.8], [True, True, True, False]) == pytest.approx(0.05)
    # CASES' eight confidences, by bin: (0.9,1] {.95 right, .95 wrong}: |1 - 1.9|; (0.5,0.6] {.55 wrong,
    # .55 right, .55 wrong}: |1 - 1.65|; (0.2,0.3] {.25 wrong, .3 right}: |1 - .55|; (0.8,0.9] {.85 right}:
    # |1 - .85|. ECE = (0.9 + 0.65 + 0.45 + 0.15) / 8 = 0.26875 (with 0.3 in (0.3,0.4] it would be 0.33125)
    conf = [c for _, _, c in CASES if c is not None]
    right = [g == p for g, p, c in CASES if c is not None]
    assert expected_calibration_error(conf, right) == pytest.approx(0.26875)
    # the ends: 0 is in the first bin, 1 in the last; perfectly calibrated is 0
    assert expected_calibration_error([0.0, 1.0], [False, True]) == 0.0
    assert expected_calibration_error([], []) is None
    with pytest.raises(ValueError):
        expected_calibration_error([0.5], [])


def test_out_of_scope_metrics_hand_computed():
    examples, proposals = _examples_and_proposals()
    ev = score("m", examples, proposals, split="test", fallback="oos")
    oos = ev.details["out_of_scope"]
    # in scope: questions 1, 2, 3, 4, 8, 9 (label not oos), right: 1 and 3
    assert (oos["in_scope"]["n"], oos["in_scope"]["correct"]) == (6, 2)
    assert oos["in_scope"]["accuracy"] == pytest.approx(1 / 3)
    assert (oos["in_scope"]["ci_low"], oos["in_scope"]["ci_high"]) == wilson_interval(2, 6)
    # out of scope: questions 5, 6, 7, answered oos: 5 and 7; answered oos at all: 4, 5, 7, 9
    assert (oos["oos_n"], oos["oos_answered"]) == (3, 4)
    assert oos["oos_recall"] == pytest.approx(2 / 3)
    assert oos["oos_precision"] == pytest.approx(2 / 4)
    assert ev.accuracy == pytest.approx(4 / 9)  # the "all" figure mixes the two
    assert ev.details["ece"] == pytest.approx(0.26875) and ev.details["ece_n"] == 8
    # the JSON of `eval --json`
    out = to_json(ev)
    assert JSON_KEYS <= out.keys()
    assert (out["fallback"], out["in_scope_accuracy"], out["oos_recall"], out["oos_precision"]) == (
        "oos", pytest.approx(1 / 3), pytest.approx(2 / 3), pytest.approx(0.5))


def test_empty_denominators_are_none_and_no_fallback_means_null_figures():
    m = out_of_scope_metrics({"a": {"a": 2, "b": 1}}, "oos")  # no out-of-scope question, none answered so
    assert (m["oos_n"], m["oos_answered"], m["oos_recall"], m["oos_precision"]) == (0, 0, None, None)
    assert m["in_scope"]["accuracy"] == pytest.approx(2 / 3)
    assert out_of_scope_metrics({"oos": {"a": 1}}, "oos")["in_scope"]["accuracy"] is None
    examples, proposals = _examples_and_proposals()
    out = to_json(score("m", examples, proposals))
    assert JSON_KEYS <= out.keys()  # the keys are always there, for scripts
    assert {k: out[k] for k in JSON_KEYS - {"ece"}} == dict.fromkeys(JSON_KEYS - {"ece"})
    # no confidences at all: no ECE
    for p in proposals.values():
        p.confidence = None
    assert to_json(score("m", examples, proposals))["ece"] is None


def test_eval_cli_reports_and_stores_the_out_of_scope_figures(run_cli, db_path):
    from routelab.store import ExampleFilter, Store

    assert run_cli("--db", db_path, "import", CLINC, "--create-actions").code == 0
    r = run_cli("--db", db_path, "eval", "--models", "local-zero-shot,local", "--json")
    assert r.code == 0, r
    models = json.loads(r.out)["models"]
    with Store.open(db_path) as s:
        test = s.page(ExampleFilter(split="test"), limit=100)
        for m in models:
            assert JSON_KEYS <= m.keys() and m["fallback"] == "oos"
            # the figures agree with the stored predictions, question by question
            props = s.proposals_for(m["model"], [e.id for e in test])
            pairs = [(e.label, props[e.id].action) for e in test]
            inside = [p == g for g, p in pairs if g != "oos"]
            outside = [p == "oos" for g, p in pairs if g == "oos"]
            assert m["in_scope_accuracy"] == pytest.approx(sum(inside) / len(inside))
            assert m["oos_recall"] == pytest.approx(sum(outside) / len(outside)) and m["oos_n"] == len(outside)
            answered = [g == "oos" for g, p in pairs if p == "oos"]
            assert m["oos_precision"] == (pytest.approx(sum(answered) / len(answered)) if answered else None)
            assert m["ece"] is not None  # the local routers carry confidences
    # stored with the evaluation row: --show gives them back, and the table has the columns
    shown = json.loads(run_cli("--db", db_path, "eval", "--show", "--json").out)["models"]
    assert [{k: m[k] for k in JSON_KEYS} for m in shown] == [{k: m[k] for k in JSON_KEYS} for m in models]
    table = run_cli("--db", db_path, "eval", "--show").out
    assert "in-scope" in table and "OOS recall" in table and "OOS precision" in table and "ECE" in table
    assert "fallback action oos" in table


def test_eval_table_has_no_out_of_scope_columns_without_a_fallback(run_cli, demo_store):
    r = run_cli("--db", demo_store.path, "eval", "--models", "local-zero-shot")
    assert r.code == 0, r
    assert "ECE" in r.out and "OOS" not in r.out and "in-scope" not in r.out


async def test_evaluate_pane_shows_the_out_of_scope_panel(run_cli, db_path):
    from textual.widgets import DataTable

    from routelab.services.evaluation import latest
    from routelab.services.formatting import headline_row
    from routelab.store import Store
    from tests.test_eval_pane import PaneApp, _cells, _screen, _settle

    assert run_cli("--db", db_path, "import", CLINC, "--create-actions").code == 0
    assert run_cli("--db", db_path, "eval", "--models", "local-zero-shot,local").code == 0
    with Store.open(db_path) as s:
        rows = latest(s, "test")
    app = PaneApp(db_path, auto_run=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        scope = app.query_one("#eval-scope", DataTable)
        assert scope.display and scope.row_count == 2
        assert [str(c.label) for c in scope.columns.values()] == ["model", "in-scope", "recall", "prec.", "ECE"]
        for i, ev in enumerate(rows):
            want = headline_row(ev, compact=True)
            assert _cells(scope, i) == [ev.model, *(want[k] for k in ("in_scope", "oos_recall", "oos_precision",
                                                                     "ece"))]
        assert any("Out of scope (fallback oos)" in line for line in _screen(app))
