"""Evaluating routers on human-labelled questions: the teacher-vs-student table.

Plain functions over a Store, used by `routelab eval`, the Evaluate pane and tests.

Definitions (the README repeats them):

- **Evaluation set**: the examples of a split (default `test`) that carry a human label
  (imported with one, accepted or overridden). Proposals are never compared with
  proposals.
- **Predictions** are proposals: one per (example, model). A model's stored proposals
  are reused, so re-evaluating is cheap and consistent; only missing ones are routed
  (through the labeling service: its retries, resume and spend rules apply). They show
  up in the review filters like any proposal.
- **Slices**: `synthetic` = source "synthetic"; `user` = every other source (real
  traffic: user, an import name, playground); `all` = both.
- **Accuracy** comes with a 95% Wilson score interval (sound at small n and near 0 or 1).
  An invalid answer (refusal, unparsable, unknown action) counts as wrong; a missing
  prediction (the call failed even after retries) is left out of n and reported.
- **Base**: the model every other is compared with — `base=` if given, else the first
  model of the list. The default list starts with the zero-shot baseline: the base model
  of the newest OpenAI fine-tune when a key is set, else `local-zero-shot` (embedding
  similarity to the action names and descriptions, no training at all).
- **Improvement** = accuracy(model) - accuracy(base) on the questions both answered,
  with a 95% interval on the paired per-question differences.
- **Macro-F1** averages F1 over the actions present in the gold labels; per-action
  precision and recall likewise (a prediction of an unseen action is a false positive
  of nobody but still a miss for the gold action).
- **Latency** p50/p95 over per-question latencies as stored (local routers divide a
  batch's time by its size). **Cost per 1,000 routes** = mean stored cost x 1000.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from routelab.domain import BadInput, Evaluation, Example, Job, JobStatus, Proposal, RoutelabError
from routelab.services.progress import Progress, ProgressCallback
from routelab.store import ExampleFilter, Store

Z95 = 1.959963984540054
INVALID = "(invalid)"  # the predicted "action" of an invalid answer in the confusion matrix
ZERO_SHOT = "local-zero-shot"  # the embedded zero-shot baseline: never trained, always runnable
SLICES = ("synthetic", "user", "all")
MAX_CONFUSIONS = 50  # largest confusions kept (with their example ids) per evaluation
ID_CHUNK = 5000  # examples per labeling call (the ids go into one SQL IN list)


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


def slice_of(source: str) -> str:
    return "synthetic" if source == "synthetic" else "user"


def accuracy_cell(correct: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(correct, n)
    return {"n": n, "correct": correct, "accuracy": (correct / n) if n else None, "ci_low": lo, "ci_high": hi}


# ---------------------------------------------------------------------------- scoring


def score(model: str, examples: Sequence[Example], proposals: dict[int, Proposal], *,
          split: str | None = None, job_id: int | None = None) -> Evaluation:
    """Compare a model's proposals with the human labels of `examples` (pure: no I/O)."""
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
        },
    )


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


# ---------------------------------------------------------------------------- models


def default_models(store: Store, settings=None) -> list[str]:
    """Every model the workspace knows that can run here, the zero-shot baseline first.

    Offline: local-zero-shot, the local teacher, each local trained model. With an
    OpenAI key also: the base model of each OpenAI fine-tune (first: it is the base of
    the comparison), the OpenAI teacher and each fine-tuned model.
    """
    if settings is None:
        from routelab.config import settings as load

        settings = load()
    local = [ZERO_SHOT, "local", *(m.id for m in store.trained_models(provider="local"))]
    models: list[str] = []
    if settings.has_openai:
        remote = store.trained_models(provider="openai")
        bases = [m.base for m in reversed(remote) if m.base]  # newest fine-tune's base first
        models = [*bases, *local, settings.teacher, *(m.id for m in remote)]
    else:
        models = local
    return list(dict.fromkeys(models))


def complete_models(store: Store, examples: Sequence[Example], exclude: Sequence[str] = ()) -> list[str]:
    """Other models with a stored proposal for every one of `examples` (e.g. the OpenAI teacher
    of an earlier labeling run): evaluable now without running them, offline too."""
    ids = [e.id for e in examples]
    out = []
    for model in store.proposal_models():
        if model not in exclude and len(store.proposals_for(model, ids)) == len(ids):
            out.append(model)
    return out


def parse_models(text: str | None) -> list[str] | None:
    """`A,B , C` -> ["A", "B", "C"]; None/empty -> None (the default list)."""
    if not text:
        return None
    models = [m.strip() for m in text.split(",") if m.strip()]
    return list(dict.fromkeys(models)) or None


