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
- **Out of scope**, when the catalog has a fallback action (`actions set NAME --fallback`):
  in-scope accuracy over the questions labelled with any other action (with its Wilson
  interval), out-of-scope recall (labelled fallback, answered fallback) and precision
  (answered fallback, labelled fallback). Read from the confusion matrix.
- **ECE** (expected calibration error) over the answers that carry a confidence: 10
  equal-width bins of the confidence, sum of |bin|/n x |accuracy - mean confidence|.
  0 is perfectly calibrated; None when no answer has a confidence.
- **Latency** p50/p95 over per-question latencies as stored (local routers divide a
  batch's time by its size). **Cost per 1,000 routes** = mean stored cost x 1000.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from routelab.domain import BadInput, Evaluation, Example, Job, JobStatus, Proposal, RoutelabError
from routelab.providers import registry
from routelab.providers.local import ZERO_SHOT
from routelab.services.in_sample import in_sample
from routelab.services.jobrun import JobRecorder
from routelab.services.progress import Progress, ProgressCallback
from routelab.services.scoring import (  # also part of this module's interface (__all__)
    INVALID,
    add_improvement,
    classification_metrics,
    expected_calibration_error,
    out_of_scope_metrics,
    paired_difference,
    percentile,
    score,
    wilson_interval,
)
from routelab.store import ExampleFilter, Store

ID_CHUNK = 5000  # examples per labeling call (the ids go into one SQL IN list)


# ---------------------------------------------------------------------------- models


def default_models(store: Store, settings) -> list[str]:
    """Every model the workspace knows that can run here, the zero-shot baseline first (the registry
    asks each backend that can run here). Offline: local-zero-shot, the local teacher, each local
    trained model. With an OpenAI key also: the base model of each OpenAI fine-tune (first: it is
    the base of the comparison), the OpenAI teacher and each fine-tuned model.
    """
    return registry.runnable_models(store, settings)


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


def resolve_router(store: Store, model_id: str, settings):
    """A Router for a model id (the provider registry's resolver)."""
    return registry.router(store, model_id, settings)


def _provider_of(store: Store, models: Sequence[str]) -> str:
    """The job's provider: the one backend serving every model, else "mixed"."""
    names = set()
    for m in models:
        try:
            names.add(registry.resolve(store, m)[0].name)
        except RoutelabError:
            names.add("?")
    return names.pop() if len(names) == 1 else "mixed"


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
    fallback: str | None = None  # the catalog's fallback action when the run began


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


class _EvalProgress:
    """The eval job's progress (models x examples), to the job row and the caller."""

    def __init__(self, recorder: JobRecorder, total: int, progress: ProgressCallback | None):
        self.recorder = recorder
        self.total = total
        self.progress = progress
        self.started = time.monotonic()

    def __call__(self, done: int, message: str, force: bool = False) -> None:
        self.recorder.progress(done)
        self.recorder.flush(force)
        if self.progress:
            elapsed = time.monotonic() - self.started
            rate = done / elapsed if elapsed > 0 and done else None
            eta = (self.total - done) / rate if rate else None
            self.progress(Progress(done, self.total, rate=rate, eta=eta, message=message))


def _models(store: Store, models: Sequence[str] | None, base: str | None, examples: Sequence[Example],
            settings) -> tuple[list[str], str]:
    if not models:
        models = default_models(store, settings)
        models += complete_models(store, examples, exclude=models)
    models = list(dict.fromkeys(models))
    base = base or models[0]
    if base not in models:
        models.insert(0, base)
    return models, base


def evaluate(
    store: Store, models: Sequence[str] | None = None, *, split: str = "test", base: str | None = None,
    settings, progress: ProgressCallback | None = None, cancelled: Callable[[], bool] | None = None,
    confirm: Callable[[Any], bool] | None = None, router_for: Callable[[str], Any] | None = None,
) -> EvalRun:
    """Evaluate models on the split's human labels, as a job (kind "eval"); store the results.

    One model failing (a bad id, a 401) does not stop the others: its reason is in
    `errors`, the job's result and the returned run.
    """
    examples = check_split(store, split)
    models, base = _models(store, models, base, examples, settings)
    n = len(examples)
    run = EvalRun(split=split, n=n, models=models, base=base, fallback=store.fallback_action())
    recorder = JobRecorder.create(store, Job(
        kind="eval", provider=_provider_of(store, models), status=JobStatus.RUNNING, model=",".join(models),
        params={"models": models, "split": split, "base": base, "n": n, "fallback": run.fallback},
        progress_total=n * len(models),
    ), flush_every=0.25)
    run.job_id = recorder.job_id
    report = _EvalProgress(recorder, n * len(models), progress)
    router_for = router_for or (lambda m: resolve_router(store, m, settings))
    try:
        with recorder.running():
            for i, model in enumerate(models):
                if cancelled and cancelled():
                    break
                ev = _evaluate_one(store, run, model, examples, i * n, report, router_for, confirm,
                                   settings.spend_limit)
                if ev is not None:
                    run.evaluations.append(ev)
            _conclude(store, run, recorder, bool(cancelled and cancelled()))
    except KeyboardInterrupt:
        recorder.finish(JobStatus.CANCELLED, error="interrupted; the predictions made so far are saved")
        raise
    except BaseException as e:
        recorder.finish(JobStatus.FAILED, error=f"{type(e).__name__}: {e}"[:500])
        raise
    return run


def _evaluate_one(store: Store, run: EvalRun, model: str, examples: Sequence[Example], offset: int,
                  report: _EvalProgress, router_for: Callable[[str], Any], confirm, spend_limit: float):
    """Score one model (routing the examples it has no stored proposal for); None when it failed."""
    n = len(examples)
    report(offset, f"{model}: routing", force=True)
    try:
        proposals = store.proposals_for(model, [e.id for e in examples])
        if len(proposals) < n:  # only then is the model needed (a stored run needs no key)
            proposals = predict(
                store, router_for(model), examples, confirm=confirm, spend_limit=spend_limit,
                on_progress=lambda done: report(offset + done, f"{model}: routing"),
            )
    except RoutelabError as e:
        run.errors[model] = str(e)
        return None
    except Exception as e:  # a provider bug must not lose the other models' results
        run.errors[model] = f"{type(e).__name__}: {e}"
        return None
    if not proposals:
        run.errors[model] = "no predictions (every call failed)"
        return None
    ev = score(model, examples, proposals, split=run.split, job_id=run.job_id, fallback=run.fallback)
    ev.details["in_sample"] = in_sample(store, model, [e.id for e in examples])  # trained on what it is scored on?
    report(offset + n, f"{model}: scored", force=True)
    return ev


def _conclude(store: Store, run: EvalRun, recorder: JobRecorder, cancelled: bool) -> None:
    scored = run.evaluations
    add_improvement(scored, run.base)
    for ev in scored:
        store.add_evaluation(ev)
    status = JobStatus.CANCELLED if cancelled else JobStatus.FAILED if not scored else JobStatus.SUCCEEDED
    recorder.finish(
        status, progress_done=run.n * len(run.models),
        cost=sum(ev.details.get("cost_total", 0.0) for ev in scored),
        result={"evaluations": [ev.id for ev in scored], "errors": run.errors,
                "accuracy": {ev.model: ev.accuracy for ev in scored}},
        error="; ".join(f"{m}: {r}" for m, r in run.errors.items()) or None,
    )


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
    """One model's entry for `routelab eval --json` (the per-question hits left out). The
    out-of-scope figures are null when the catalog had no fallback action."""
    d = ev.details
    oos = d.get("out_of_scope") or {}
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
        "fallback": d.get("fallback"),
        "in_scope_accuracy": (oos.get("in_scope") or {}).get("accuracy"),
        "in_scope": oos.get("in_scope"),
        "oos_recall": oos.get("oos_recall"),
        "oos_precision": oos.get("oos_precision"),
        "oos_n": oos.get("oos_n"),
        "ece": d.get("ece"),
        "per_action": d.get("per_action", {}),
        "confusion": d.get("confusion", {}),
        "top_confusions": [{k: c[k] for k in ("gold", "pred", "count")} for c in d.get("confusions", [])[:10]],
        "invalid_rate": ev.invalid_rate,
        "missing": d.get("missing", 0),
        "latency_p50_ms": ev.latency_p50_ms,
        "latency_p95_ms": ev.latency_p95_ms,
        "cost_per_1k": ev.cost_per_1k,
        "in_sample": (d.get("in_sample") or {}).get("in_sample", False),  # trained on these questions (None: unknown)
        "in_sample_reason": (d.get("in_sample") or {}).get("reason"),
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
    "classification_metrics", "default_models", "evaluate", "expected_calibration_error", "headline_row",
    "labelled_examples", "latest", "out_of_scope_metrics",
    "paired_difference", "parse_models", "percentile", "predict", "resolve_router", "score", "to_json",
    "wilson_interval",
]
