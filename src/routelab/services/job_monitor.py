"""What a live view of the jobs (the app's Jobs pane) reads on each poll.

One poll: the newest jobs, the selected job's events after the last one seen, and, no
more often than `remote_interval` seconds per job, one round trip to whoever runs each
unfinished fine-tune. The first poll resumes every unfinished job (a fine-tune started
yesterday is followed again; a local run whose process is gone is marked failed).
A poll that cannot reach a provider says so in `error` and the view carries on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from routelab.domain import Job, JobEvent
from routelab.services.jobs import JobService
from routelab.store import Store


@dataclass
class JobsSnapshot:
    """What one poll read: the job list, and the selected job's new events."""

    jobs: list[Job]
    job_id: int | None  # the selected job (the newest when the one asked for is gone)
    events: list[JobEvent] = field(default_factory=list)  # events after `after`
    after: int = 0
    error: str | None = None


class JobMonitor:
    """Polls for one view. Its connection is opened by the first poll and kept: polls must not
    overlap (the pane schedules the next one when the last has finished), but each may run in
    a different worker thread."""

    def __init__(self, path: Path, settings, *, clock=time.monotonic):
        self.path = Path(path)
        self.settings = settings
        self.clock = clock
        self._store: Store | None = None
        self._service: JobService | None = None
        self._last_remote: dict[int, float] = {}

    def poll(self, selected: int | None, after: int, *, remote_interval: float = 5.0, limit: int = 500) -> JobsSnapshot:
        if self._store is None:
            self._store = Store.open(self.path, create=False)
            self._service = JobService(self._store, self.settings)
            self._resume()
        assert self._service is not None
        error = self._poll_remote(remote_interval)
        jobs = self._store.jobs(limit=limit)
        if selected is None or all(j.id != selected for j in jobs):
            selected = jobs[0].id if jobs else None
            after = 0
        events = self._store.job_events(selected, after=after) if selected is not None else []
        return JobsSnapshot(jobs, selected, events, after, error)

    def _resume(self) -> None:
        assert self._service is not None
        now = self.clock()
        for job in self._service.resume():  # unfinished jobs are followed again; orphans are marked
            self._last_remote[job.id] = now

    def _poll_remote(self, interval: float) -> str | None:
        assert self._service is not None
        error = None
        now = self.clock()
        for job in self._service.active():
            due = self._service.runs_here(job) or now - self._last_remote.get(job.id, 0.0) >= interval
            if due and job.kind == "finetune":
                self._last_remote[job.id] = now
                try:
                    self._service.poll(job)
                except Exception as e:  # the network may be down, a reply garbled: say so, try again later
                    error = f"job {job.id}: {e}"
        return error

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


__all__ = ["JobMonitor", "JobsSnapshot"]
