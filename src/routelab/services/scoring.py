"""Scoring a router against human labels: accuracy with intervals, per-action metrics, confusions.

Pure functions (no I/O), used by the evaluation service; the definitions are in
services/evaluation.py's docstring (and the README).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from routelab.domain import Evaluation, Example, Proposal

Z95 = 1.959963984540054
INVALID = "(invalid)"  # the predicted "action" of an invalid answer in the confusion matrix
SLICES = ("synthetic", "user", "all")
MAX_CONFUSIONS = 50  # largest confusions kept (with their example ids) per evaluation


# ---------------------------------------------------------------------------- statistics


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for a proportion correct/n; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation (numpy's default); None if empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def paired_difference(a: Sequence[bool], b: Sequence[bool], z: float = Z95) -> tuple[float, float, float] | None:
    """Mean of a_i - b_i with a 95% normal interval on the paired differences (None if empty)."""
    n = len(a)
    if n == 0 or n != len(b):
        return None
    d = [int(x) - int(y) for x, y in zip(a, b)]
    mean = sum(d) / n
    if n == 1:
        return mean, -1.0, 1.0
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    half = z * math.sqrt(var / n)
    return mean, max(-1.0, mean - half), min(1.0, mean + half)


def classification_metrics(gold: Sequence[str], pred: Sequence[str | None]) -> dict[str, Any]:
    """Per-action precision/recall/F1, macro-F1 and a sparse confusion matrix.

    `pred[i]` is None for an invalid answer (a miss, shown as INVALID in the matrix).
    Actions are those present in `gold`; a metric with an empty denominator is 0.
    """
    if len(gold) != len(pred):
        raise ValueError("gold and pred differ in length")
    labels = sorted(set(gold))
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    support: Counter[str] = Counter(gold)
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    for g, p in zip(gold, pred):
        confusion[g][p if p is not None else INVALID] += 1
        if p == g:
            tp[g] += 1
        elif p is not None:
            fp[p] += 1
    per_action: dict[str, dict[str, float | int]] = {}
    for a in labels:
        precision = tp[a] / (tp[a] + fp[a]) if tp[a] + fp[a] else 0.0
        recall = tp[a] / support[a] if support[a] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_action[a] = {"precision": precision, "recall": recall, "f1": f1, "support": support[a]}
    macro_f1 = sum(m["f1"] for m in per_action.values()) / len(labels) if labels else 0.0
    return {
        "labels": labels,
        "per_action": per_action,
        "macro_f1": macro_f1,
        "confusion": {g: dict(c) for g, c in confusion.items()},
    }


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float | None:
    """ECE over `bins` equal-width bins of the top-class confidence: sum over bins of
    |bin| / n * |accuracy(bin) - mean confidence(bin)|; None when there is nothing to bin.

    Bins are (lo, hi], the first one [0, 0.1]: a confidence of exactly 0.3 is in (0.2, 0.3].
    """
    import numpy as np  # lazy: the CLI starts without it

    if len(confidences) != len(correct):
        raise ValueError("confidences and correct differ in length")
    if not len(confidences):
        return None
    conf = np.clip(np.asarray(confidences, dtype=float), 0.0, 1.0)
    hit = np.asarray(correct, dtype=float)
    which = np.digitize(conf, np.linspace(0.0, 1.0, bins + 1)[1:-1], right=True)
    # |bin|/n * |mean hit - mean conf| = |sum hit - sum conf| / n, bin by bin
    gap = np.bincount(which, weights=hit, minlength=bins) - np.bincount(which, weights=conf, minlength=bins)
    return float(np.abs(gap).sum() / conf.size)


def out_of_scope_metrics(confusion: dict[str, dict[str, int]], fallback: str) -> dict[str, Any]:
    """In-scope accuracy (questions whose label is not the fallback), out-of-scope recall (labelled
    fallback, answered fallback) and precision (answered fallback, labelled fallback), read from a
    confusion matrix {label: {predicted: count}}; a figure with an empty denominator is None."""
    in_scope = {g: row for g, row in confusion.items() if g != fallback}
    oos = confusion.get(fallback, {})
    hits = oos.get(fallback, 0)
    oos_n = sum(oos.values())
    answered = sum(row.get(fallback, 0) for row in confusion.values())
    return {
        "fallback": fallback,
        "in_scope": accuracy_cell(sum(row.get(g, 0) for g, row in in_scope.items()),
                                  sum(sum(row.values()) for row in in_scope.values())),
        "oos_n": oos_n,
        "oos_answered": answered,  # questions answered with the fallback
        "oos_recall": hits / oos_n if oos_n else None,
        "oos_precision": hits / answered if answered else None,
    }


def slice_of(source: str) -> str:
    return "synthetic" if source == "synthetic" else "user"


def accuracy_cell(correct: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(correct, n)
    return {"n": n, "correct": correct, "accuracy": (correct / n) if n else None, "ci_low": lo, "ci_high": hi}


# ---------------------------------------------------------------------------- scoring


def score(model: str, examples: Sequence[Example], proposals: dict[int, Proposal], *,
          split: str | None = None, job_id: int | None = None, fallback: str | None = None) -> Evaluation:
    """Compare a model's proposals with the human labels of `examples` (pure: no I/O).

    `fallback`: the catalog's fallback action, if any; then the in-scope and out-of-scope figures too.
    """
    answered = [e for e in examples if e.id in proposals]
    gold = [e.label or "" for e in answered]
    pred = [proposals[e.id].action if proposals[e.id].valid else None for e in answered]
    hits = [g == p for g, p in zip(gold, pred)]
    n, correct = len(answered), sum(hits)
    cls = classification_metrics(gold, pred)

    slices: dict[str, dict[str, Any]] = {}
    by_source: dict[str, dict[str, Any]] = {}
    for name in SLICES:
        idx = [i for i, e in enumerate(answered) if name == "all" or slice_of(e.source) == name]
        slices[name] = accuracy_cell(sum(hits[i] for i in idx), len(idx))
    for source in sorted({e.source for e in answered}):
        idx = [i for i, e in enumerate(answered) if e.source == source]
        by_source[source] = accuracy_cell(sum(hits[i] for i in idx), len(idx))

    cells: dict[tuple[str, str], list[int]] = defaultdict(list)
    for e, g, p in zip(answered, gold, pred):
        if g != p:
            cells[(g, p if p is not None else INVALID)].append(e.id)
    confusions = [
        {"gold": g, "pred": p, "count": len(ids), "ids": ids}
        for (g, p), ids in sorted(cells.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    ][:MAX_CONFUSIONS]

    props = [proposals[e.id] for e in answered]
    latencies = [p.latency_ms for p in props if p.latency_ms is not None]
    invalid = sum(1 for p in props if not p.valid)
    lo, hi = wilson_interval(correct, n)
    return Evaluation(
        job_id=job_id, model=model, split=split, source=None, n=n, correct=correct,
        accuracy=(correct / n) if n else 0.0, ci_low=lo, ci_high=hi,
        macro_f1=cls["macro_f1"] if n else None,
        invalid_rate=(invalid / n) if n else 0.0,
        latency_p50_ms=percentile(latencies, 50), latency_p95_ms=percentile(latencies, 95),
        cost_per_1k=(sum(p.cost for p in props) / n * 1000) if n else None,
        details={
            "slices": slices,
            "by_source": by_source,
            "labels": cls["labels"],
            "per_action": cls["per_action"],
            "confusion": cls["confusion"],
            "confusions": confusions,
            "missing": len(examples) - n,
            "invalid": invalid,
            "tokens_in": sum(p.tokens_in for p in props),
            "tokens_out": sum(p.tokens_out for p in props),
            "cost_total": sum(p.cost for p in props),
            "hits": {str(e.id): h for e, h in zip(answered, hits)},
            **_scope_and_calibration(cls["confusion"], props, hits, fallback),
        },
    )


def _scope_and_calibration(confusion: dict[str, dict[str, int]], props: Sequence[Proposal], hits: Sequence[bool],
                           fallback: str | None) -> dict[str, Any]:
    """The out-of-scope figures (with a fallback action) and the ECE of the answers that carry a confidence."""
    confident = [(p.confidence, h) for p, h in zip(props, hits) if p.confidence is not None]
    return {
        "fallback": fallback,
        "out_of_scope": out_of_scope_metrics(confusion, fallback) if fallback else None,
        "ece": expected_calibration_error([c for c, _ in confident], [h for _, h in confident]),
        "ece_n": len(confident),  # answers that carried a confidence
    }


def add_improvement(evaluations: Sequence[Evaluation], base: str | None) -> None:
    """Fill each evaluation's details["improvement"] against the base model's (in place)."""
    ref = next((ev for ev in evaluations if ev.model == base), None)
    for ev in evaluations:
        ev.details["base"] = base
        ev.details["improvement"] = None
        if ref is None:
            continue
        mine, theirs = ev.details.get("hits", {}), ref.details.get("hits", {})
        common = [k for k in mine if k in theirs]
        diff = paired_difference([mine[k] for k in common], [theirs[k] for k in common])
        if diff is not None:
            ev.details["improvement"] = {"delta": diff[0], "ci_low": diff[1], "ci_high": diff[2], "n": len(common)}
