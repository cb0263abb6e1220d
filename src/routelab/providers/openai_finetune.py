"""OpenAI fine-tuning calls: files, jobs, events, checkpoints, cancel (the official SDK).

Results are plain dicts (the SDK objects' model_dump), so services never depend on SDK types.
The client is built with max_retries=0 and tenacity retries 408/409/429/5xx, timeouts and
connection errors (honouring retry-after), like the teacher. 401, 403, insufficient_quota and
other 4xx are not retried: they become a RemoteAPIError with the API's status, code and message
(scrubbed of anything key-like).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from routelab.domain import RoutelabError
from routelab.providers.openai_provider import (
    _error_code,
    _status_code,
    is_retryable,
    retry_after_seconds,
    scrub,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_ATTEMPTS = 5
MAX_WAIT = 30.0


class RemoteAPIError(RoutelabError):
    """The API refused or failed a request for good. `status`/`code` are the API's."""

    exit_code = 1

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param


class OpenAIFineTuning:
    provider = "openai"

    def __init__(self, *, api_key: str, base_url: str | None = None, timeout: float = 60.0,
                 max_attempts: int = MAX_ATTEMPTS, backoff: float = 0.5,
                 on_retry: Callable[[str, float], None] | None = None):
        self._api_key = api_key
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.on_retry = on_retry
        self._client = None

    @classmethod
    def from_settings(cls, settings, **kwargs: Any) -> OpenAIFineTuning:
        from routelab.domain import BadInput

        if not settings.has_openai:
            raise BadInput("fine-tuning with --provider openai needs OPENAI_API_KEY (and OPENAI_BASE_URL for a "
                           "non-OpenAI server); or use --provider local")
        return cls(api_key=settings.openai_api_key.get_secret_value(), base_url=settings.openai_base_url, **kwargs)

    def __repr__(self) -> str:  # never the key
        return f"OpenAIFineTuning(base_url={self.base_url!r})"

    @property
    def client(self):
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------ errors and retries

    def _error(self, exc: BaseException, what: str) -> RemoteAPIError:
        status = _status_code(exc)
        code = _error_code(exc)
        body = getattr(exc, "body", None)
        message = None
        param = None
        if isinstance(body, dict):
            inner = body.get("error", body)
            if isinstance(inner, dict):
                message = inner.get("message")
                param = inner.get("param")
        message = scrub(str(message or getattr(exc, "message", None) or exc or type(exc).__name__), self._api_key)
        if status == 401:
            text = f"{what}: the API at {self.base_url} rejected the API key (401): check OPENAI_API_KEY"
        elif status == 429 and code == "insufficient_quota":
            text = f"{what}: the API account has no quota left (429 insufficient_quota): check plan and billing"
        elif status is None:
            text = f"{what}: {type(exc).__name__}: {message}"
        else:
            text = f"{what}: {status}{' ' + code if code else ''}: {message}"
        return RemoteAPIError(text, status=status, code=code, param=param)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        import openai
        from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt

        def wait(state) -> float:
            exc = state.outcome.exception()
            hinted = retry_after_seconds(exc)
            if hinted is not None:
                return min(MAX_WAIT, hinted + random.uniform(0, 0.1))
            return min(MAX_WAIT, random.uniform(0, self.backoff * 2 ** (state.attempt_number - 1)) + self.backoff / 2)

        def before_sleep(state) -> None:
            if self.on_retry is not None:
                exc = state.outcome.exception()
                status = _status_code(exc)
                self.on_retry(str(status) if status else type(exc).__name__,
                              state.next_action.sleep if state.next_action else 0.0)

        retrying = Retrying(stop=stop_after_attempt(self.max_attempts), wait=wait, before_sleep=before_sleep,
                            retry=retry_if_exception(is_retryable), reraise=False)
        try:
            for attempt in retrying:
                with attempt:
                    return fn()
        except RetryError as e:
            exc = e.last_attempt.exception()
            err = self._error(exc, what)
            raise RemoteAPIError(f"{err} (gave up after {self.max_attempts} tries)", status=err.status,
                                 code=err.code) from None
        except openai.APIError as e:
            raise self._error(e, what) from None

    # ------------------------------------------------------------ files

    def upload_file(self, path: Path, purpose: str = "fine-tune") -> dict[str, Any]:
        path = Path(path)

        def do():
            with path.open("rb") as f:
                return self.client.files.create(file=(path.name, f), purpose=purpose)

        return self._call(f"uploading {path.name}", do).model_dump()

    def file_exists(self, file_id: str) -> bool:
        """Is a file we uploaded earlier still there? (Files can be deleted, or the server reset.)"""
        import openai

        try:
            self._call(f"checking file {file_id}", lambda: self.client.files.retrieve(file_id))
            return True
        except RemoteAPIError as e:
            if e.status == 404:
                return False
            raise
        except openai.NotFoundError:  # pragma: no cover - _call maps it already
            return False

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
                          lambda: self.client.fine_tuning.jobs.create(**kwargs)).model_dump()

    def retrieve_job(self, job_id: str) -> dict[str, Any]:
        return self._call(f"reading job {job_id}", lambda: self.client.fine_tuning.jobs.retrieve(job_id)).model_dump()

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self._call(f"cancelling job {job_id}", lambda: self.client.fine_tuning.jobs.cancel(job_id)).model_dump()

    def events_since(self, job_id: str, known: set[str], *, page_size: int = 100, max_pages: int = 50) -> list[dict[str, Any]]:
        """Events not in `known`, oldest first. The API lists newest first: page back until a known one."""
        out: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(max_pages):
            kwargs: dict[str, Any] = {"limit": page_size}
            if after:
                kwargs["after"] = after
            page = self._call(f"reading events of {job_id}",
                              lambda kw=kwargs: self.client.fine_tuning.jobs.list_events(job_id, **kw))
            data = [e.model_dump() for e in page.data]
            stop = False
            for e in data:
                if e["id"] in known:
                    stop = True
                    break
                out.append(e)
            if stop or not data or not getattr(page, "has_more", False):
                break
            after = data[-1]["id"]
        return out[::-1]

    def checkpoints(self, job_id: str) -> list[dict[str, Any]]:
        page = self._call(f"reading checkpoints of {job_id}",
                          lambda: self.client.fine_tuning.jobs.checkpoints.list(job_id, limit=100))
        return [c.model_dump() for c in page.data]
