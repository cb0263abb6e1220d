"""One OpenAI-compatible endpoint: its clients, the retry policy and the error mapping.

The endpoint is a `Target` (endpoints.py): OpenAI, any compatible server, or Azure OpenAI
(through the SDK's AzureOpenAI clients: deployments, api-version, the api-key header).
What it supports is its `Capabilities`: the response format it accepts (probed once:
`chat_structured`), the parameters it refused (never sent again), its APIs.

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
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from routelab.domain import BadInput
from routelab.providers.base import CallStats
from routelab.providers.openai import errors
from routelab.providers.openai.capabilities import PARAMS, Capabilities
from routelab.providers.openai.endpoints import DEFAULT, DEFAULT_BASE_URL, Target, default_target
from routelab.providers.openai.formats import FORMS, FormatRefused, refused_for_form, start_form
from routelab.redaction import register_secret

DEFAULT_TIMEOUT = 60.0
CONNECT_TIMEOUT = 5.0  # seconds to open a connection: a host that drops packets fails fast
# dropped (and not sent again) when a server refuses them
OPTIONAL_PARAMS = ("logprobs", "top_logprobs", "temperature", "seed", "n", "max_tokens")
PARAM_REFUSALS = (400, 422)


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
                 policy: RetryPolicy | None = None, on_retry: Callable[[str, float], None] | None = None,
                 target: Target | None = None, caps: Capabilities | None = None):
        if timeout <= 0:
            raise BadInput("--timeout must be positive")
        self._api_key = api_key
        register_secret(api_key)  # whatever text echoes it (a proxy's page) is cleaned before it is kept
        self.target = target or Target(model_id="", model="", name=DEFAULT, base_url=base_url or DEFAULT_BASE_URL)
        self.base_url = base_url if target is None else target.base_url
        self.timeout = timeout
        self.policy = policy or RetryPolicy()
        self.on_retry = on_retry
        self.caps = caps or Capabilities(self.target)
        self.stats = CallStats(flags={"logprobs_disabled": False})
        self._refused_forms: set[str] = set()  # forms refused this run (a remembered one may be refused later)
        self._confirmed: str | None = None  # the form accepted this run
        self._aclient = None
        self._aclient_loop = None
        self._probe_lock: tuple[Any, asyncio.Lock] | None = None
        self._sync = None

    @classmethod
    def from_settings(cls, settings, **kwargs: Any) -> OpenAIClient:
        """The default endpoint (OPENAI_BASE_URL, else OpenAI) with OPENAI_API_KEY."""
        return cls(api_key=settings.openai_api_key.get_secret_value(), target=default_target(settings), **kwargs)

    @classmethod
    def for_target(cls, target: Target, *, settings=None, store=None, **kwargs: Any) -> OpenAIClient:
        """The endpoint a model id resolved to, its capabilities remembered in `store` (if given)."""
        if target.api_key_env == "OPENAI_API_KEY" and settings is not None and settings.openai_api_key:
            key = settings.openai_api_key.get_secret_value()
        else:
            key = target.api_key()
        return cls(api_key=key, target=target, caps=Capabilities(target, store), **kwargs)

    def __repr__(self) -> str:  # never the key, nor a password in the URL
        return f"OpenAIClient(endpoint={self.target.name!r}, base_url={errors.display_url(self.base_url)!r})"

    @property
    def endpoint(self) -> str:
        """The endpoint as a stable key (the upload cache's), without credentials: it is stored."""
        return errors.display_url(self.base_url or DEFAULT_BASE_URL).rstrip("/")

    @property
    def unsupported(self) -> set[str]:
        """Optional request parameters this endpoint refused (this run, or remembered)."""
        return {p for p in PARAMS if self.caps.refused(p)}

    def error(self, exc: BaseException, *, model: str | None = None, what: str | None = None):
        t = self.target
        if t.name == DEFAULT:
            key_env = "OPENAI_API_KEY"
        else:
            key_env = f"${t.api_key_env} (endpoint {t.name})" if t.api_key_env else f"the key of endpoint {t.name}"
        return errors.to_error(exc, secret=self._api_key, base_url=self.base_url, model=model, what=what,
                               key_env=key_env)

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
            self._aclient = self._make(asynchronous=True)
            self._aclient_loop = loop
        return self._aclient

    @property
    def sync(self):
        if self._sync is None:
            self._sync = self._make(asynchronous=False)
        return self._sync

    def _make(self, *, asynchronous: bool):
        import openai

        common = {"api_key": self._api_key, "max_retries": 0, "timeout": self._timeouts()}
        if self.target.kind == "azure":
            cls = openai.AsyncAzureOpenAI if asynchronous else openai.AzureOpenAI
            return cls(azure_endpoint=self.base_url, api_version=self.target.api_version, **common)
        cls = openai.AsyncOpenAI if asynchronous else openai.OpenAI
        return cls(base_url=self.base_url, **common)

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

    def require_api(self, api: str, command: str) -> None:
        """BadInput (one line, before any work is sent) where the endpoint lacks `api`: capabilities.py."""
        from routelab.providers.openai.capabilities import require_api

        require_api(self, api, command)

    # ------------------------------------------------------------ chat completions

    def _retryable(self, exc: BaseException | None, body: dict[str, Any]) -> bool:
        """Worth another try: a transient error that is not a refusal of the request's form."""
        return errors.is_retryable(exc) and not (exc is not None and refused_for_form(exc, body))

    async def chat(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """One chat completion with retries (its JSON). Raises FatalProviderError, FormatRefused
        (the endpoint does not take this response_format) or RequestFailed."""
        self.stats.requests += 1
        started = time.monotonic()
        try:  # the common case, without building a retry controller
            return await self._create_or_drop(model, body)
        except Exception as first:  # noqa: BLE001 - sorted out below
            if not self._retryable(first, body):
                raise self._final(first, model, body) from None
            return await self._retry(model, body, first, started)

    async def chat_structured(self, model: str, build: Callable[[str], dict[str, Any]]) -> tuple[dict[str, Any], str]:
        """A chat completion in the strongest response format the endpoint accepts: (its JSON, the form).

        `build(form)` makes the request body in a form (formats.FORMS). The form is the one
        remembered for the endpoint. While none is, one request at a time probes (the others wait
        for its answer), stepping down a form on each refusal: one request per endpoint, not one
        per question. A probe that meets a transient error is retried outside the lock, so the
        others are not held up by its backoff (one of them probes meanwhile)."""
        while True:
            form = self._usable_form()
            if form is None:
                async with self._probing():
                    if self._usable_form() is not None:
                        continue  # another request found it while this one waited
                    form = self._probe_form()
                    body = build(form)
                    started = time.monotonic()
                    try:
                        answer, transient = await self._probe(model, body)
                    except FormatRefused:
                        self._refuse(form)
                        continue
                    if transient is None:
                        self._accepted(form)
                        return answer, form
                try:
                    answer = await self._retry(model, body, transient, started)
                except FormatRefused:
                    self._refuse(form)
                    continue
                self._accepted(form)
                return answer, form
            try:
                return await self.chat(model, build(form)), form
            except FormatRefused:
                self._refuse(form)  # the server changed (or was replaced): probe again

    def _usable_form(self) -> str | None:
        """The form to send without probing: one found on this endpoint (this run or before). A declared
        form is only where probing starts, so the first request still finds the parameters refused."""
        known = self.caps.get("structured")
        if known in FORMS and known not in self._refused_forms and self.caps.source("structured") != "declared":
            return known
        return self._confirmed if self._confirmed not in self._refused_forms else None

    def _probe_form(self) -> str:
        """The strongest form not refused yet, from the declared one (if any) down."""
        for form in FORMS[start_form(self.caps.declared.get("structured")):]:
            if form not in self._refused_forms:
                return form
        return FORMS[-1]  # a plain prompt carries no response_format: it is never refused for one

    def _accepted(self, form: str) -> None:
        self._confirmed = form
        self.caps.record("structured", form)

    def _refuse(self, form: str) -> None:
        self._refused_forms.add(form)
        self.stats.flags["refused_forms"] = sorted(self._refused_forms, key=FORMS.index)
        if self.caps.get("structured") == form:
            self.caps.forget("structured")

    async def _probe(self, model: str, body: dict[str, Any]) -> tuple[dict[str, Any] | None, BaseException | None]:
        """One try of `body`: (its answer, None), or (None, the transient error to retry). Raises
        FormatRefused, FatalProviderError or RequestFailed."""
        self.stats.requests += 1
        try:
            return await self._create_or_drop(model, body), None
        except Exception as e:  # noqa: BLE001 - sorted out below
            if not self._retryable(e, body):
                raise self._final(e, model, body) from None
            return None, e

    def _probing(self) -> asyncio.Lock:
        """The lock of the running event loop under which the response format is probed."""
        loop = asyncio.get_running_loop()
        if self._probe_lock is None or self._probe_lock[0] is not loop:
            self._probe_lock = (loop, asyncio.Lock())
        return self._probe_lock[1]

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
            retry=retry_if_exception(lambda e: self._retryable(e, body)), reraise=False,
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
            raise self._final(e, model, body) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _final(self, exc: BaseException, model: str, body: dict[str, Any]) -> BaseException:
        """What a non-retryable error becomes: fatal for the run, a refusal of the request's form,
        or a failure of this request."""
        import openai

        if isinstance(exc, openai.APIError):
            if refused_for_form(exc, body):
                return FormatRefused(f"endpoint {self.target.name} refused response_format "
                                     f"{body['response_format'].get('type')!r}: {errors.describe(exc, self._api_key)}",
                                     status=errors.status_code(exc), param="response_format")
            return self.error(exc, model=model)
        return exc  # RequestFailed, or a bug: let it show

    async def _create_or_drop(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create; if the server refuses an optional parameter (logprobs for some reasoning models,
        temperature for others, seed or n for some servers), ask again without it and do not send
        it again (this run, or on this endpoint: capabilities.py)."""
        import openai

        while True:
            try:
                return await self._create(model, body)
            except openai.APIStatusError as e:
                dropped = refused_params(e, body) if e.status_code in PARAM_REFUSALS else []
                if not dropped:
                    raise
                for k in dropped:
                    body.pop(k, None)
                    if k == "logprobs":
                        body.pop("top_logprobs", None)
                        self.stats.flags["logprobs_disabled"] = True
                    if k in PARAMS:
                        self.caps.record(k, False)
                self.stats.requests += 1

    async def _create(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        # The SDK's generic `post` (its documented way to send any body): the same client,
        # auth, timeout and error classes as `chat.completions.create`, without the typed
        # layer's recursive param transform and pydantic response models. Measured here at
        # concurrency 32: ~2.5 -> ~1.2 ms CPU per request, which decides whether one core
        # keeps up with a fast endpoint. The body is plain JSON we build ourselves. (Azure's
        # client turns this path into /openai/deployments/{model}/chat/completions itself.)
        answer = await self.aclient().post("/chat/completions", body={"model": model, **body}, cast_to=object)
        if not isinstance(answer, dict):
            raise errors.not_json(answer, secret=self._api_key, base_url=self.base_url)
        return answer


def refused_params(exc: BaseException, body: dict[str, Any]) -> list[str]:
    """The optional parameters of `body` that the server's refusal names (its `param`, or a word of its message)."""
    param = str(getattr(exc, "param", None) or "").lower()
    said = f"{getattr(exc, 'message', '')} {getattr(exc, 'body', '')}".lower()
    named = []
    for k in OPTIONAL_PARAMS:
        if k not in body:
            continue
        word = "logprobs" if k == "top_logprobs" else k
        if param == k or param == word or (len(word) > 1 and re.search(rf"\b{word}\b", said)):
            named.append(k)
    return named
