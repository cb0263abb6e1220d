"""Teacher proposals for every example that has none from that model yet.

Guarantees:
- each proposal is committed as it arrives, so Ctrl-C or kill -9 loses at most the
  requests in flight, and the next run picks up the examples still without one
  (nothing that was stored is sent again);
- bounded concurrency (asyncio + a fixed pool of workers) for routers that route one
  example at a time (`supports_async`), one batch per page for the others;
- money is visible: a cost estimate before starting (the router counts tokens offline),
  a confirmation above the spend limit, tokens and cost stored per call, and a hard stop
  if the run spends well past what was estimated;
- the run is a job (kind "label"; "batch" for a provider's batch API: batch_labeling.py)
  with progress, cost and events, so any view can follow it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC
from typing import Any

from routelab.domain import Action, BadInput, Example, Job, JobStatus, RoutelabError
from routelab.providers.base import Estimate, FatalProviderError, RequestFailed, Router
from routelab.services.jobrun import JobRecorder, owner_alive, runner_alive
from routelab.services.progress import ProgressCallback, Tracker
from routelab.store import ExampleFilter, Store

LOCAL_PAGE = 1024  # examples routed per batch by a router without async routing
ASYNC_PAGE = 500  # examples read from the store at a time to feed async workers
ESTIMATE_SAMPLE = 40  # prompts tokenised to estimate a run's cost
FLUSH_SECONDS = 0.5  # how often the job row gets the latest counts
OVERSPEND = 1.5  # stop when the spend passes this multiple of max(estimate, limit)
MAX_ERRORS_KEPT = 20
NO_ACTIONS = "the workspace has no actions yet: routelab actions add NAME --description D"

__all__ = ["Estimate", "LabelResult", "SpendNotConfirmed", "check_spend", "estimate_label_cost", "label"]


class SpendNotConfirmed(BadInput):
    """The estimate is above the spend limit and nobody said yes."""


@dataclass
class LabelResult:
    model: str
    provider: str
    job_id: int | None = None
    status: str = "succeeded"
    total: int = 0  # examples this run set out to label
    labelled: int = 0  # proposals stored by this run
    valid: int = 0
    invalid: int = 0
    failed: int = 0  # requests that failed for good (the examples stay unproposed: rerun to retry)
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    elapsed: float = 0.0
    remaining: int = 0  # examples still without a proposal from this model
    retries: int = 0
    estimate: Estimate | None = None
    errors: list[str] = field(default_factory=list)
    remote_id: str | None = None
    mode: str | None = None  # how the router answered (e.g. its response format and confidence source)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cost"] = round(self.cost, 6)
        d["elapsed"] = round(self.elapsed, 3)
        return d

    def summary(self) -> str:
        return (f"{self.labelled} labelled ({self.invalid} invalid), {self.failed} failed, "
                f"{self.tokens_in + self.tokens_out} tokens, ${self.cost:.4f}, {self.elapsed:.1f}s"
                + (f"; {self.mode}" if self.mode else ""))


def check_spend(estimate: Estimate, spend_limit: float, confirm: Callable[[Estimate], bool] | None) -> None:
    if estimate.cost <= spend_limit:
        return
    if confirm is not None and confirm(estimate):
        return
    raise SpendNotConfirmed(
        f"estimated ${estimate.cost:.2f} ({estimate.n} requests to {estimate.model}) is above the spend limit "
        f"${spend_limit:.2f}; nothing was sent (pass --yes, or raise ROUTELAB_SPEND_LIMIT)"
    )


def estimate_label_cost(store: Store, router: Router, actions: Sequence[Action], n: int, *,
                        flt: ExampleFilter = ExampleFilter(), batch: bool = False) -> Estimate | None:
    """What labelling n more examples with `router` costs (None: routing is free), from a sample."""
    sample = store.unproposed(router.model, prompt_version=router.prompt_version, limit=ESTIMATE_SAMPLE, flt=flt)
    return router.estimate(sample, actions, n, batch=batch)


def close_orphaned_jobs(store: Store, kind: str) -> None:
    """Jobs of this kind left 'running' by a process that is gone (kill -9, power cut): mark them."""
    for job in store.jobs(kind=kind, active_only=True):
        if job.params.get("pid") is not None and job.params.get("pid") != os.getpid() and not runner_alive(job):
            store.update_job(job.id, status=JobStatus.CANCELLED,
                             error="interrupted: the process running it ended; the next run continued it")


def check_no_concurrent_run(store: Store, router: Router) -> None:
    """Two runs of the same model on one workspace would pay twice for the same examples."""
    from datetime import datetime, timedelta

    recent = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="milliseconds")
    for job in store.jobs(kind="label", active_only=True):
        pid = job.params.get("pid")
        if job.model == router.model and pid != os.getpid() and owner_alive(job.params) and job.updated_at >= recent:
            raise RoutelabError(
                f"another run (job {job.id}, process {pid}) is labelling with {router.model} in this workspace; "
                "wait for it or stop it, then run again (nothing is lost either way)"
            )


def require_actions(store: Store) -> list[Action]:
    actions = store.actions()
    if not actions:
        raise BadInput(NO_ACTIONS)
    return actions


class LabelRun:
    """Book-keeping of one run, shared by every path: the job's recorder, the tracker, the result."""

    def __init__(self, store: Store, router: Router, recorder: JobRecorder, total: int,
                 progress: ProgressCallback | None, hard_limit: float | None, flt: ExampleFilter = ExampleFilter()):
        self.store = store
        self.router = router
        self.flt = flt
        self.recorder = recorder
        self.pv = router.prompt_version
        self.tracker = Tracker(total, progress)
        self.result = LabelResult(model=router.model, provider=router.provider, job_id=recorder.job_id, total=total)
        self.hard_limit = hard_limit
        self._last_report = 0.0

    def count(self, route) -> None:
        r, t = self.result, self.tracker
        r.labelled += 1
        t.done += 1
        if route.valid:
            r.valid += 1
        else:
            r.invalid += 1
            t.invalid += 1
        r.tokens_in += route.tokens_in
        r.tokens_out += route.tokens_out
        r.cost += route.cost
        t.cost = r.cost
        if self.hard_limit is not None and r.cost > self.hard_limit:
            raise RoutelabError(
                f"stopped: spent ${r.cost:.2f}, well past the estimate; everything labelled so far is saved"
            )

    def fail(self, message: str) -> None:
        self.result.failed += 1
        self.tracker.failed += 1
        if len(self.result.errors) < MAX_ERRORS_KEPT:
            self.result.errors.append(message)
            self.recorder.event(message, level="warn")

    def cancelled(self) -> bool:
        """Did someone cancel this job (`routelab jobs cancel`, the Jobs pane)?"""
        return self.recorder.cancelled()

    def tick(self, force: bool = False) -> None:
        import time

        self.recorder.progress(self.tracker.done)
        self.recorder.cost(self.result.cost)
        self.recorder.flush(force)
        now = time.monotonic()
        if force or now - self._last_report >= 0.1:
            self._last_report = now
            self.tracker.report()


