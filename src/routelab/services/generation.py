"""Synthetic questions: ask the teacher for realistic user messages per action.

New questions are stored unlabelled with source "synthetic" (the operator reviews
them like any other), deduplicated against the workspace by content hash. If a round
brings back duplicates, the teacher is asked again for the shortfall (at most
MAX_ROUNDS rounds per action), shown what it already wrote. Same retry, spend and job
rules as labeling. The local provider has no generative model: generation needs an
OpenAI-compatible endpoint, and says so instead of faking it.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from routelab import pricing
from routelab.domain import Action, BadInput, Job, JobEvent, JobStatus, NewExample, RoutelabError
from routelab.providers.base import Router
from routelab.services.labeling import Estimate, check_spend, count_tokens
from routelab.services.progress import ProgressCallback, Tracker
from routelab.store import Store

PER_REQUEST = 20  # questions asked for in one request
MAX_ROUNDS = 3
OVERASK = 0.2  # ask for 20% more than needed: generated questions repeat each other and the workspace
NEEDS_OPENAI = ("generate needs an OpenAI-compatible endpoint: set OPENAI_API_KEY (and OPENAI_BASE_URL for a "
                "self-hosted server); the local provider has no generative model")


@dataclass
class GenerateResult:
    model: str
    job_id: int | None = None
    status: str = "succeeded"
    requested: int = 0
    added: int = 0
    duplicates: int = 0
    by_action: dict[str, int] = field(default_factory=dict)
    failed_requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    elapsed: float = 0.0
    estimate: Estimate | None = None
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cost"] = round(self.cost, 6)
        d["elapsed"] = round(self.elapsed, 3)
        return d


def _chunks(n: int) -> list[int]:
    """Questions per request for n questions (PER_REQUEST at most each)."""
    return [min(PER_REQUEST, n - i) for i in range(0, n, PER_REQUEST)]


def estimate_generate_cost(router: Router, actions: Sequence[Action], catalog: Sequence[Action],
                           per_action: int) -> Estimate:
    from routelab.providers.openai_provider import QUESTION_TOKENS, generate_messages

    rng = random.Random(0)
    first_round = _chunks(per_action + math.ceil(per_action * OVERASK))
    requests = len(first_round) * len(actions)
    tokens_in = sum(count_tokens(generate_messages(a, catalog, k, (), rng)) for a in actions for k in first_round)
    tokens_out = sum(first_round) * len(actions) * QUESTION_TOKENS
    return Estimate(requests, router.model, tokens_in, tokens_out,
                    pricing.chat_cost(router.model, tokens_in, tokens_out), pricing.known(router.model))


def generate(
    store: Store, router: Router, *, per_action: int, actions: Sequence[str] | None = None, concurrency: int = 4,
    progress: ProgressCallback | None = None, confirm: Callable[[Estimate], bool] | None = None,
    spend_limit: float = 5.0,
) -> GenerateResult:
    api = getattr(router, "api", None)
    if api is None or not hasattr(api, "agenerate"):
        raise BadInput(NEEDS_OPENAI)
    if per_action < 1:
        raise BadInput("--per-action must be at least 1")
    if concurrency < 1:
        raise BadInput("--concurrency must be at least 1")
    catalog = store.actions()
    if not catalog:
        raise BadInput("the workspace has no actions yet: routelab actions add NAME --description D")
    if actions:
        unknown = sorted(set(actions) - {a.name for a in catalog})
        if unknown:
            raise BadInput(f"unknown action(s): {', '.join(unknown)}")
        targets = [a for a in catalog if a.name in set(actions)]
    else:
        targets = catalog
    estimate = estimate_generate_cost(router, targets, catalog, per_action)
    check_spend(estimate, spend_limit, confirm)
    total = per_action * len(targets)
    job = store.create_job(Job(
        kind="generate", provider=router.provider, model=router.model, status=JobStatus.RUNNING, progress_total=total,
        params={"per_action": per_action, "actions": [a.name for a in targets], "pid": os.getpid(),
                "estimate": round(estimate.cost, 6)},
    ))
    result = GenerateResult(model=router.model, job_id=job.id, requested=total, estimate=estimate)
    tracker = Tracker(total, progress)

    def event(message: str, level: str = "info") -> None:
        store.add_job_events([JobEvent(job_id=job.id, level=level, message=message)])

    event(f"generating {per_action} questions for each of {len(targets)} actions with {router.model}; "
          f"estimate ${estimate.cost:.4f}")
    status, error = JobStatus.FAILED, None
    try:
        asyncio.run(_generate(store, api, targets, catalog, per_action, concurrency, result, tracker, event,
                              hard_limit=max(spend_limit, estimate.cost) * 1.5))
        status = JobStatus.SUCCEEDED
        if result.added < total:
            error = f"{total - result.added} fewer questions than asked (duplicates or failed requests)"
    except KeyboardInterrupt:
        status, error = JobStatus.CANCELLED, "interrupted; questions added so far are saved"
        raise
    except BaseException as e:  # noqa: BLE001 - recorded, then re-raised
        error = str(e) if isinstance(e, RoutelabError) else f"{type(e).__name__}: {e}"
        raise
    finally:
        result.elapsed = tracker.elapsed
        result.status = str(status)
        summary = (f"{result.added} questions added, {result.duplicates} duplicates dropped, "
                   f"{result.failed_requests} failed requests, ${result.cost:.4f}")
        try:
            store.update_job(job.id, status=status, error=error, progress_done=result.added,
                             cost=round(result.cost, 6),
                             result={k: v for k, v in result.as_dict().items() if k not in ("errors", "estimate")})
            event(summary if status == JobStatus.SUCCEEDED and not error else f"{status}: {error}; {summary}",
                  level="info" if status == JobStatus.SUCCEEDED and not error else "warn")
        except Exception:
            pass
        tracker.report(summary)
    return result


async def _generate(store: Store, api, targets: Sequence[Action], catalog: Sequence[Action], per_action: int,
                    concurrency: int, result: GenerateResult, tracker: Tracker, event, hard_limit: float) -> None:
    from routelab.providers.openai_provider import RequestFailed

    sem = asyncio.Semaphore(concurrency)

    async def ask(action: Action, n: int, avoid: list[str]):
        async with sem:
            try:
                g = await api.agenerate(action, catalog, n, avoid)
            except RequestFailed as e:
                result.failed_requests += 1
                if len(result.errors) < 20:
                    result.errors.append(f"{action.name}: {e}")
                    event(f"{action.name}: {e}", level="warn")
                return None
            result.tokens_in += g.tokens_in
            result.tokens_out += g.tokens_out
            result.cost += g.cost
            tracker.cost = result.cost
            if result.cost > hard_limit:
                raise RoutelabError(f"stopped: spent ${result.cost:.2f}, well past the estimate; "
                                    "questions added so far are saved")
            return g

    async def one_action(action: Action) -> None:
        added, seen = 0, []
        for _ in range(MAX_ROUNDS):
            need = per_action - added
            if need <= 0:
                break
            ask_for = need + math.ceil(need * OVERASK)  # some come back as duplicates
            answers = await asyncio.gather(*(ask(action, k, list(seen)) for k in _chunks(ask_for)))
            candidates: list[NewExample] = []
            for g in answers:
                for q in (g.questions if g else []):
                    try:
                        candidates.append(NewExample(text=q, source="synthetic"))
                    except ValidationError:
                        continue
                    seen.append(candidates[-1].text)
            existing = store.existing_hashes(c.hash for c in candidates)
            fresh: dict[str, NewExample] = {}
            for c in candidates:
                if c.hash not in existing:
                    fresh.setdefault(c.hash, c)
            result.duplicates += len(candidates) - len(fresh)
            if fresh:
                imported = store.add_examples(list(fresh.values())[:need])
                added += imported.added
                result.added += imported.added
                tracker.done = result.added
                tracker.report(action.name)
            elif all(g is None for g in answers):
                break  # the endpoint is failing for this action; do not hammer it
        result.by_action[action.name] = added

    try:
        async with asyncio.TaskGroup() as tg:
            for action in targets:
                tg.create_task(one_action(action))
    except BaseExceptionGroup as eg:
        from routelab.services.labeling import _first

        raise _first(eg) from None
    finally:
        await api.aclose()
