"""One job's life in the store, written in one place: the job recorder.

Every long run (label, generate, eval, fine-tune) creates its job through `JobRecorder`,
and every backend reports through it (it implements providers.base.JobReporter): events
(each provider event stored once, by its remote id), progress and cost (written at most
every `flush_every` seconds), status, result, the provider's job id, the model a job
produced, and whether someone cancelled the job (read at most every `check_every` seconds,
from any process: `routelab jobs cancel`, the Jobs pane).

A job records the process that runs it (`owner()`); `runner_alive(job)` is the one check
of whether that process still does, so a job left behind by kill -9 or a power cut is
told apart from one that runs.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from routelab.domain import Job, JobEvent, JobStatus, TrainedModel
from routelab.store import Store

_running: set[int] = set()  # jobs run by this process right now
_running_lock = threading.Lock()


def owner() -> dict[str, Any]:
    """What a job records about the process that runs it."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def owner_alive(params: dict[str, Any]) -> bool:
    """Is the process named in a job's params alive? (Another host: assume yes; no pid: no.)"""
    pid, host = params.get("pid"), params.get("host")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if host and host != socket.gethostname():
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # no permission to signal it: it exists
        return True
    return True


def is_running_here(job_id: int) -> bool:
    with _running_lock:
        return job_id in _running


def runner_alive(job: Job) -> bool:
    """Is the job's process still running it? In this process: is a recorder of it active."""
    here = owner()
    if job.params.get("pid") == here["pid"] and job.params.get("host", here["host"]) == here["host"]:
        return is_running_here(job.id)
    return owner_alive(job.params)


class JobRecorder:
    """Records one job in the store; the JobReporter every backend reports to."""

    def __init__(self, store: Store, job: Job, *, on_event: Callable[[JobEvent], None] | None = None,
                 check_every: float = 0.0, flush_every: float = 0.0):
        assert job.id is not None
        self.store = store
        self.job_id: int = job.id
        self.on_event = on_event
        self.check_every = check_every
        self.flush_every = flush_every
        self._pending: dict[str, Any] = {}
        self._last_flush = 0.0
        self._last_check = -1e9
        self._cancelled = False
        self._seen_event = 0
        self._remote_ids: set[str] | None = None

    @classmethod
    def create(cls, store: Store, job: Job, **kwargs: Any) -> JobRecorder:
        """Create the job row (recording this process as its owner) and a recorder for it."""
        job = job.model_copy(update={"params": {**job.params, **owner()}})
        return cls(store, store.create_job(job), **kwargs)

    @property
    def job(self) -> Job:
        job = self.store.job(self.job_id)
        assert job is not None
        return job

    @contextmanager
    def running(self) -> Iterator[JobRecorder]:
        """While inside, this process is known to be running the job (see runner_alive)."""
        with _running_lock:
            _running.add(self.job_id)
        try:
            yield self
        finally:
            with _running_lock:
                _running.discard(self.job_id)

    # ------------------------------------------------------------ JobReporter

    def event(self, message: str, level: str = "info", type: str = "message", data: dict | None = None, *,
              remote_id: str | None = None, at: str | None = None) -> None:
        if remote_id is not None:
            if self.seen(remote_id):
                return
            self._remote_ids.add(remote_id)  # type: ignore[union-attr]
        extra = {"at": at} if at else {}
        self.store.add_job_events([JobEvent(job_id=self.job_id, remote_id=remote_id, level=level, type=type,
                                            message=message, data=data or {}, **extra)])
        if self.on_event is not None:  # every stored event (ours and others') goes to the caller once
            for ev in self.store.job_events(self.job_id, after=self._seen_event):
                self._seen_event = ev.id or self._seen_event
                self.on_event(ev)

    def seen(self, remote_id: str) -> bool:
        if self._remote_ids is None:
            self._remote_ids = {e.remote_id for e in self.store.job_events(self.job_id) if e.remote_id}
        return remote_id in self._remote_ids

    def progress(self, done: int, total: int | None = None) -> None:
        self._pending["progress_done"] = done
        if total is not None:
            self._pending["progress_total"] = total
        self.flush()

    def cost(self, usd: float) -> None:
        self._pending["cost"] = round(usd, 6)
        self.flush()

    def status(self, status: JobStatus, error: str | None = None) -> None:
        fields: dict[str, Any] = {"status": status}
        if error is not None:
            fields["error"] = error
        self._write(fields)

    def cancelled(self) -> bool:
        now = time.monotonic()
        if now - self._last_check >= self.check_every:
            self._last_check = now
            current = self.store.job(self.job_id)
            self._cancelled = current is not None and current.status == JobStatus.CANCELLED
        return self._cancelled

    def remote(self, remote_id: str, **params: Any) -> None:
        self._write({"remote_id": remote_id, "params": {**self.job.params, **params}})

    def result(self, **fields: Any) -> None:
        self._write({"result": {**self.job.result, **fields}})

    def produced(self, model: TrainedModel) -> None:
        """Save a model the job made, once; its metrics default to the job's last metrics event."""
        if self.store.trained_model(model.id, with_artifact=False) is not None:
            return
        metrics = [e.data for e in self.store.job_events(self.job_id) if e.type == "metrics"]
        last = metrics[-1] if metrics else {}
        self.store.save_model(model.model_copy(update={"metrics": {**last, **model.metrics}}))

    # ------------------------------------------------------------ for the services

    def flush(self, force: bool = False) -> None:
        """Write pending progress and cost, if due (or forced)."""
        now = time.monotonic()
        if self._pending and (force or now - self._last_flush >= self.flush_every):
            self._write({})

    def _write(self, fields: dict[str, Any]) -> Job:
        fields = {**self._pending, **fields}
        self._pending = {}
        self._last_flush = time.monotonic()
        return self.store.update_job(self.job_id, **fields)

    def finish(self, status: JobStatus, *, error: str | None = None, **fields: Any) -> Job:
        """The job's last write: status, error and any other fields, with what was pending."""
        return self._write({"status": status, "error": error, **fields})

    def fail(self, error: BaseException | str) -> Job:
        """Mark the job failed with a one-line reason (an event says it too)."""
        message = error if isinstance(error, str) else (" ".join(str(error).split()) or type(error).__name__)
        self.event(message, level="error")
        return self.finish(JobStatus.FAILED, error=message)
