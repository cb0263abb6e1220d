"""One OpenAI-compatible endpoint: its clients, the retry policy and the error mapping.

Retries: tenacity on clients built with max_retries=0 (so retries do not multiply), on
408/409/429/5xx, timeouts and connection errors, exponential backoff with jitter,
honouring retry-after(-ms), at most `max_attempts` tries (more for a 429 rate limit,
which is transient by nature: `max_rate_limited`). 401, 403 and `insufficient_quota`
are fatal and never retried. A hung server fails a request after `max_timeouts` timeouts
(not six: a run against it stops in minutes), a refused connection after `max_unreachable`
tries (nothing listens there: say so soon), a connection that cannot be made at all after
CONNECT_TIMEOUT, and no request spends more than its `budget` of time on its tries. The
API key is never part of a message we produce; a failure names the endpoint, without
credentials.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from routelab.domain import BadInput
from routelab.providers.base import CallStats
from routelab.providers.openai import errors
from routelab.redaction import register_secret

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = 60.0
CONNECT_TIMEOUT = 5.0  # seconds to open a connection: a host that drops packets fails fast
OPTIONAL_PARAMS = ("logprobs", "top_logprobs", "temperature")  # dropped if a model refuses them


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6  # tries per request on 5xx, timeouts and connection errors
    max_rate_limited: int = 20  # tries per request while the answer is 429 rate_limit (with retry-after)
    backoff: float = 0.5  # seconds: the scale of the exponential backoff
    max_wait: float = 60.0  # never sleep longer than this between tries, whatever retry-after says
    max_unreachable: int = 3  # tries while the connection is refused
    max_timeouts: int = 2  # tries of one request that may end in a timeout
    budget: float | None = None  # seconds for all tries of one request (429s aside); None: max(3 x timeout, 60)

    def wait(self, attempt: int, exc: BaseException | None) -> float:
        hinted = errors.retry_after_seconds(exc)
        if hinted is not None:
            # the server knows best; up to 20% (+10 ms) of jitter so waiting requests do not return in a herd
            return min(self.max_wait, hinted * random.uniform(1.0, 1.2) + random.uniform(0, 0.01))
        return min(self.max_wait, random.uniform(0, self.backoff * (2 ** (attempt - 1))) + self.backoff / 2)

    def give_up(self, tries: int, exc: BaseException | None) -> bool:
        """Errors get `max_attempts` tries; rate limits (the server says when to come back) get
        `max_rate_limited` before a request is left for the next run."""
        limit = max(self.max_rate_limited, self.max_attempts) if errors.status_code(exc) == 429 else self.max_attempts
        if errors.refused(exc):
            limit = min(limit, self.max_unreachable)
        return tries >= limit


class OpenAIClient:
    """Calls to one endpoint: async chat completions, blocking management calls (files, batches,
    fine-tuning), both with the same retries and errors. One instance per run."""

    def __init__(self, *, api_key: str, base_url: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 policy: RetryPolicy | None = None, on_retry: Callable[[str, float], None] | None = None):
        if timeout <= 0:
            raise BadInput("--timeout must be positive")
        self._api_key = api_key
        register_secret(api_key)  # whatever text echoes it (a proxy's page) is cleaned before it is kept
        self.base_url = base_url
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.on_retry = on_retry
        self.stats = CallStats(flags={"logprobs_disabled": False})
        self.unsupported: set[str] = set()  # optional chat parameters this endpoint refused this run
        self._aclient = None
        self._aclient_loop = None
        self._sync = None

    @classmethod
    def from_settings(cls, settings, **kwargs: Any) -> OpenAIClient:
        return cls(api_key=settings.openai_api_key.get_secret_value(), base_url=settings.openai_base_url, **kwargs)

    def __repr__(self) -> str:  # never the key, nor a password in the URL
        return f"OpenAIClient(base_url={errors.display_url(self.base_url)!r})"

    @property
    def endpoint(self) -> str:
        """The endpoint as a stable key (the upload cache's), without credentials: it is stored."""
        return errors.display_url(self.base_url or DEFAULT_BASE_URL).rstrip("/")

    def error(self, exc: BaseException, *, model: str | None = None, what: str | None = None):
        return errors.to_error(exc, secret=self._api_key, base_url=self.base_url, model=model, what=what)

    def _out_of_time(self, elapsed: float, exc: BaseException | None) -> bool:
        """Could another try not end within the request's budget? (A 429 says when to come back.)"""
        if errors.status_code(exc) == 429:
            return False
        return elapsed + self.timeout > (self.policy.budget or max(3 * self.timeout, 60.0))

    def _give_up(self, state, tries: int, elapsed: float, earlier_timeouts: int = 0) -> bool:
        """Tenacity's stop: the policy's tries, the timeouts of this request so far, or its time budget."""
        exc = state.outcome.exception()
        state.timeouts = getattr(state, "timeouts", earlier_timeouts) + errors.timed_out(exc)
        return (self.policy.give_up(tries, exc) or state.timeouts >= self.policy.max_timeouts
                or self._out_of_time(elapsed, exc))

    def _timeouts(self):
        import openai

        return openai.Timeout(self.timeout, connect=min(CONNECT_TIMEOUT, self.timeout))

    def _note(self, exc: BaseException | None, sleep: float) -> None:
        why = errors.reason(exc)
        self.stats.retries += 1
        self.stats.by_reason[why] += 1
        if self.on_retry is not None:
            self.on_retry(why, sleep)

    # ------------------------------------------------------------ clients

    def aclient(self):
        """The AsyncOpenAI client of the running event loop (an httpx pool belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aclient_loop is not loop:
            from openai import AsyncOpenAI

            self._aclient = AsyncOpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=0,
                                        timeout=self._timeouts())
            self._aclient_loop = loop
        return self._aclient

    @property
    def sync(self):
        if self._sync is None:
            from openai import OpenAI

            self._sync = OpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=0,
                                timeout=self._timeouts())
        return self._sync

    async def aclose(self) -> None:
        if self._aclient is not None:
            try:
                await self._aclient.close()
            finally:
                self._aclient = None

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    # ------------------------------------------------------------ blocking calls

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A blocking SDK call with retries. Raises FatalProviderError or RequestFailed."""
        import openai
        from tenacity import RetryError, Retrying, retry_if_exception

        policy = self.policy
        retrying = Retrying(
            stop=lambda state: self._give_up(state, state.attempt_number, state.seconds_since_start),
            wait=lambda state: policy.wait(state.attempt_number, state.outcome.exception()),
            before_sleep=lambda state: self._note(state.outcome.exception(),
                                                  state.next_action.sleep if state.next_action else 0.0),
            retry=retry_if_exception(errors.is_retryable), reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self.stats.requests += 1
                    answer = fn(*args, **kwargs)
                    if isinstance(answer, str):  # the SDK hands back a body that is not JSON as text
                        raise errors.not_json(answer, secret=self._api_key, base_url=self.base_url, what=what)
                    return answer
        except RetryError as e:
            last = e.last_attempt
            raise errors.gave_up(last.exception(), last.attempt_number, secret=self._api_key, what=what,
                                 base_url=self.base_url) from None
        except openai.APIError as e:
            raise self.error(e, what=what) from None

    # ------------------------------------------------------------ chat completions

    async def chat(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """One chat completion with retries (its JSON). Raises FatalProviderError or RequestFailed."""
        self.stats.requests += 1
        started = time.monotonic()
        try:  # the common case, without building a retry controller
            return await self._create_or_drop(model, body)
        except Exception as first:  # noqa: BLE001 - sorted out below
            if not errors.is_retryable(first):
                raise self._final(first, model) from None
            return await self._retry(model, body, first, started)

    async def _retry(self, model: str, body: dict[str, Any], first: BaseException, started: float) -> dict[str, Any]:
        from tenacity import AsyncRetrying, RetryError, retry_if_exception

        policy = self.policy
        if policy.give_up(1, first) or self._out_of_time(time.monotonic() - started, first):
            raise errors.gave_up(first, 1, secret=self._api_key, base_url=self.base_url) from None
        delay = policy.wait(1, first)
        self._note(first, delay)
        await asyncio.sleep(delay)
        retrying = AsyncRetrying(
            stop=lambda state: self._give_up(state, state.attempt_number + 1, time.monotonic() - started,
                                             errors.timed_out(first)),
            wait=lambda state: policy.wait(state.attempt_number + 1, state.outcome.exception()),
            before_sleep=lambda state: self._note(state.outcome.exception(),
                                                  state.next_action.sleep if state.next_action else 0.0),
            retry=retry_if_exception(errors.is_retryable), reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    self.stats.requests += 1
                    return await self._create_or_drop(model, body)
        except RetryError as e:
            last = e.last_attempt
            raise errors.gave_up(last.exception(), last.attempt_number + 1, secret=self._api_key,
                                 base_url=self.base_url) from None
        except Exception as e:  # noqa: BLE001
            raise self._final(e, model) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _final(self, exc: BaseException, model: str) -> BaseException:
        """What a non-retryable error becomes: fatal for the run, or a failure of this request."""
        import openai

        if isinstance(exc, openai.APIError):
            return self.error(exc, model=model)
        return exc  # RequestFailed, or a bug: let it show

    async def _create_or_drop(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create; if the model refuses an optional parameter (logprobs for some reasoning
        models, temperature for others), ask again without it and stop sending it this run."""
        import openai

        while True:
            try:
                return await self._create(model, body)
            except openai.BadRequestError as e:
                said = f"{getattr(e, 'param', '')} {e}".lower()
                dropped = [k for k in OPTIONAL_PARAMS if k in body and k.split("_")[-1] in said]
                if not dropped:
                    raise
                for k in dropped:
                    body.pop(k, None)
                    self.unsupported.add(k)
                if "logprobs" in dropped:
                    body.pop("top_logprobs", None)
                    self.unsupported.add("logprobs")
                    self.stats.flags["logprobs_disabled"] = True
                self.stats.requests += 1

    async def _create(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        # The SDK's generic `post` (its documented way to send any body): the same client,
        # auth, timeout and error classes as `chat.completions.create`, without the typed
        # layer's recursive param transform and pydantic response models. Measured here at
        # concurrency 32: ~2.5 -> ~1.2 ms CPU per request, which decides whether one core
        # keeps up with a fast endpoint. The body is plain JSON we build ourselves.
        answer = await self.aclient().post("/chat/completions", body={"model": model, **body}, cast_to=object)
        if not isinstance(answer, dict):
            raise errors.not_json(answer, secret=self._api_key, base_url=self.base_url)
        return answer
