"""Following jobs: poll until a terminal state, store each event once, resume after a restart.

Everything a job does is in the store (status, progress, result, events), so any view can
follow any job. `JobService.poll(job)` makes one round trip to whoever runs it (the provider,
for a fine-tune it submitted; for a job run by a process, it only notices one that is gone),
and `follow` repeats that until the job ends, handing each new stored event to a callback.
A new JobService over the same workspace picks up where the last one stopped: events
already stored are recognised by their remote id and never stored twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from routelab.domain import BadInput, Job, JobEvent, JobStatus, RoutelabError
from routelab.providers import registry
from routelab.providers.base import TRAIN, ProviderError, Trainer
from routelab.services.jobrun import JobRecorder, runner_alive
from routelab.store import Store

POLL_SECONDS = 5.0  # remote fine-tunes change slowly; the UI polls its own store faster


@dataclass
class JobView:
    """A job with what a view needs to show it: derived timings and the last metrics."""

    job: Job
    elapsed: float | None
    eta: float | None  # seconds to the estimated finish, when known
    last_metrics: dict[str, Any]
    model_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.job.model_dump(exclude={"params"}),
                "params": {k: v for k, v in self.job.params.items() if k != "system_prompt"},
                "elapsed_seconds": self.elapsed, "eta_seconds": self.eta, "last_metrics": self.last_metrics,
                "fine_tuned_model": self.model_id}


def _parse(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


def describe(job: Job, events: list[JobEvent] | None = None, now: float | None = None) -> JobView:
    now = time.time() if now is None else now
    start, end = _parse(job.created_at), _parse(job.finished_at)
    elapsed = None if start is None else max(0.0, (end or now) - start)
    eta = None
    if not job.status.terminal:
        finish = job.result.get("estimated_finish")
        if isinstance(finish, (int, float)):
            eta = max(0.0, finish - now)
        elif elapsed and job.progress_total and job.progress_done:
            eta = elapsed / job.progress_done * (job.progress_total - job.progress_done)
    metrics = [e.data for e in (events or []) if e.type == "metrics"]
    return JobView(job, elapsed, eta, metrics[-1] if metrics else {}, job.result.get("fine_tuned_model"))


def metrics_series(events: list[JobEvent]) -> dict[str, list[tuple[int, float]]]:
    """Per metric name, (step, value) points in step order: what the loss chart draws."""
    out: dict[str, dict[int, float]] = {}
    for e in events:
        if e.type != "metrics" or "step" not in e.data:
            continue
        for key in ("train_loss", "valid_loss", "valid_accuracy", "train_accuracy", "valid_mean_token_accuracy"):
            value = e.data.get(key)
            if isinstance(value, (int, float)):
                out.setdefault(key, {})[int(e.data["step"])] = float(value)
    return {k: sorted(v.items()) for k, v in out.items()}


class JobService:
    def __init__(self, store: Store, settings, *, trainers: dict[str, Trainer] | None = None):
        self.store = store
        self.settings = settings
        self._trainers: dict[str, Trainer] = dict(trainers or {})

    def trainer(self, provider: str) -> Trainer:
        if provider not in self._trainers:  # a remote trainer asks for its key when it first calls out
            self._trainers[provider] = registry.get(provider).trainer(self.settings)
        return self._trainers[provider]

    def _trained_by(self, job: Job) -> Trainer | None:
        """The trainer of a fine-tune job, when its backend is installed here."""
        if job.kind != "finetune" or job.provider not in registry.names(TRAIN):
            return None
        return self.trainer(job.provider)

    def runs_here(self, job: Job) -> bool:
        """Is this job run by a process (not at a provider)? Then polling it needs no network."""
        if job.kind != "finetune":
            return True
        trainer = self._trained_by(job)
        return trainer is None or trainer.runs_here or not job.remote_id

    def get(self, job_id: int | str) -> Job:
        job = None
        if isinstance(job_id, int) or str(job_id).isdigit():
            job = self.store.job(int(job_id))
        if job is None:  # a remote id (ftjob-...) works too
            for j in self.store.jobs(limit=100_000):
                if j.remote_id == str(job_id):
                    job = j
                    break
        if job is None:
            raise BadInput(f"no job {job_id} in this workspace (see `routelab jobs list`)")
        return job

    def poll(self, job: Job) -> Job:
        """One update of a job from whoever runs it. Jobs this module knows nothing about are returned as they are."""
        if job.status.terminal:
            return job
        trainer = self._trained_by(job)
        if trainer is None:
            return job
        if trainer.runs_here or not job.remote_id:
            return self._check_runner(job, trainer)
        trainer.poll(job, JobRecorder(self.store, job))
        return self.store.job(job.id) or job

    def _check_runner(self, job: Job, trainer: Trainer) -> Job:
        """A job run (or being submitted) by a process: leave it while that process runs it, else say so."""
        if job.status == JobStatus.QUEUED and (trainer.runs_here or runner_alive(job)):
            return job  # not started yet, or being submitted right now (uploads, job creation)
        if trainer.runs_here and runner_alive(job):
            return job
        # Read again after the liveness check: a run that ended just now wrote its last status
        # before it stopped counting as running, and that status must not be overwritten.
        job = self.store.job(job.id) or job
        if job.status.terminal:
            return job
        if trainer.runs_here:
            msg = "interrupted: the process running this training exited; start it again"
        else:
            msg = job.error or "interrupted before the job was created at the provider; start it again"
        return JobRecorder(self.store, job).fail(msg)

    def cancel(self, job_id: int | str) -> Job:
        job = self.get(job_id)
        if job.status.terminal:
            raise BadInput(f"job {job.id} has already {job.status.value}")
        trainer = self._trained_by(job)
        if trainer is not None:
            trainer.cancel(job, JobRecorder(self.store, job))
            return self.store.job(job.id) or job
        # label/eval/... jobs check their own status between steps
        self.store.add_job_events([JobEvent(job_id=job.id, level="warn", message="Cancellation requested")])
        return self.store.update_job(job.id, status=JobStatus.CANCELLED)

    def active(self) -> list[Job]:
        return self.store.jobs(active_only=True)

    def resume(self) -> list[Job]:
        """On start-up: poll every job that is not finished (remote ones catch up, orphans are marked)."""
        out = []
        for job in self.active():
            try:
                out.append(self.poll(job))
            except RoutelabError:
                out.append(job)
        return out

    def follow(
        self, job_id: int | str, *, on_event: Callable[[JobEvent], None] | None = None,
        on_update: Callable[[Job], None] | None = None, interval: float = POLL_SECONDS,
        should_stop: Callable[[], bool] = lambda: False, sleep: Callable[[float], None] = time.sleep,
        after_event: int = 0, on_error: Callable[[str], None] | None = None, max_failures: int = 10,
    ) -> Job:
        """Poll until the job ends (or should_stop()); each new stored event goes to on_event once.

        A poll that fails for a passing reason (network, 429, 5xx: already retried inside) is
        reported to on_error and tried again next interval, up to max_failures in a row; a
        refusal (401, 403, 404, no quota) ends the watch at once. Either way the job itself is
        left as it was: it is still running at the provider.
        """
        job = self.get(job_id)
        last = after_event
        failures = 0
        while True:
            try:
                job = self.poll(job)
                failures = 0
            except ProviderError as e:
                if not e.transient:
                    raise
                failures += 1
                if failures >= max_failures:
                    raise
                if on_error is not None:
                    on_error(f"{e}; trying again ({failures}/{max_failures})")
                sleep(interval)
                continue
            for ev in self.store.job_events(job.id, after=last):
                last = ev.id or last
                if on_event is not None:
                    on_event(ev)
            if on_update is not None:
                on_update(job)
            if job.status.terminal or should_stop():
                return job
            # a job run by a process (another thread, another process) changes fast: look again soon
            sleep(min(interval, 0.5) if self.runs_here(job) else interval)
            job = self.store.job(job.id) or job
