"""The OpenAI provider: teacher proposals and synthetic questions from any
OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp server), through
the official SDK.

- The prompt lists the action catalog shuffled on every request (position bias), and
  the answer is forced with structured outputs (`action` is an enum of the names),
  then validated against the catalog anyway: a refusal, an unparsable or an unknown
  answer becomes an invalid Route carrying its raw text, never a guess.
- Confidence: the probability of the answer from its token logprobs, or with
  `samples=k > 1` the share of k samples that agree. A server that refuses logprobs
  (some reasoning models) is asked again without them, and not asked again this run.
- Retries: tenacity on a client built with max_retries=0 (so retries do not
  multiply), on 408/409/429/5xx, timeouts and connection errors, exponential backoff
  with jitter, honouring retry-after(-ms), at most `max_attempts` tries (more for a 429
  rate limit, which is transient by nature: `max_rate_limited`). 401, 403 and
  `insufficient_quota` are fatal (FatalAPIError) and never retried.
- The API key is never part of a message we produce; server messages are scrubbed.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from routelab import pricing
from routelab.domain import Action, BadInput, Example, RoutelabError
from routelab.providers.base import Route, Router

PROMPT_VERSION = "v1"
GENERATE_PROMPT_VERSION = "gen-v1"
DEFAULT_TIMEOUT = 60.0
MAX_ATTEMPTS = 6  # tries per request on 5xx, timeouts and connection errors
MAX_RATE_LIMITED = 20  # tries per request while the answer is 429 rate_limit (with retry-after)
MAX_WAIT = 60.0  # never sleep longer than this between tries, whatever retry-after says
ANSWER_TOKENS = 8  # what one {"action": "..."} answer costs in output tokens, for estimates
QUESTION_TOKENS = 25  # output tokens per generated question, for estimates
OPTIONAL_PARAMS = ("logprobs", "top_logprobs", "temperature")  # dropped if a model refuses them

ROUTER_INSTRUCTIONS = (
    "You are the intent router of a conversational assistant. Read the conversation and choose the one "
    "action that should handle the user's last message. Choose only from the actions listed below, using "
    "their descriptions; the order of the list means nothing. Answer with JSON {\"action\": NAME}."
)
GENERATOR_INSTRUCTIONS = (
    "You write realistic test data for the intent router of a conversational assistant. Below is the "
    "router's full action catalog, so you know where the boundaries between actions lie."
)

_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,}|[A-Za-z0-9]{32,})\b")


class FatalAPIError(RoutelabError):
    """The endpoint refuses us for every request (bad key, no access, no quota): stop the run."""

    exit_code = 1


class RequestFailed(Exception):
    """One request failed for good (retries exhausted, or a non-retryable error); others may succeed."""


def scrub(text: str, secret: str | None = None) -> str:
    """A server message made safe to show and store: no key, nothing that looks like one, one line."""
    if secret:
        text = text.replace(secret, "***")
    text = _KEYLIKE.sub("***", text)
    return " ".join(text.split())[:300]


def display_url(url: str) -> str:
    """A base URL fit for a message: no user:password@, no query string (tokens hide there)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return "the configured OPENAI_BASE_URL"


@dataclass
class CallStats:
    """What the provider did on the wire during one run (for the job record and the bench)."""

    requests: int = 0
    retries: int = 0
    by_reason: Counter = field(default_factory=Counter)
    logprobs_disabled: bool = False


@dataclass
class Generated:
    questions: list[str]
    raw: str
    tokens_in: int
    tokens_out: int
    cost: float


def route_schema(names: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "route",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"action": {"type": "string", "enum": list(names)}},
                "required": ["action"],
                "additionalProperties": False,
            },
        },
    }


QUESTIONS_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "questions",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"questions": {"type": "array", "items": {"type": "string"}}},
            "required": ["questions"],
            "additionalProperties": False,
        },
    },
}


def catalog_text(actions: Sequence[Action], rng: random.Random) -> str:
    shuffled = list(actions)
    rng.shuffle(shuffled)
    return "\n".join(f"- {a.name}: {' '.join(a.description.split()) or a.name.replace('_', ' ')}" for a in shuffled)


