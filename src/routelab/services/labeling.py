"""Teacher proposals for every example that has none from that model yet.

Guarantees:
- each proposal is committed as it arrives, so Ctrl-C or kill -9 loses at most the
  requests in flight, and the next run picks up the examples still without one
  (nothing that was stored is sent again);
- bounded concurrency (asyncio + a fixed pool of workers) for remote models, one
  matrix product per page for local ones;
- money is visible: a cost estimate before starting (tokens counted offline), a
  confirmation above the spend limit, tokens and cost stored per call, and a hard stop
  if the run spends well past what was estimated;
- the run is a job (kind "label", or "batch" for the Batch API) with progress, cost
  and events, so any view can follow it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC
from functools import lru_cache
from typing import Any

from routelab import pricing
from routelab.domain import Action, BadInput, Example, Job, JobEvent, JobStatus, RoutelabError
from routelab.providers.base import Router
from routelab.services.progress import ProgressCallback, Tracker
from routelab.store import ExampleFilter, Store

LOCAL_PAGE = 1024  # examples routed per matrix product by a local router
ESTIMATE_SAMPLE = 40  # prompts tokenised to estimate a run's cost
FLUSH_SECONDS = 0.5  # how often the job row gets the latest counts
OVERSPEND = 1.5  # stop when the spend passes this multiple of max(estimate, limit)
MAX_ERRORS_KEPT = 20
BATCH_MAX = 50_000  # requests the Batch API takes in one batch; the rest go in the next one


@dataclass
class Estimate:
    n: int
    model: str
    tokens_in: int
    tokens_out: int
    cost: float
    priced: bool  # False when the model is not in the price table (cost unknown, shown as 0)
    batch: bool = False

    def line(self) -> str:
        price = f"${self.cost:.2f}" if self.priced else "unknown cost (model not in the price table)"
        return (f"{self.n} requests to {self.model}{' (Batch API, half price)' if self.batch else ''}: "
                f"~{self.tokens_in:,} input + ~{self.tokens_out:,} output tokens, {price}")


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

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cost"] = round(self.cost, 6)
        d["elapsed"] = round(self.elapsed, 3)
        return d


def is_async(router: Router) -> bool:
    return hasattr(router, "aroute")


def check_spend(estimate: Estimate, spend_limit: float, confirm: Callable[[Estimate], bool] | None) -> None:
    if estimate.cost <= spend_limit:
        return
    if confirm is not None and confirm(estimate):
        return
    raise SpendNotConfirmed(
        f"estimated ${estimate.cost:.2f} ({estimate.n} requests to {estimate.model}) is above the spend limit "
        f"${spend_limit:.2f}; nothing was sent (pass --yes, or raise ROUTELAB_SPEND_LIMIT)"
    )


@lru_cache(maxsize=1)
def _encoding():
    import bpe_openai

    return bpe_openai.get_encoding("o200k_base")


def count_tokens(messages: Sequence[dict[str, str]]) -> int:
    """Prompt tokens of a chat request, counted offline (o200k_base, ~4 tokens of framing per message)."""
    enc = _encoding()
    return 3 + sum(4 + len(enc.encode(m["content"])) for m in messages)


def estimate_label_cost(
    store: Store, router: Router, actions: Sequence[Action], n: int, *, flt: ExampleFilter = ExampleFilter(),
    batch: bool = False,
) -> Estimate:
    from routelab.providers.openai_provider import ANSWER_TOKENS, route_messages

    api = router.api  # type: ignore[attr-defined]
    pv = getattr(router, "prompt_version", "v1")
    sample = store.unproposed(router.model, prompt_version=pv, limit=ESTIMATE_SAMPLE, flt=flt)
    if not sample or not n:
        return Estimate(0, router.model, 0, 0, 0.0, pricing.known(router.model), batch)
    import random

    rng = random.Random(0)
    per_prompt = sum(count_tokens(route_messages(e, actions, rng)) for e in sample) / len(sample)
    tokens_in = int(per_prompt * n)
    tokens_out = ANSWER_TOKENS * api.samples * n
    cost = pricing.chat_cost(router.model, tokens_in, tokens_out, batch=batch)
    return Estimate(n, router.model, tokens_in, tokens_out, cost, pricing.known(router.model), batch)


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_orphaned_jobs(store: Store, kind: str) -> None:
    """Jobs of this kind left 'running' by a process that is gone (kill -9, power cut): mark them."""
    for job in store.jobs(kind=kind, active_only=True):
        pid = job.params.get("pid")
        if pid is not None and pid != os.getpid() and not _pid_alive(pid):
            store.update_job(job.id, status=JobStatus.CANCELLED,
                             error="interrupted: the process running it ended; the next run continued it")


def check_no_concurrent_run(store: Store, router: Router) -> None:
    """Two runs of the same model on one workspace would pay twice for the same examples."""
    from datetime import datetime, timedelta

    recent = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="milliseconds")
    for job in store.jobs(kind="label", active_only=True):
        pid = job.params.get("pid")
        if (job.model == router.model and pid != os.getpid() and _pid_alive(pid)
                and job.updated_at >= recent):
            raise RoutelabError(
                f"another run (job {job.id}, process {pid}) is labelling with {router.model} in this workspace; "
                "wait for it or stop it, then run again (nothing is lost either way)"
            )


class _Run:
    """Book-keeping shared by the local and the remote paths: tracker, job row, events."""

    def __init__(self, store: Store, router: Router, job: Job, total: int, progress: ProgressCallback | None,
                 hard_limit: float | None):
        self.store = store
        self.router = router
        self.job = job
        self.pv = getattr(router, "prompt_version", "v1")
        self.tracker = Tracker(total, progress)
        self.result = LabelResult(model=router.model, provider=router.provider, job_id=job.id, total=total)
        self.hard_limit = hard_limit
        self._last_flush = 0.0
        self._last_report = 0.0
        self._last_check = 0.0
        self._cancelled = False

    def event(self, message: str, level: str = "info", **data: Any) -> None:
        self.store.add_job_events([JobEvent(job_id=self.job.id, level=level, message=message, data=data)])

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
            self.event(message, level="warn")

    def cancelled(self) -> bool:
        """Did someone cancel this job (`routelab jobs cancel`, the Jobs pane)? Read at most twice a second."""
        now = time.monotonic()
        if now - self._last_check >= 0.5:
            self._last_check = now
            current = self.store.job(self.job.id)
            self._cancelled = current is not None and current.status == JobStatus.CANCELLED
        return self._cancelled

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_flush >= FLUSH_SECONDS:
            self._last_flush = now
            self.store.update_job(self.job.id, progress_done=self.tracker.done, cost=round(self.result.cost, 6))
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
    actions = store.actions()
    if not actions:
        raise BadInput("the workspace has no actions yet: routelab actions add NAME --description D")
    pv = getattr(router, "prompt_version", "v1")
    pending = store.count_unproposed(router.model, prompt_version=pv, flt=flt)
    total = pending if limit is None else min(pending, limit)
    if total == 0:
        return LabelResult(model=router.model, provider=router.provider, status="nothing to do",
                           remaining=pending)
    estimate = None
    hard_limit = None
    if is_async(router):
        estimate = estimate_label_cost(store, router, actions, total, flt=flt)
        check_spend(estimate, spend_limit, confirm)
        hard_limit = max(spend_limit, estimate.cost) * OVERSPEND
        router.api.load()  # type: ignore[attr-defined]
    close_orphaned_jobs(store, "label")
    check_no_concurrent_run(store, router)
    job = store.create_job(Job(
        kind="label", provider=router.provider, model=router.model, status=JobStatus.RUNNING,
        progress_total=total,
        params={"limit": limit, "concurrency": concurrency, "prompt_version": pv, "pid": os.getpid(),
                "samples": getattr(getattr(router, "api", None), "samples", 1),
                "estimate": round(estimate.cost, 6) if estimate else 0.0},
    ))
    run = _Run(store, router, job, total, progress, hard_limit)
    run.result.estimate = estimate
    mode = getattr(router, "mode", None)
    run.event(f"labelling {total} examples with {router.model}"
              + (f" ({mode})" if mode else "") + (f", concurrency {concurrency}" if is_async(router) else "")
              + (f"; estimate ${estimate.cost:.4f}" if estimate else ""))
    stats = getattr(getattr(router, "api", None), "stats", None)
    retries_before = stats.retries if stats else 0
    reasons_before = dict(stats.by_reason) if stats else {}
    status, error = JobStatus.FAILED, None
    try:
        if is_async(router):
            limit_failures = max_consecutive_failures or max(10, concurrency)
            asyncio.run(_label_async(run, actions, total, concurrency, flt, limit_failures))
        else:
            _label_local(run, actions, total, flt)
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
        r.elapsed = run.tracker.elapsed
        r.remaining = store.count_unproposed(router.model, prompt_version=pv, flt=flt)
        r.retries = stats.retries - retries_before if stats else 0
        if status == JobStatus.SUCCEEDED and r.failed:
            error = f"{r.failed} requests failed (those examples stay unlabelled: run again to retry them)"
        r.status = str(status)
        summary = (f"{r.labelled} labelled ({r.invalid} invalid), {r.failed} failed, "
                   f"{r.tokens_in + r.tokens_out} tokens, ${r.cost:.4f}, {r.elapsed:.1f}s")
        result_doc = {k: v for k, v in r.as_dict().items() if k not in ("errors", "estimate")}
        if stats:
            result_doc["retry_reasons"] = {k: v - reasons_before.get(k, 0) for k, v in stats.by_reason.items()
                                           if v > reasons_before.get(k, 0)}
            result_doc["logprobs_disabled"] = stats.logprobs_disabled
        try:
            store.update_job(job.id, status=status, error=error, result=result_doc,
                             progress_done=run.tracker.done, cost=round(r.cost, 6))
            run.event(summary if status == JobStatus.SUCCEEDED else f"{status}: {error}; {summary}",
                      level="info" if status == JobStatus.SUCCEEDED and not r.failed else "warn")
        except Exception:  # never hide the original error behind a book-keeping one
            pass
        run.tracker.report(summary)
    return run.result


def _label_local(run: _Run, actions: Sequence[Action], total: int, flt: ExampleFilter) -> None:
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
    run: _Run, actions: Sequence[Action], total: int, concurrency: int, flt: ExampleFilter, max_failures: int
) -> None:
    from routelab.providers.openai_provider import FatalAPIError, RequestFailed

    store, router = run.store, run.router
    queue: asyncio.Queue[Example | None] = asyncio.Queue(maxsize=concurrency * 2)
    consecutive = 0

    async def producer() -> None:
        after, sent = 0, 0
        while sent < total:
            page = store.unproposed(router.model, prompt_version=run.pv, after=after, limit=min(500, total - sent),
                                    flt=flt)
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
        while True:
            example = await queue.get()
            if example is None:
                return
            try:
                route = await router.aroute(example, actions)  # type: ignore[attr-defined]
            except RequestFailed as e:
                consecutive += 1
                run.fail(f"example {example.id}: {e}")
                if consecutive >= max_failures:
                    raise FatalAPIError(f"stopped after {consecutive} failed requests in a row; last: {e}") from None
                continue
            consecutive = 0
            store.add_proposal(route.proposal(example.id, router.model, run.pv))
            run.count(route)
            run.tick()

    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(producer())
            for _ in range(concurrency):
                tg.create_task(worker())
    except BaseExceptionGroup as eg:
        raise _first(eg) from None
    finally:
        await router.api.aclose()  # type: ignore[attr-defined]
        run.tick(force=True)


def _first(eg: BaseExceptionGroup) -> BaseException:
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


# ---------------------------------------------------------------------------- Batch API


def _batch_custom_id(example_id: int) -> str:
    return f"ex-{example_id}"


def _example_id(custom_id: str) -> int | None:
    try:
        return int(custom_id.removeprefix("ex-"))
    except ValueError:
        return None


def label_batch(
    store: Store, router: Router, *, limit: int | None = None, progress: ProgressCallback | None = None,
    confirm: Callable[[Estimate], bool] | None = None, spend_limit: float = 5.0, poll_interval: float = 15.0,
    wait: bool = True, flt: ExampleFilter = ExampleFilter(),
) -> LabelResult:
    """Label through the Batch API (half price): upload, create, poll, download, join on custom_id.

    Re-running while a batch job of this model is unfinished resumes polling it instead
    of creating a new one; its results are stored once (proposals are unique)."""
    if not is_async(router):
        raise BadInput("--batch needs an OpenAI-compatible endpoint (the local provider has no Batch API)")
    api = router.api  # type: ignore[attr-defined]
    pv = getattr(router, "prompt_version", "v1")
    actions = store.actions()
    if not actions:
        raise BadInput("the workspace has no actions yet: routelab actions add NAME --description D")
    job = next((j for j in store.jobs(kind="batch", active_only=True)
                if j.model == router.model and j.provider == router.provider), None)
    if job is not None and not job.remote_id:
        store.update_job(job.id, status=JobStatus.FAILED, error="interrupted before the batch was created")
        job = None
    estimate = None
    if job is None:
        pending = store.count_unproposed(router.model, prompt_version=pv, flt=flt)
        total = min(BATCH_MAX, pending if limit is None else min(pending, limit))
        if total == 0:
            return LabelResult(model=router.model, provider=router.provider, status="nothing to do")
        estimate = estimate_label_cost(store, router, actions, total, flt=flt, batch=True)
        check_spend(estimate, spend_limit, confirm)
        job = _submit_batch(store, router, actions, total, flt, estimate)
    run = _Run(store, router, job, job.progress_total or 0, progress, None)
    run.result.estimate = estimate
    run.result.remote_id = job.remote_id
    try:
        _poll_and_collect(run, api, poll_interval, wait)
    except KeyboardInterrupt:
        run.event("stopped watching; the batch keeps running: run `routelab label --batch` again to collect it")
        raise
    r = run.result
    r.elapsed = run.tracker.elapsed
    r.remaining = store.count_unproposed(router.model, prompt_version=pv, flt=flt)
    return r


def _submit_batch(store: Store, router: Router, actions: Sequence[Action], total: int, flt: ExampleFilter,
                  estimate: Estimate) -> Job:
    import hashlib

    api = router.api  # type: ignore[attr-defined]
    pv = getattr(router, "prompt_version", "v1")
    examples: list[Example] = []
    after = 0
    while len(examples) < total:
        page = store.unproposed(router.model, prompt_version=pv, after=after, limit=min(1000, total - len(examples)),
                                flt=flt)
        if not page:
            break
        examples += page
        after = page[-1].id
    lines = []
    for e in examples:
        body = {"model": router.model, **api.request_body(e, actions)}
        lines.append(json.dumps({"custom_id": _batch_custom_id(e.id), "method": "POST",
                                 "url": "/v1/chat/completions", "body": body}, ensure_ascii=False))
    data = ("\n".join(lines) + "\n").encode("utf-8")
    job = store.create_job(Job(
        kind="batch", provider=router.provider, model=router.model, status=JobStatus.VALIDATING,
        progress_total=len(examples),
        params={"examples": len(examples), "prompt_version": pv, "estimate": round(estimate.cost, 6),
                "first_example": examples[0].id, "last_example": examples[-1].id},
    ))
    client = api.sync_client()
    try:
        sha = hashlib.sha256(data).hexdigest()
        base_url = api.base_url or "https://api.openai.com/v1"
        file_id = store.find_upload("openai", base_url, sha, "batch")
        if file_id is None:
            uploaded = api.sync_call(client.files.create, file=(f"routelab-batch-{job.id}.jsonl", data),
                                     purpose="batch")
            file_id = uploaded.id
            store.record_upload("openai", base_url, sha, "batch", file_id, f"routelab-batch-{job.id}.jsonl",
                                len(data))
        batch = api.sync_call(client.batches.create, input_file_id=file_id, endpoint="/v1/chat/completions",
                              completion_window="24h", metadata={"routelab_job": str(job.id)})
    except BaseException as e:
        store.update_job(job.id, status=JobStatus.FAILED, error=str(e) if isinstance(e, RoutelabError)
                         else f"{type(e).__name__}: {e}")
        raise
    finally:
        client.close()
    job = store.update_job(job.id, remote_id=batch.id, params={**job.params, "input_file_id": file_id})
    store.add_job_events([JobEvent(job_id=job.id, message=f"batch {batch.id} created: {len(examples)} requests to "
                                                         f"{router.model}, estimate ${estimate.cost:.4f}")])
    return job


_BATCH_STATUS = {
    "validating": JobStatus.VALIDATING, "in_progress": JobStatus.RUNNING, "finalizing": JobStatus.RUNNING,
    "cancelling": JobStatus.RUNNING, "completed": JobStatus.SUCCEEDED, "failed": JobStatus.FAILED,
    "expired": JobStatus.FAILED, "cancelled": JobStatus.CANCELLED,
}


def _poll_and_collect(run: _Run, api, poll_interval: float, wait: bool) -> None:
    store, job = run.store, run.job
    client = api.sync_client()
    try:
        last = None
        while True:
            batch = api.sync_call(client.batches.retrieve, job.remote_id)
            counts = batch.request_counts
            done = (counts.completed + counts.failed) if counts else 0
            if batch.status != last:
                run.event(f"batch {batch.id}: {batch.status}"
                          + (f" ({counts.completed}/{counts.total} done)" if counts and counts.total else ""))
                last = batch.status
            if batch.status in ("completed", "failed", "expired", "cancelled"):
                break
            store.update_job(job.id, status=_BATCH_STATUS.get(batch.status, JobStatus.RUNNING), progress_done=done)
            run.tracker.done = done
            run.tracker.report(f"batch {batch.status}")
            if not wait:
                run.result.status = batch.status
                return
            time.sleep(poll_interval)
        stored = _collect(run, api, client, batch)
        status = _BATCH_STATUS[batch.status]
        error = None
        if batch.status != "completed":
            detail = ""
            errors = getattr(batch, "errors", None)
            if errors and getattr(errors, "data", None):
                detail = ": " + "; ".join(str(getattr(d, "message", d)) for d in errors.data[:3])
            error = f"batch {batch.status}{detail}"
        r = run.result
        r.status = str(status)
        store.update_job(job.id, status=status, error=error, progress_done=run.tracker.done, cost=round(r.cost, 6),
                         result={"stored": stored, "valid": r.valid, "invalid": r.invalid, "failed": r.failed,
                                 "tokens_in": r.tokens_in, "tokens_out": r.tokens_out, "cost": round(r.cost, 6)})
        run.event(f"{stored} proposals stored ({r.invalid} invalid), {r.failed} failed, ${r.cost:.4f}",
                  level="info" if status == JobStatus.SUCCEEDED else "warn")
        run.tracker.report("batch collected")
    finally:
        client.close()


def _collect(run: _Run, api, client, batch) -> int:
    """Download the output (and error) files, join on custom_id, store the proposals once."""
    from routelab.providers.openai_provider import route_from_completion

    store, router = run.store, run.router
    names = {a.name for a in store.actions(active_only=False)}
    proposals = []
    if batch.output_file_id:
        text = api.sync_call(client.files.content, batch.output_file_id).text
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                run.fail("unreadable line in the batch output")
                continue
            example_id = _example_id(str(obj.get("custom_id", "")))
            response = obj.get("response") or {}
            if example_id is None or response.get("status_code") != 200:
                run.fail(f"{obj.get('custom_id')}: {json.dumps(response.get('body') or obj.get('error'))[:200]}")
                continue
            route = route_from_completion(response.get("body") or {}, names, router.model, batch=True)
            proposals.append(route.proposal(example_id, router.model, run.pv))
            run.count(route)
    if batch.error_file_id:
        text = api.sync_call(client.files.content, batch.error_file_id).text
        for line in text.splitlines():
            if line.strip():
                try:
                    obj = json.loads(line)
                    body = (obj.get("response") or {}).get("body") or obj.get("error")
                    run.fail(f"{obj.get('custom_id')}: {json.dumps(body)[:200]}")
                except ValueError:
                    run.fail("unreadable line in the batch error file")
    stored = store.add_proposals(proposals)  # unique per (example, model, prompt): never twice
    run.result.labelled = stored
    return stored
