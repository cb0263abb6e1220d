"""OpenAI fine-tuning calls: files, jobs, events, checkpoints, cancel (the official SDK).

Results are plain dicts (the SDK objects' model_dump), so nothing above depends on SDK types.
Retries and errors are the client's (client.py), with a shorter wait between tries: a
management call is one of a few, not one of thousands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from routelab.providers.base import RequestFailed
from routelab.providers.openai.client import OpenAIClient, RetryPolicy

MAX_ATTEMPTS = 5
MAX_WAIT = 30.0


class OpenAIFineTuning:
    def __init__(self, client: OpenAIClient):
        self.client = client

    @classmethod
    def from_settings(cls, settings, *, timeout: float = 60.0, max_attempts: int = MAX_ATTEMPTS,
                      backoff: float = 0.5, on_retry: Callable[[str, float], None] | None = None) -> OpenAIFineTuning:
        policy = RetryPolicy(max_attempts=max_attempts, max_rate_limited=max_attempts, backoff=backoff,
                             max_wait=MAX_WAIT)
        return cls(OpenAIClient.from_settings(settings, timeout=timeout, policy=policy, on_retry=on_retry))

    def __repr__(self) -> str:  # never the key
        return f"OpenAIFineTuning(base_url={self.base_url!r})"

    @property
    def base_url(self) -> str:
        return self.client.endpoint

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        return self.client.call(what, fn)

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------ files

    def upload_file(self, path: Path, purpose: str = "fine-tune") -> dict[str, Any]:
        path = Path(path)

        def do():
            with path.open("rb") as f:
                return self.client.sync.files.create(file=(path.name, f), purpose=purpose)

        return self._call(f"uploading {path.name}", do).model_dump()

    def file_exists(self, file_id: str) -> bool:
        """Is a file we uploaded earlier still there? (Files can be deleted, or the server reset.)"""
        try:
            self._call(f"checking file {file_id}", lambda: self.client.sync.files.retrieve(file_id))
            return True
        except RequestFailed as e:
            if e.status == 404:
                return False
            raise

    # ------------------------------------------------------------ jobs

    def create_job(self, *, model: str, training_file: str, validation_file: str | None = None,
                   n_epochs: int | None = None, suffix: str | None = None, seed: int | None = None,
                   metadata: dict[str, str] | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": model, "training_file": training_file}
        if validation_file:
            kwargs["validation_file"] = validation_file
        if suffix:
            kwargs["suffix"] = suffix
        if seed is not None:
            kwargs["seed"] = seed
        if metadata:
            kwargs["metadata"] = metadata
        hyper: dict[str, Any] = {"n_epochs": n_epochs} if n_epochs else {}
        kwargs["method"] = {"type": "supervised", "supervised": {"hyperparameters": hyper}}
        return self._call("creating the fine-tuning job",
                          lambda: self.client.sync.fine_tuning.jobs.create(**kwargs)).model_dump()

    def retrieve_job(self, job_id: str) -> dict[str, Any]:
        jobs = self.client.sync.fine_tuning.jobs
        return self._call(f"reading job {job_id}", lambda: jobs.retrieve(job_id)).model_dump()

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        jobs = self.client.sync.fine_tuning.jobs
        return self._call(f"cancelling job {job_id}", lambda: jobs.cancel(job_id)).model_dump()

    def events_since(self, job_id: str, seen: Callable[[str], bool], *, page_size: int = 100,
                     max_pages: int = 50) -> list[dict[str, Any]]:
        """Events not `seen` yet, oldest first. The API lists newest first: page back until a seen one."""
        out: list[dict[str, Any]] = []
        after: str | None = None
        jobs = self.client.sync.fine_tuning.jobs
        for _ in range(max_pages):
            kwargs: dict[str, Any] = {"limit": page_size}
            if after:
                kwargs["after"] = after
            page = self._call(f"reading events of {job_id}", lambda kw=kwargs: jobs.list_events(job_id, **kw))
            data = [e.model_dump() for e in page.data]
            stop = False
            for e in data:
                if seen(e["id"]):
                    stop = True
                    break
                out.append(e)
            if stop or not data or not getattr(page, "has_more", False):
                break
            after = data[-1]["id"]
        return out[::-1]

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        jobs = self.client.sync.fine_tuning.jobs
        page = self._call(f"reading checkpoints of {job_id}", lambda: jobs.checkpoints.list(job_id, limit=100))
        return [c.model_dump() for c in page.data]