def route_messages(example: Example, actions: Sequence[Action], rng: random.Random) -> list[dict[str, str]]:
    """System prompt with the shuffled catalog, then the conversation, then the question."""
    messages = [{"role": "system", "content": f"{ROUTER_INSTRUCTIONS}\n\nActions:\n{catalog_text(actions, rng)}"}]
    for m in example.conversation or []:
        if m.role in ("user", "assistant"):
            messages.append({"role": m.role, "content": m.content})
    messages.append({"role": "user", "content": example.text})
    return messages


def generate_messages(
    action: Action, actions: Sequence[Action], n: int, avoid: Sequence[str], rng: random.Random
) -> list[dict[str, str]]:
    system = f"{GENERATOR_INSTRUCTIONS}\n\nActions:\n{catalog_text(actions, rng)}"
    ask = (
        f"Write {n} different messages that real users would send and that belong to the action "
        f"{action.name!r} ({' '.join(action.description.split()) or action.name}). Vary them: length, tone, "
        "wording, detail; some terse, some chatty, an occasional typo; no numbering. Each must clearly belong "
        "to this action and not to another one in the catalog. Answer with JSON {\"questions\": [...]}."
    )
    if avoid:
        ask += "\nDo not repeat or paraphrase closely any of these existing ones:\n" + "\n".join(
            f"- {q}" for q in avoid[-20:]
        )
    return [{"role": "system", "content": system}, {"role": "user", "content": ask}]


def _strip_fences(text: str) -> str:
    t = text.strip()
    if t.startswith("```"):
        t = re.sub(r"^```[a-zA-Z]*\s*|\s*```$", "", t)
    return t


def parse_action(content: str | None, refusal: str | None, names: set[str]) -> tuple[str | None, str]:
    """(action or None if invalid, raw text). Never guesses: only an exact catalog name counts."""
    if refusal:
        return None, f"refusal: {refusal}"
    raw = content or ""
    try:
        obj = json.loads(_strip_fences(raw))
    except ValueError:
        return None, raw
    action = obj.get("action") if isinstance(obj, dict) else None
    if isinstance(action, str) and action in names:
        return action, raw
    return None, raw


def logprob_confidence(logprobs: Any) -> float | None:
    """Probability of the whole answer: exp(sum of its token logprobs).

    With structured outputs the JSON scaffolding is forced (logprob ~0), so this is the
    probability the model gave to the action it chose."""
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content:
        return None
    total = sum(float(t.get("logprob") or 0.0) for t in content if isinstance(t, dict))
    return max(0.0, min(1.0, math.exp(total)))


def _usage(completion: dict[str, Any]) -> tuple[int, int]:
    usage = completion.get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def route_from_completion(completion: dict[str, Any], names: set[str], model: str, *, batch: bool = False) -> Route:
    """A Route from a chat completion (its JSON) with one or several choices."""
    tokens_in, tokens_out = _usage(completion)
    cost = pricing.chat_cost(model, tokens_in, tokens_out, batch=batch)
    answers = []
    for choice in completion.get("choices") or []:
        msg = choice.get("message") or {}
        action, raw = parse_action(msg.get("content"), msg.get("refusal"), names)
        answers.append((action, raw, choice))
    if not answers:
        return Route(action=None, valid=False, raw="no choices in the answer", tokens_in=tokens_in,
                     tokens_out=tokens_out, cost=cost)
    if len(answers) == 1:
        action, raw, choice = answers[0]
        confidence = logprob_confidence(choice.get("logprobs")) if action else None
        return Route(action=action, valid=action is not None, confidence=confidence, raw=raw,
                     tokens_in=tokens_in, tokens_out=tokens_out, cost=cost)
    votes = Counter(a for a, _, _ in answers if a is not None)
    raws = [r for _, r, _ in answers]
    if not votes:
        return Route(action=None, valid=False, raw=json.dumps(raws), tokens_in=tokens_in, tokens_out=tokens_out,
                     cost=cost)
    (action, count), = votes.most_common(1)
    return Route(action=action, confidence=round(count / len(answers), 4), raw=json.dumps(raws),
                 tokens_in=tokens_in, tokens_out=tokens_out, cost=cost)