def label(
    store: Store, router: Router, *, limit: int | None = None, concurrency: int = 8,
    progress: ProgressCallback | None = None, confirm: Callable[[Estimate], bool] | None = None,
    spend_limit: float = 5.0, flt: ExampleFilter = ExampleFilter(), max_consecutive_failures: int | None = None,
) -> LabelResult:
    """Propose an action with `router` for every example it has not proposed for yet."""
    if concurrency < 1:
        raise BadInput("--concurrency must be at least 1")
    if limit is not None and limit < 0:
        raise BadInput("--limit must not be negative")
    actions = require_actions(store)
    pending = store.count_unproposed(router.model, prompt_version=router.prompt_version, flt=flt)
    total = pending if limit is None else min(pending, limit)
    if total == 0:
        return LabelResult(model=router.model, provider=router.provider, status="nothing to do", remaining=pending)
    estimate = estimate_label_cost(store, router, actions, total, flt=flt)
    if estimate is not None:
        check_spend(estimate, spend_limit, confirm)
    router.prepare()  # an SDK or a model loaded now is not counted as labelling time
    close_orphaned_jobs(store, "label")
    check_no_concurrent_run(store, router)
    run = _start(store, router, total, concurrency, limit, estimate, progress,
                 max(spend_limit, estimate.cost) * OVERSPEND if estimate else None, flt)
    with run.recorder.running():
        _run(run, actions, total, concurrency, flt, max_consecutive_failures or max(10, concurrency))
    return run.result


def _start(store: Store, router: Router, total: int, concurrency: int, limit: int | None,
           estimate: Estimate | None, progress: ProgressCallback | None, hard_limit: float | None,
           flt: ExampleFilter) -> LabelRun:
    recorder = JobRecorder.create(store, Job(
        kind="label", provider=router.provider, model=router.model, status=JobStatus.RUNNING, progress_total=total,
        params={"limit": limit, "concurrency": concurrency, "prompt_version": router.prompt_version,
                "estimate": round(estimate.cost, 6) if estimate else 0.0, **router.run_params()},
    ), check_every=0.5, flush_every=FLUSH_SECONDS)
    run = LabelRun(store, router, recorder, total, progress, hard_limit, flt)
    run.result.estimate = estimate
    recorder.event(f"labelling {total} examples with {router.model}"
                   + (f" ({router.mode})" if router.mode else "")
                   + (f", concurrency {concurrency}" if router.supports_async else "")
                   + (f"; estimate ${estimate.cost:.4f}" if estimate else ""))
    return run


