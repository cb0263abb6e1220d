"""Synthetic questions: ask the teacher for realistic user messages per action.

New questions are stored unlabelled with source "synthetic" (the operator reviews
them like any other), deduplicated against the workspace by content hash. If a round
brings back duplicates, the teacher is asked again for the shortfall (at most
MAX_ROUNDS rounds per action), shown what it already wrote. Same retry, spend and job
rules as labeling. A backend without a generative model (the local one) cannot write
questions, and generate says so instead of faking it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from routelab.domain import Action, BadInput, Job, JobStatus, NewExample, RoutelabError
from routelab.providers import registry
from routelab.providers.base import Estimate, Generated, QuestionGenerator, RequestFailed, Router
from routelab.services.jobrun import JobRecorder
from routelab.services.labeling import check_spend, require_actions, run_tasks
from routelab.services.progress import ProgressCallback, Tracker
from routelab.store import Store

PER_REQUEST = 20  # questions asked for in one request
MAX_ROUNDS = 3
OVERASK = 0.2  # ask for 20% more than needed: generated questions repeat each other and the workspace
MAX_ERRORS_KEPT = 20


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

    def summary(self) -> str:
        return (f"{self.added} questions added, {self.duplicates} duplicates dropped, "
                f"{self.failed_requests} failed requests, ${self.cost:.4f}")


def _chunks(n: int) -> list[int]:
    """Questions per request for n questions (PER_REQUEST at most each)."""
    return [min(PER_REQUEST, n - i) for i in range(0, n, PER_REQUEST)]


def estimate_generate_cost(generator: QuestionGenerator, actions: Sequence[Action], catalog: Sequence[Action],
                           per_action: int) -> Estimate:
    return generator.estimate(actions, catalog, _chunks(per_action + math.ceil(per_action * OVERASK)))


def generator_of(source: Router | QuestionGenerator) -> QuestionGenerator:
    """A generator, or the one of a router's model (BadInput when its backend has no generative model)."""
    if isinstance(source, QuestionGenerator):
        return source
    generator = source.question_generator()
    if generator is None:
        raise registry.no_generator(source.provider)
    return generator


def _targets(catalog: list[Action], actions: Sequence[str] | None) -> list[Action]:
    if not actions:
        return catalog
    unknown = sorted(set(actions) - {a.name for a in catalog})
    if unknown:
        raise BadInput(f"unknown action(s): {', '.join(unknown)}")
    return [a for a in catalog if a.name in set(actions)]


def generate(
    store: Store, source: Router | QuestionGenerator, *, per_action: int, actions: Sequence[str] | None = None,
    concurrency: int = 4, progress: ProgressCallback | None = None,
    confirm: Callable[[Estimate], bool] | None = None, spend_limit: float = 5.0,
) -> GenerateResult:
    """Ask for `per_action` new questions for each action (all, or `actions`), as a job (kind "generate")."""
    generator = generator_of(source)
    if per_action < 1:
        raise BadInput("--per-action must be at least 1")
    if concurrency < 1:
        raise BadInput("--concurrency must be at least 1")
    catalog = require_actions(store)
    targets = _targets(catalog, actions)
    estimate = estimate_generate_cost(generator, targets, catalog, per_action)
    check_spend(estimate, spend_limit, confirm)
    total = per_action * len(targets)
    recorder = JobRecorder.create(store, Job(
        kind="generate", provider=generator.provider, model=generator.model, status=JobStatus.RUNNING,
        progress_total=total, params={"per_action": per_action, "actions": [a.name for a in targets],
                                      "estimate": round(estimate.cost, 6)},
    ))
    run = _GenerateRun(store, generator, recorder, GenerateResult(
        model=generator.model, job_id=recorder.job_id, requested=total, estimate=estimate), Tracker(total, progress),
        hard_limit=max(spend_limit, estimate.cost) * 1.5)
    recorder.event(f"generating {per_action} questions for each of {len(targets)} actions with {generator.model}; "
                   f"estimate ${estimate.cost:.4f}")
    with recorder.running():
        run.run(targets, catalog, per_action, concurrency)
    return run.result