def _status_code(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def _error_code(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    if code:
        return str(code)
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner.get("code") or inner.get("type")
    return None


def retry_after_seconds(exc: BaseException) -> float | None:
    """The server's requested wait, from retry-after-ms or retry-after (seconds or an HTTP date)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    return None


def is_retryable(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return True
    status = _status_code(exc)
    if status == 429:
        return _error_code(exc) != "insufficient_quota"
    return status in (408, 409) or (status is not None and status >= 500)


class OpenAIProvider:
    """Calls to one model at one endpoint. One instance per run; its client follows the event loop."""

    provider = "openai"

    def __init__(
        self, model: str, *, api_key: str, base_url: str | None = None, timeout: float = DEFAULT_TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS, max_rate_limited: int = MAX_RATE_LIMITED, samples: int = 1,
        logprobs: bool = True, seed: int | None = None,
        backoff: float = 0.5, on_retry: Callable[[str, float], None] | None = None,
        system_prompt: str | None = None,
    ):
        if samples < 1:
            raise BadInput("--samples must be at least 1")
        self.model = model
        self._api_key = api_key
        self.base_url = base_url
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_rate_limited = max(max_rate_limited, max_attempts)
        self.samples = samples
        self.use_logprobs = logprobs and samples == 1
        self.backoff = backoff
        self.on_retry = on_retry
        self.rng = random.Random(seed)
        self.stats = CallStats()
        self.unsupported: set[str] = set()  # optional parameters this endpoint refused this run
        # A fine-tuned router must see the exact (unshuffled) system prompt it was trained on.
        self.system_prompt = system_prompt
        self._client = None
        self._client_loop = None

    def __repr__(self) -> str:  # never the key
        return f"OpenAIProvider(model={self.model!r}, base_url={self.base_url!r})"

    # ------------------------------------------------------------ client

    def client(self):
        """The AsyncOpenAI client of the running event loop (an httpx pool belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=0,
                                       timeout=self.timeout)
            self._client_loop = loop
        return self._client

    def load(self) -> None:
        """Import the SDK now (about a second, cold), so it is not counted as labeling time."""
        import importlib

        importlib.import_module("openai")

    def sync_client(self):
        from openai import OpenAI

        return OpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout)

    async def aclose(self) -> None:
        if self._client is not None:
            try:
                await self._client.close()
            finally:
                self._client = None

    # ------------------------------------------------------------ errors and retries

    def fatal(self, exc: BaseException) -> FatalAPIError | None:
        """The error that must stop the whole run, or None if this one concerns one request."""
        status = _status_code(exc)
        code = _error_code(exc)
        where = f" at {display_url(self.base_url)}" if self.base_url else ""
        if status == 401:
            return FatalAPIError(
                f"the OpenAI-compatible API{where} rejected the API key (401{', ' + code if code else ''}): "
                "check OPENAI_API_KEY"
            )
        if status == 403:
            return FatalAPIError(
                f"the API key is not allowed to use {self.model}{where} (403 permission denied): "
                "check the key's project and model access"
            )
        if status == 429 and code == "insufficient_quota":
            return FatalAPIError(
                "the API account has no quota left (429 insufficient_quota): check the plan and billing; "
                "everything labelled so far is saved"
            )
        if status == 404:
            return FatalAPIError(f"model {self.model!r} not found{where} (404): check --model / ROUTELAB_TEACHER")
        return None

    def describe(self, exc: BaseException) -> str:
        status = _status_code(exc)
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        prefix = f"{status} " if status else f"{type(exc).__name__}: "
        return prefix + scrub(str(message), self._api_key)

    def _wait(self, attempt: int, exc: BaseException) -> float:
        hinted = retry_after_seconds(exc)
        if hinted is not None:
            # the server knows best; up to 20% (+10 ms) of jitter so waiting requests do not return in a herd
            return min(MAX_WAIT, hinted * random.uniform(1.0, 1.2) + random.uniform(0, 0.01))
        return min(MAX_WAIT, random.uniform(0, self.backoff * (2 ** (attempt - 1))) + self.backoff / 2)

    async def _call(self, **kwargs: Any) -> Any:
        """One chat completion with retries. Raises FatalAPIError or RequestFailed."""
        self.stats.requests += 1
        try:  # the common case, without building a retry controller
            return await self._create_or_drop_logprobs(kwargs)
        except Exception as first:  # noqa: BLE001 - sorted out below
            if not is_retryable(first):
                raise self._final(first) from None
            return await self._retry(kwargs, first)

    async def _create_or_drop_logprobs(self, kwargs: dict[str, Any]) -> Any:
        """Create; if the model refuses an optional parameter (logprobs for some reasoning
        models, temperature for others), ask again without it and stop sending it this run."""
        import openai

        while True:
            try:
                return await self._create(**kwargs)
            except openai.BadRequestError as e:
                said = f"{getattr(e, 'param', '')} {e}".lower()
                dropped = [k for k in OPTIONAL_PARAMS if k in kwargs and k.split("_")[-1] in said]
                if not dropped:
                    raise
                for k in dropped:
                    kwargs.pop(k, None)
                    self.unsupported.add(k)
                if "logprobs" in dropped:
                    kwargs.pop("top_logprobs", None)
                    self.use_logprobs = False
                    self.stats.logprobs_disabled = True
                self.stats.requests += 1

    def _final(self, exc: BaseException) -> BaseException:
        """What a non-retryable error becomes: fatal for the run, or a failure of this request."""
        import openai

        if isinstance(exc, openai.APIError):
            return self.fatal(exc) or RequestFailed(self.describe(exc))
        return exc  # RequestFailed, or a bug: let it show

    async def _retry(self, kwargs: dict[str, Any], first: BaseException) -> Any:
        from tenacity import AsyncRetrying, RetryError, retry_if_exception

        def note(exc: BaseException, sleep: float) -> None:
            status = _status_code(exc)
            reason = str(status) if status else type(exc).__name__
            self.stats.retries += 1
            self.stats.by_reason[reason] += 1
            if self.on_retry is not None:
                self.on_retry(reason, sleep)

        delay = self._wait(1, first)
        note(first, delay)
        await asyncio.sleep(delay)
        retrying = AsyncRetrying(
            stop=lambda state: self._give_up(state.attempt_number + 1, state.outcome.exception()),
            wait=lambda state: self._wait(state.attempt_number + 1, state.outcome.exception()),
            before_sleep=lambda state: note(state.outcome.exception(),
                                            state.next_action.sleep if state.next_action else 0.0),
            retry=retry_if_exception(is_retryable), reraise=False,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    self.stats.requests += 1
                    return await self._create_or_drop_logprobs(kwargs)
        except RetryError as e:
            exc = e.last_attempt.exception()
            tries = e.last_attempt.attempt_number + 1
            raise RequestFailed(f"gave up after {tries} tries: {self.describe(exc)}") from None
        except Exception as e:  # noqa: BLE001
            raise self._final(e) from None

    def _give_up(self, tries: int, exc: BaseException | None) -> bool:
        """Errors get `max_attempts` tries; rate limits (transient by nature, and the server says
        when to come back) get `max_rate_limited` before a request is left for the next run."""
        limit = self.max_rate_limited if _status_code(exc) == 429 else self.max_attempts
        return tries >= limit

    def sync_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A blocking SDK call (files, batches) with the same retry and error rules."""
        import openai
        from tenacity import RetryError, Retrying, retry_if_exception

        retrying = Retrying(
            stop=lambda state: self._give_up(state.attempt_number, state.outcome.exception()),
            wait=lambda state: self._wait(state.attempt_number, state.outcome.exception()),
            retry=retry_if_exception(is_retryable), reraise=False,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self.stats.requests += 1
                    return fn(*args, **kwargs)
        except RetryError as e:
            raise RoutelabError(f"gave up after {e.last_attempt.attempt_number} tries: "
                                f"{self.describe(e.last_attempt.exception())}") from None
        except openai.APIError as e:
            raise (self.fatal(e) or RoutelabError(self.describe(e))) from None

    async def _create(self, **kwargs: Any) -> dict[str, Any]:
        # The SDK's generic `post` (its documented way to send any body): the same client,
        # auth, timeout and error classes as `chat.completions.create`, without the typed
        # layer's recursive param transform and pydantic response models. Measured here at
        # concurrency 32: ~2.5 -> ~1.2 ms CPU per request, which decides whether one core
        # keeps up with a fast endpoint. The body is plain JSON we build ourselves.
        answer = await self.client().post("/chat/completions", body={"model": self.model, **kwargs}, cast_to=object)
        if not isinstance(answer, dict):
            raise RequestFailed(f"the endpoint answered something that is not a JSON object: {str(answer)[:100]!r}")
        return answer

    # ------------------------------------------------------------ routing

    def request_body(self, example: Example, actions: Sequence[Action]) -> dict[str, Any]:
        """The chat completion parameters for one example (also a Batch API line's body)."""
        messages = route_messages(example, actions, self.rng)
        if self.system_prompt is not None:
            messages[0] = {"role": "system", "content": self.system_prompt}
        body: dict[str, Any] = {
            "messages": messages,
            "response_format": route_schema([a.name for a in actions]),
            "temperature": 1.0 if self.samples > 1 else 0.0,
        }
        if self.samples > 1:
            body["n"] = self.samples
        elif self.use_logprobs:
            body["logprobs"] = True  # the chosen tokens' logprobs are enough: exp(sum) is the confidence
        for k in self.unsupported:
            body.pop(k, None)
        return body

    async def aroute(self, example: Example, actions: Sequence[Action]) -> Route:
        names = {a.name for a in actions}
        body = self.request_body(example, actions)
        t0 = time.perf_counter()
        completion = await self._call(**body)
        route = route_from_completion(completion, names, self.model)
        route.latency_ms = round((time.perf_counter() - t0) * 1000, 2)
        return route

    # ------------------------------------------------------------ generation

    async def agenerate(self, action: Action, actions: Sequence[Action], n: int, avoid: Sequence[str] = ()) -> Generated:
        messages = generate_messages(action, actions, n, avoid, self.rng)
        params: dict[str, Any] = {"messages": messages, "response_format": QUESTIONS_SCHEMA, "temperature": 1.0}
        for k in self.unsupported:
            params.pop(k, None)
        completion = await self._call(**params)
        tokens_in, tokens_out = _usage(completion)
        choices = completion.get("choices") or [{}]
        msg = choices[0].get("message") or {}
        raw = msg.get("content") or msg.get("refusal") or ""
        questions: list[str] = []
        try:
            obj = json.loads(_strip_fences(raw))
            items = obj.get("questions") if isinstance(obj, dict) else obj
            if isinstance(items, list):
                questions = [q.strip() for q in items if isinstance(q, str) and q.strip()]
        except ValueError:
            pass
        return Generated(questions, raw, tokens_in, tokens_out, pricing.chat_cost(self.model, tokens_in, tokens_out))


class OpenAIRouter(Router):
    """A Router over OpenAIProvider: async per example (`aroute`), or blocking `route_batch`."""

    provider = "openai"

    def __init__(self, model: str, **kwargs: Any):
        self.model = model
        self.prompt_version = PROMPT_VERSION
        self.api = OpenAIProvider(model, **kwargs)

    async def aroute(self, example: Example, actions: Sequence[Action]) -> Route:
        return await self.api.aroute(example, actions)

    def route_batch(self, examples: Sequence[Example], actions: Sequence[Action]) -> list[Route]:
        async def run() -> list[Route]:
            sem = asyncio.Semaphore(8)

            async def one(e: Example) -> Route:
                async with sem:
                    try:
                        return await self.api.aroute(e, actions)
                    except RequestFailed as exc:
                        return Route(action=None, valid=False, raw=f"error: {exc}")

            try:
                return list(await asyncio.gather(*(one(e) for e in examples)))
            finally:
                await self.api.aclose()

        return asyncio.run(run())