def _run(run: LabelRun, actions: Sequence[Action], total: int, concurrency: int, flt: ExampleFilter,
         max_failures: int) -> None:
    stats = run.router.stats
    retries_before, reasons_before, requests_before = stats.retries, dict(stats.by_reason), stats.requests
    status, error = JobStatus.FAILED, None
    try:
        if run.router.supports_async:
            asyncio.run(_label_async(run, actions, total, concurrency, flt, max_failures))
        else:
            _label_pages(run, actions, total, flt)
        status = JobStatus.SUCCEEDED
        if run.cancelled():
            status, error = JobStatus.CANCELLED, "cancelled; everything finished so far is saved"
    except KeyboardInterrupt:
        status, error = JobStatus.CANCELLED, "interrupted; everything finished so far is saved"
        raise
    except BaseException as e:  # noqa: BLE001 - recorded, then re-raised
        error = str(e) if isinstance(e, RoutelabError) else f"{type(e).__name__}: {e}"
        raise
    finally:
        r = run.result
        r.retries = stats.retries - retries_before
        doc_extra = {"retry_reasons": {k: v - reasons_before.get(k, 0) for k, v in stats.by_reason.items()
                                       if v > reasons_before.get(k, 0)},
                     "requests": stats.requests - requests_before, **stats.flags}
        _finish(run, status, error, doc_extra)


def _finish(run: LabelRun, status: JobStatus, error: str | None, extra: dict[str, Any]) -> None:
    r = run.result
    r.elapsed = run.tracker.elapsed
    r.mode = run.router.mode
    r.remaining = run.store.count_unproposed(run.router.model, prompt_version=run.pv, flt=run.flt)
    if status == JobStatus.SUCCEEDED and r.failed:
        error = f"{r.failed} requests failed (those examples stay unlabelled: run again to retry them)"
    r.status = str(status)
    summary = r.summary()
    result_doc = {**{k: v for k, v in r.as_dict().items() if k not in ("errors", "estimate")}, **extra}
    try:
        run.recorder.finish(status, error=error, result=result_doc, progress_done=run.tracker.done,
                            cost=round(r.cost, 6))
        run.recorder.event(summary if status == JobStatus.SUCCEEDED else f"{status}: {error}; {summary}",
                           level="info" if status == JobStatus.SUCCEEDED and not r.failed else "warn")
    except Exception:  # never hide the original error behind a book-keeping one
        pass
    run.tracker.report(summary)


def _label_pages(run: LabelRun, actions: Sequence[Action], total: int, flt: ExampleFilter) -> None:
    store, router = run.store, run.router
    after, sent = 0, 0
    while sent < total and not run.cancelled():
        page = store.unproposed(router.model, prompt_version=run.pv, after=after, limit=min(LOCAL_PAGE, total - sent),
                                flt=flt)
        if not page:
            break
        routes = router.route_batch(page, actions)
        store.add_proposals([r.proposal(e.id, router.model, run.pv) for e, r in zip(page, routes)])
        for route in routes:
            run.count(route)
        sent += len(page)
        after = page[-1].id
        run.tick()


async def _label_async(
    run: LabelRun, actions: Sequence[Action], total: int, concurrency: int, flt: ExampleFilter, max_failures: int
) -> None:
    store, router = run.store, run.router
    queue: asyncio.Queue[Example | None] = asyncio.Queue(maxsize=concurrency * 2)
    consecutive = 0

    async def producer() -> None:
        after, sent = 0, 0
        while sent < total:
            page = store.unproposed(router.model, prompt_version=run.pv, after=after,
                                    limit=min(ASYNC_PAGE, total - sent), flt=flt)
            if not page:
                break
            for e in page:
                if run.cancelled():  # stop sending; requests in flight finish and are stored
                    sent = total
                    break
                await queue.put(e)
            sent += len(page)
            after = page[-1].id
        for _ in range(concurrency):
            await queue.put(None)

    async def worker() -> None:
        nonlocal consecutive
        while (example := await queue.get()) is not None:
            try:
                route = await router.aroute(example, actions)
            except RequestFailed as e:
                consecutive += 1
                run.fail(f"example {example.id}: {e}")
                if consecutive >= max_failures:
                    raise FatalProviderError(f"stopped after {consecutive} failed requests in a row; last: {e}") from None
                continue
            consecutive = 0
            store.add_proposal(route.proposal(example.id, router.model, run.pv))
            run.count(route)
            run.tick()

    try:
        await run_tasks([producer(), *(worker() for _ in range(concurrency))])
    finally:
        await router.aclose()
        run.tick(force=True)


async def run_tasks(coroutines) -> None:
    """Run coroutines in one task group; a failure surfaces as the exception that matters, not a group."""
    try:
        async with asyncio.TaskGroup() as tg:
            for c in coroutines:
                tg.create_task(c)
    except BaseExceptionGroup as eg:
        raise first_error(eg) from None


def first_error(eg: BaseExceptionGroup) -> BaseException:
    """The exception that matters in a task group's failure (a RoutelabError first)."""
    leaves: list[BaseException] = []

    def walk(g: BaseExceptionGroup) -> None:
        for e in g.exceptions:
            walk(e) if isinstance(e, BaseExceptionGroup) else leaves.append(e)

    walk(eg)
    for e in leaves:
        if isinstance(e, RoutelabError):
            return e
    return leaves[0]