def resolve_router(store: Store, model_id: str, settings=None):
    """A Router for a model id: the zero-shot baseline here, everything else via providers."""
    if model_id == ZERO_SHOT:
        from routelab.providers.local import LocalTeacher

        router = LocalTeacher(store.actions())  # no labels: zero-shot similarity
        router.model = ZERO_SHOT
        return router
    from routelab.providers import get_router

    if settings is None:
        from routelab.config import settings as load

        settings = load()
    return get_router(store, model_id, settings)


# ---------------------------------------------------------------------------- running


@dataclass
class EvalRun:
    split: str
    n: int  # examples with a human label in the split
    models: list[str]
    base: str | None
    evaluations: list[Evaluation] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # model -> one-line reason
    job_id: int | None = None


def labelled_examples(store: Store, split: str = "test", limit: int | None = None) -> list[Example]:
    """Examples of the split with a human label, in id order (keyset pages)."""
    out: list[Example] = []
    after = 0
    flt = ExampleFilter(split=split)
    while True:
        page = store.page(flt, after=after, limit=5000)
        if not page:
            break
        out += [e for e in page if e.label]
        after = page[-1].id
        if limit is not None and len(out) >= limit:
            return out[:limit]
    return out


def check_split(store: Store, split: str) -> list[Example]:
    """The evaluation set, or a clear BadInput saying why there is none."""
    examples = labelled_examples(store, split)
    if examples:
        return examples
    total = store.count(ExampleFilter(split=split))
    if total == 0:
        counts = store.counts_by("split")
        have = ", ".join(f"{k} {v}" for k, v in counts.items()) or "no questions at all"
        raise BadInput(
            f"no questions in the {split} split (the workspace has: {have}); import a labelled test set "
            f"with `routelab import FILE --split {split}`, or choose another split with --split"
        )
    raise BadInput(f"the {split} split has {total} questions but none has a human label yet; review some first")


def predict(store: Store, router, examples: Sequence[Example], *,
            on_progress: Callable[[int], None] | None = None,
            confirm: Callable[[Any], bool] | None = None, spend_limit: float = 5.0) -> dict[int, Proposal]:
    """Make sure `router` has a proposal for every example; returns the model's proposals.

    Stored proposals are reused; missing ones go through the labeling service (its
    retries, resume, spend estimate and confirmation), restricted to these examples.
    """
    from routelab.services.labeling import label

    ids = [e.id for e in examples]
    have = store.proposals_for(router.model, ids)
    missing = [e.id for e in examples if e.id not in have]
    if on_progress:
        on_progress(len(have))
    done = len(have)
    for start in range(0, len(missing), ID_CHUNK):  # an IN list stays well under SQLite's variable limit
        chunk = tuple(missing[start:start + ID_CHUNK])

        def relay(p: Progress, base: int = done) -> None:
            if on_progress:
                on_progress(base + p.done)

        result = label(store, router, flt=ExampleFilter(ids=chunk), progress=relay, confirm=confirm,
                       spend_limit=spend_limit)
        done += result.labelled
    if missing:
        have = store.proposals_for(router.model, ids)
    return have


