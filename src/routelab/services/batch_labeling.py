"""Labelling through a provider's batch API (OpenAI's is half price): submit, poll, collect.

The wire format is the backend's (its BatchLabeler); this module keeps the job: one
"batch" job per submitted batch, resumed (polled again, never resubmitted) while it is
unfinished, its answers stored once as proposals (proposals are unique).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from routelab.domain import Action, BadInput, Example, Job, JobStatus
from routelab.providers import registry
from routelab.providers.base import BATCH, BatchLabeler, BatchState, Estimate, Router
from routelab.services.jobrun import JobRecorder
from routelab.services.labeling import (
    LabelResult,
    LabelRun,
    check_spend,
    estimate_label_cost,
    require_actions,
)
from routelab.services.progress import ProgressCallback
from routelab.store import ExampleFilter, Store

BATCH_MAX = 50_000  # requests a batch takes at most; the rest go in the next one
READ_PAGE = 1000


def label_batch(
    store: Store, router: Router, *, limit: int | None = None, progress: ProgressCallback | None = None,
    confirm: Callable[[Estimate], bool] | None = None, spend_limit: float = 5.0, poll_interval: float = 15.0,
    wait: bool = True, flt: ExampleFilter = ExampleFilter(),
) -> LabelResult:
    """Label through the batch API: upload, create, poll, download, join.

    Re-running while a batch job of this model is unfinished resumes polling it instead
    of creating a new one; its results are stored once (proposals are unique)."""
    labeler = router.batch_labeler()
    if labeler is None:
        raise BadInput(f"--batch needs a provider with a batch API ({', '.join(registry.names(BATCH))}); the "
                       f"{router.provider} provider has none (and labels without one)")
    actions = require_actions(store)
    job = _unfinished(store, router)
    estimate = None
    if job is None:
        pending = store.count_unproposed(router.model, prompt_version=router.prompt_version, flt=flt)
        total = min(BATCH_MAX, pending if limit is None else min(pending, limit))
        if total == 0:
            return LabelResult(model=router.model, provider=router.provider, status="nothing to do")
        estimate = estimate_label_cost(store, router, actions, total, flt=flt, batch=True)
        if estimate is not None:
            check_spend(estimate, spend_limit, confirm)
        job = _submit(store, router, labeler, actions, _examples(store, router, total, flt), estimate)
    run = LabelRun(store, router, JobRecorder(store, job), job.progress_total or 0, progress, None, flt)
    run.result.estimate = estimate
    run.result.remote_id = job.remote_id
    try:
        _poll_and_collect(run, labeler, job, actions, poll_interval, wait)
    except KeyboardInterrupt:
        run.recorder.event("stopped watching; the batch keeps running: run `routelab label --batch` again to collect it")
        raise
    finally:
        labeler.close()
    r = run.result
    r.elapsed = run.tracker.elapsed
    r.remaining = store.count_unproposed(router.model, prompt_version=router.prompt_version, flt=flt)
    return r


def _unfinished(store: Store, router: Router) -> Job | None:
    """The batch job of this model still running at the provider, if any."""
    job = next((j for j in store.jobs(kind="batch", active_only=True)
                if j.model == router.model and j.provider == router.provider), None)
    if job is not None and not job.remote_id:
        store.update_job(job.id, status=JobStatus.FAILED, error="interrupted before the batch was created")
        return None
    return job


def _examples(store: Store, router: Router, total: int, flt: ExampleFilter) -> list[Example]:
    examples: list[Example] = []
    after = 0
    while len(examples) < total:
        page = store.unproposed(router.model, prompt_version=router.prompt_version, after=after,
                                limit=min(READ_PAGE, total - len(examples)), flt=flt)
        if not page:
            break
        examples += page
        after = page[-1].id
    return examples


def _submit(store: Store, router: Router, labeler: BatchLabeler, actions: Sequence[Action],
            examples: list[Example], estimate: Estimate | None) -> Job:
    cost = estimate.cost if estimate else 0.0
    recorder = JobRecorder.create(store, Job(
        kind="batch", provider=router.provider, model=router.model, status=JobStatus.VALIDATING,
        progress_total=len(examples),
        params={"examples": len(examples), "prompt_version": router.prompt_version, "estimate": round(cost, 6),
                "first_example": examples[0].id, "last_example": examples[-1].id},
    ))
    try:
        state = labeler.submit(examples, actions, job_id=recorder.job_id, uploads=store)
    except BaseException as e:
        recorder.finish(JobStatus.FAILED, error=str(e) or type(e).__name__)
        raise
    recorder.remote(state.remote_id, **state.details)
    recorder.event(f"batch {state.remote_id} created: {len(examples)} requests to {router.model}, "
                   f"estimate ${cost:.4f}")
    return recorder.job


def _poll_and_collect(run: LabelRun, labeler: BatchLabeler, job: Job, actions: Sequence[Action],
                      poll_interval: float, wait: bool) -> None:
    last = None
    while True:
        state = labeler.poll(job.remote_id or "")
        if state.label != last:
            run.recorder.event(f"batch {state.remote_id}: {state.label}"
                               + (f" ({state.done}/{state.total} done)" if state.total else ""))
            last = state.label
        if state.status.terminal:
            break
        run.recorder.status(state.status)
        run.recorder.progress(state.done)
        run.tracker.done = state.done
        run.tracker.report(f"batch {state.label}")
        if not wait:
            run.result.status = state.label
            return
        time.sleep(poll_interval)
    _store_results(run, labeler, state, actions)


def _store_results(run: LabelRun, labeler: BatchLabeler, state: BatchState, actions: Sequence[Action]) -> None:
    """Join the answers to their examples, store them once, and close the job."""
    store = run.store
    results = labeler.collect(state, store.actions(active_only=False) or actions)
    proposals = []
    for example_id, route in results.routes:
        proposals.append(route.proposal(example_id, run.router.model, run.pv))
        run.count(route)
    for failure in results.failures:
        run.fail(failure)
    stored = store.add_proposals(proposals)  # unique per (example, model, prompt): never twice
    r = run.result
    r.labelled = stored
    r.status = str(state.status)
    run.recorder.finish(state.status, error=state.error, progress_done=run.tracker.done, cost=round(r.cost, 6),
                        result={"stored": stored, "valid": r.valid, "invalid": r.invalid, "failed": r.failed,
                                "tokens_in": r.tokens_in, "tokens_out": r.tokens_out, "cost": round(r.cost, 6)})
    run.recorder.event(f"{stored} proposals stored ({r.invalid} invalid), {r.failed} failed, ${r.cost:.4f}",
                       level="info" if state.status == JobStatus.SUCCEEDED else "warn")
    run.tracker.report("batch collected")