class _GenerateRun:
    def __init__(self, store: Store, generator: QuestionGenerator, recorder: JobRecorder, result: GenerateResult,
                 tracker: Tracker, hard_limit: float):
        self.store = store
        self.generator = generator
        self.recorder = recorder
        self.result = result
        self.tracker = tracker
        self.hard_limit = hard_limit

    def run(self, targets: Sequence[Action], catalog: Sequence[Action], per_action: int, concurrency: int) -> None:
        result = self.result
        status, error = JobStatus.FAILED, None
        try:
            asyncio.run(self._generate(targets, catalog, per_action, concurrency))
            status = JobStatus.SUCCEEDED
            if result.added < result.requested:
                error = f"{result.requested - result.added} fewer questions than asked (duplicates or failed requests)"
        except KeyboardInterrupt:
            status, error = JobStatus.CANCELLED, "interrupted; questions added so far are saved"
            raise
        except BaseException as e:  # noqa: BLE001 - recorded, then re-raised
            error = str(e) if isinstance(e, RoutelabError) else f"{type(e).__name__}: {e}"
            raise
        finally:
            self._finish(status, error)

    def _finish(self, status: JobStatus, error: str | None) -> None:
        result = self.result
        result.elapsed = self.tracker.elapsed
        result.status = str(status)
        clean = status == JobStatus.SUCCEEDED and not error
        try:
            self.recorder.finish(status, error=error, progress_done=result.added, cost=round(result.cost, 6),
                                 result={k: v for k, v in result.as_dict().items() if k not in ("errors", "estimate")})
            self.recorder.event(result.summary() if clean else f"{status}: {error}; {result.summary()}",
                                level="info" if clean else "warn")
        except Exception:  # never hide the original error behind a book-keeping one
            pass
        self.tracker.report(result.summary())

    async def _generate(self, targets: Sequence[Action], catalog: Sequence[Action], per_action: int,
                        concurrency: int) -> None:
        sem = asyncio.Semaphore(concurrency)
        try:
            await run_tasks(self._one_action(a, catalog, per_action, sem) for a in targets)
        finally:
            await self.generator.aclose()

    async def _ask(self, action: Action, catalog: Sequence[Action], n: int, avoid: list[str],
                   sem: asyncio.Semaphore) -> Generated | None:
        result = self.result
        async with sem:
            try:
                g = await self.generator.agenerate(action, catalog, n, avoid)
            except RequestFailed as e:
                result.failed_requests += 1
                if len(result.errors) < MAX_ERRORS_KEPT:
                    result.errors.append(f"{action.name}: {e}")
                    self.recorder.event(f"{action.name}: {e}", level="warn")
                return None
        result.tokens_in += g.tokens_in
        result.tokens_out += g.tokens_out
        result.cost += g.cost
        self.tracker.cost = result.cost
        if result.cost > self.hard_limit:
            raise RoutelabError(f"stopped: spent ${result.cost:.2f}, well past the estimate; "
                                "questions added so far are saved")
        return g

    async def _one_action(self, action: Action, catalog: Sequence[Action], per_action: int,
                          sem: asyncio.Semaphore) -> None:
        added, seen = 0, []
        for _ in range(MAX_ROUNDS):
            need = per_action - added
            if need <= 0:
                break
            ask_for = need + math.ceil(need * OVERASK)  # some come back as duplicates
            answers = await asyncio.gather(*(self._ask(action, catalog, k, list(seen), sem) for k in _chunks(ask_for)))
            fresh = self._fresh(answers, seen)
            if fresh:
                imported = self.store.add_examples(fresh[:need])
                added += imported.added
                self.result.added += imported.added
                self.tracker.done = self.result.added
                self.tracker.report(action.name)
            elif all(g is None for g in answers):
                break  # the endpoint is failing for this action; do not hammer it
        self.result.by_action[action.name] = added

    def _fresh(self, answers: Sequence[Generated | None], seen: list[str]) -> list[NewExample]:
        """New questions of a round: valid, not in the workspace, each once (`seen` grows with all of them)."""
        candidates: list[NewExample] = []
        for g in answers:
            for q in (g.questions if g else []):
                try:
                    candidates.append(NewExample(text=q, source="synthetic"))
                except ValidationError:
                    continue
                seen.append(candidates[-1].text)
        existing = self.store.existing_hashes(c.hash for c in candidates)
        fresh: dict[str, NewExample] = {}
        for c in candidates:
            if c.hash not in existing:
                fresh.setdefault(c.hash, c)
        self.result.duplicates += len(candidates) - len(fresh)
        return list(fresh.values())