def evaluate(
    store: Store, models: Sequence[str] | None = None, *, split: str = "test", base: str | None = None,
    settings=None, progress: ProgressCallback | None = None, cancelled: Callable[[], bool] | None = None,
    confirm: Callable[[Any], bool] | None = None, router_for: Callable[[str], Any] | None = None,
) -> EvalRun:
    """Evaluate models on the split's human labels, as a job (kind "eval"); store the results.

    One model failing (a bad id, a 401) does not stop the others: its reason is in
    `errors`, the job's result and the returned run.
    """
    if settings is None:
        from routelab.config import settings as load

        settings = load()
    examples = check_split(store, split)
    if not models:
        models = default_models(store, settings)
        models += complete_models(store, examples, exclude=models)
    models = list(dict.fromkeys(models))
    base = base or models[0]
    if base not in models:
        models.insert(0, base)
    n = len(examples)
    run = EvalRun(split=split, n=n, models=models, base=base)
    provider = "local" if all(m == ZERO_SHOT or m.startswith("local") for m in models) else "mixed"
    job = store.create_job(Job(
        kind="eval", provider=provider, status=JobStatus.RUNNING, model=",".join(models),
        params={"models": models, "split": split, "base": base, "n": n}, progress_total=n * len(models),
    ))
    run.job_id = job.id
    started = time.monotonic()
    last_write = 0.0

    def report(done_total: int, message: str, force: bool = False) -> None:
        nonlocal last_write
        now = time.monotonic()
        if force or now - last_write > 0.25:
            store.update_job(job.id, progress_done=done_total)
            last_write = now
        if progress:
            elapsed = now - started
            rate = done_total / elapsed if elapsed > 0 and done_total else None
            eta = (n * len(models) - done_total) / rate if rate else None
            progress(Progress(done_total, n * len(models), rate=rate, eta=eta, message=message))

    scored: list[Evaluation] = []
    try:
        for i, model in enumerate(models):
            if cancelled and cancelled():
                break
            offset = i * n
            report(offset, f"{model}: routing", force=True)
            try:
                proposals = store.proposals_for(model, [e.id for e in examples])
                if len(proposals) < n:  # only then is the model needed (a stored run needs no key)
                    router = router_for(model) if router_for else resolve_router(store, model, settings)
                    proposals = predict(
                        store, router, examples, confirm=confirm, spend_limit=settings.spend_limit,
                        on_progress=lambda done, m=model, o=offset: report(o + done, f"{m}: routing"),
                    )
            except RoutelabError as e:
                run.errors[model] = str(e)
                continue
            except Exception as e:  # a provider bug must not lose the other models' results
                run.errors[model] = f"{type(e).__name__}: {e}"
                continue
            if not proposals:
                run.errors[model] = "no predictions (every call failed)"
                continue
            scored.append(score(model, examples, proposals, split=split, job_id=job.id))
            report(offset + n, f"{model}: scored", force=True)
        add_improvement(scored, base)
        for ev in scored:
            store.add_evaluation(ev)
        run.evaluations = scored
        cancelled_now = bool(cancelled and cancelled())
        status = (JobStatus.CANCELLED if cancelled_now else
                  JobStatus.FAILED if not scored else JobStatus.SUCCEEDED)
        store.update_job(
            job.id, status=status, progress_done=n * len(models),
            cost=sum(ev.details.get("cost_total", 0.0) for ev in scored),
            result={"evaluations": [ev.id for ev in scored], "errors": run.errors,
                    "accuracy": {ev.model: ev.accuracy for ev in scored}},
            error="; ".join(f"{m}: {r}" for m, r in run.errors.items()) or None,
        )
    except KeyboardInterrupt:
        store.update_job(job.id, status=JobStatus.CANCELLED, error="interrupted; the predictions made so far are saved")
        raise
    except BaseException as e:
        store.update_job(job.id, status=JobStatus.FAILED, error=f"{type(e).__name__}: {e}"[:500])
        raise
    return run


# ---------------------------------------------------------------------------- reading results


def latest(store: Store, split: str | None = None) -> list[Evaluation]:
    """The newest evaluation per model on a split (default: the newest evaluated split).

    Ordered as the newest run listed its models (its base first), then older runs' models.
    """
    rows = store.latest_evaluations(split)
    order: dict[str, int] = {}
    if not rows:
        return rows
    newest = max(rows, key=lambda ev: ev.id or 0)
    job = store.job(newest.job_id) if newest.job_id else None
    for i, m in enumerate((job.params.get("models") if job else None) or []):
        order[m] = i
    rows.sort(key=lambda ev: (order.get(ev.model, 10_000), ev.id or 0))
    # rows from older runs may have been compared with another base: compare all with the newest's
    base = newest.details.get("base")
    if any(ev.details.get("base") != base for ev in rows):
        add_improvement(rows, base)
    return rows


def to_json(ev: Evaluation) -> dict[str, Any]:
    """One model's entry for `routelab eval --json` (the per-question hits left out)."""
    d = ev.details
    return {
        "model": ev.model,
        "split": ev.split,
        "n": ev.n,
        "correct": ev.correct,
        "accuracy": ev.accuracy,
        "ci_low": ev.ci_low,
        "ci_high": ev.ci_high,
        "slices": d.get("slices", {}),
        "by_source": d.get("by_source", {}),
        "base": d.get("base"),
        "improvement": d.get("improvement"),
        "macro_f1": ev.macro_f1,
        "per_action": d.get("per_action", {}),
        "confusion": d.get("confusion", {}),
        "top_confusions": [{k: c[k] for k in ("gold", "pred", "count")} for c in d.get("confusions", [])[:10]],
        "invalid_rate": ev.invalid_rate,
        "missing": d.get("missing", 0),
        "latency_p50_ms": ev.latency_p50_ms,
        "latency_p95_ms": ev.latency_p95_ms,
        "cost_per_1k": ev.cost_per_1k,
        "evaluation_id": ev.id,
        "job_id": ev.job_id,
        "created_at": ev.created_at,
    }


# ---------------------------------------------------------------------------- formatting

# the formatters live in services/formatting (one module for the CLI and the app); these names stay importable
from routelab.services.formatting import (  # noqa: E402, F401
    HEADLINE_COLUMNS,
    fmt_acc,
    fmt_cost,
    fmt_improvement,
    fmt_latency,
    headline_row,
)

__all__ = [
    "EvalRun", "HEADLINE_COLUMNS", "INVALID", "ZERO_SHOT", "add_improvement", "check_split", "complete_models",
    "classification_metrics", "default_models", "evaluate", "headline_row", "labelled_examples", "latest",
    "paired_difference", "parse_models", "percentile", "predict", "resolve_router", "score", "to_json",
    "wilson_interval",
]
