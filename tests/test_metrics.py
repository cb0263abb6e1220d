"""Evaluation statistics against hand-computed cases (and scikit-learn where it applies)."""

from __future__ import annotations

import math

import pytest

from routelab.domain import Example, Proposal
from routelab.services.evaluation import (
    INVALID,
    add_improvement,
    classification_metrics,
    fmt_acc,
    paired_difference,
    percentile,
    score,
    wilson_interval,
)


def test_wilson_interval_hand_computed():
    # 8/10: p=0.8, z=1.96 -> centre 0.7167, half-width 0.2266 (Wilson 1927; Newcombe 1998 table)
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4)
    assert hi == pytest.approx(0.9433, abs=1e-4)
    # 0/10 and 10/10: the interval stays inside [0, 1] and is not degenerate (unlike Wald)
    assert wilson_interval(0, 10) == (pytest.approx(0.0, abs=1e-12), pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), pytest.approx(1.0, abs=1e-12))
    # 53/60 (a typical demo-sized result)
    lo, hi = wilson_interval(53, 60)
    assert (round(lo, 3), round(hi, 3)) == (0.778, 0.942)
    # no data: no information
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_narrows_with_n_and_contains_p():
    widths = []
    for n in (10, 100, 1000):
        lo, hi = wilson_interval(int(0.7 * n), n)
        assert lo < 0.7 < hi
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]


def test_classification_metrics_hand_computed():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", None, "a"]  # None: an invalid answer
    m = classification_metrics(gold, pred)
    assert m["labels"] == ["a", "b", "c"]
    a, b, c = (m["per_action"][k] for k in "abc")
    assert (a["precision"], a["recall"], a["f1"], a["support"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3),
                                                                     pytest.approx(2 / 3), 3)
    assert (b["precision"], b["recall"], b["f1"]) == (0.5, 0.5, 0.5)
    assert (c["precision"], c["recall"], c["f1"]) == (0.0, 0.0, 0.0)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 0) / 3)
    assert m["confusion"] == {"a": {"a": 2, "b": 1}, "b": {"b": 1, INVALID: 1}, "c": {"a": 1}}


def test_classification_metrics_agree_with_scikit_learn():
    from sklearn.metrics import f1_score, precision_score, recall_score

    gold = ["x", "y", "z", "x", "y", "z", "x", "x", "y", "z", "z", "w"]
    pred = ["x", "z", "z", "y", None, "z", "x", "w", "y", "x", "z", "w"]
    m = classification_metrics(gold, pred)
    labels = sorted(set(gold))
    sk_pred = [p if p is not None else INVALID for p in pred]
    assert m["macro_f1"] == pytest.approx(f1_score(gold, sk_pred, labels=labels, average="macro", zero_division=0))
    p = precision_score(gold, sk_pred, labels=labels, average=None, zero_division=0)
    r = recall_score(gold, sk_pred, labels=labels, average=None, zero_division=0)
    for i, label in enumerate(labels):
        assert m["per_action"][label]["precision"] == pytest.approx(p[i])
        assert m["per_action"][label]["recall"] == pytest.approx(r[i])


def test_percentile_matches_numpy_linear():
    import numpy as np

    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 100.0]
    for q in (0, 50, 95, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert percentile([], 50) is None
    assert percentile([4.0], 95) == 4.0


def test_paired_difference_hand_computed():
    # d = [1, 0, 0, 1]: mean 0.5, sample variance 1/3, se sqrt(1/12)
    delta, lo, hi = paired_difference([True, True, False, True], [False, True, False, False])
    half = 1.959963984540054 * math.sqrt(1 / 12)
    assert delta == 0.5
    assert lo == pytest.approx(0.5 - half)
    assert hi == pytest.approx(1.0)  # clipped at 1
    assert paired_difference([True, False], [True, False]) == (0.0, 0.0, 0.0)
    assert paired_difference([], []) is None


def _ex(i: int, label: str, source: str) -> Example:
    return Example(id=i, text=f"q{i}", source=source, split="test", hash=str(i), created_at="t", label=label)


def _p(i: int, action: str | None, *, latency: float = 1.0, cost: float = 0.0) -> Proposal:
    return Proposal(example_id=i, model="m", action=action, valid=action is not None, latency_ms=latency, cost=cost)


def test_score_slices_confusions_latency_cost():
    examples = [
        _ex(1, "a", "synthetic"), _ex(2, "b", "synthetic"),  # synthetic: 1/2
        _ex(3, "a", "user"), _ex(4, "a", "user"), _ex(5, "b", "banking77"), _ex(6, "b", "user"),  # user: 2/4
        _ex(7, "a", "user"),  # no prediction: left out and reported
    ]
    proposals = {
        1: _p(1, "a", latency=1, cost=0.001), 2: _p(2, "a", latency=2, cost=0.001),
        3: _p(3, "a", latency=3, cost=0.001), 4: _p(4, None, latency=4, cost=0.001),
        5: _p(5, "b", latency=5, cost=0.001), 6: _p(6, "a", latency=100, cost=0.001),
    }
    ev = score("m", examples, proposals, split="test")
    assert (ev.n, ev.correct) == (6, 3)
    assert ev.accuracy == 0.5
    assert (ev.ci_low, ev.ci_high) == wilson_interval(3, 6)
    s = ev.details["slices"]
    assert (s["synthetic"]["n"], s["synthetic"]["correct"]) == (2, 1)
    assert (s["user"]["n"], s["user"]["correct"]) == (4, 2)  # every non-synthetic source is real traffic
    assert (s["all"]["n"], s["all"]["correct"]) == (6, 3)
    assert ev.details["by_source"]["banking77"]["n"] == 1
    assert ev.details["missing"] == 1
    assert ev.invalid_rate == pytest.approx(1 / 6)
    assert ev.latency_p50_ms == pytest.approx(3.5)
    assert ev.latency_p95_ms == pytest.approx(percentile([1, 2, 3, 4, 5, 100], 95))
    assert ev.cost_per_1k == pytest.approx(1.0)
    top = ev.details["confusions"][0]
    assert (top["gold"], top["pred"], top["count"], top["ids"]) == ("b", "a", 2, [2, 6])
    assert {"gold": "a", "pred": INVALID, "count": 1, "ids": [4]} in ev.details["confusions"]


def test_improvement_is_paired_on_common_questions():
    examples = [_ex(i, "a", "user") for i in range(1, 5)]
    base = score("base", examples, {1: _p(1, "a"), 2: _p(2, "b"), 3: _p(3, "b"), 4: _p(4, "b")})
    better = score("better", examples, {1: _p(1, "a"), 2: _p(2, "a"), 3: _p(3, "a")})  # 4 missing
    add_improvement([base, better], "base")
    assert base.details["improvement"]["delta"] == 0.0
    imp = better.details["improvement"]
    assert imp["n"] == 3  # only the questions both answered
    assert imp["delta"] == pytest.approx(2 / 3)


def test_fmt_acc_shows_interval_and_empty_slice():
    assert fmt_acc({"n": 10, "accuracy": 0.8, "ci_low": 0.4902, "ci_high": 0.9433}) == "0.80 [0.49–0.94]"
    assert fmt_acc({"n": 0}) == "—"
