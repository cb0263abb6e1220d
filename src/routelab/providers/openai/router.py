"""The OpenAI router: teacher proposals (and fine-tuned routers) from a chat model on any endpoint.

The answer's form is the strongest the endpoint accepts (formats.py; probed once per
endpoint by the client). Confidence, and where it comes from (shown as the router's mode):
- "logprobs": the probability of the answer from its token logprobs, where the server gives them;
- "sampling agreement": with `samples=k > 1`, the share of k samples that agree (one request
  with `n=k` where the server takes `n`, else k requests);
- "none": a server without logprobs, one sample.
A parameter the server refuses (logprobs, seed, n) is dropped and not sent again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from routelab import pricing
from routelab.domain import Action, BadInput, Example
from routelab.providers.base import BatchLabeler, CallStats, Estimate, QuestionGenerator, RequestFailed, Route, Router
from routelab.providers.openai.answers import route_from_completion
from routelab.providers.openai.client import OpenAIClient
from routelab.providers.openai.formats import LABELS, answer_budget, with_format
from routelab.providers.openai.prompts import ANSWER_TOKENS, PROMPT_VERSION, route_messages, route_schema
from routelab.providers.openai.tokens import count_tokens

BATCH_CONCURRENCY = 8  # requests in flight for a blocking route_batch (the playground, small evals)
JSON_TOKENS, PROSE_TOKENS = 64, 256  # answer bounds without strict structured outputs (formats.answer_budget)


class OpenAIRouter(Router):
    provider = "openai"
    prompt_version = PROMPT_VERSION
    supports_async = True
    remote = True

    def __init__(self, model: str, client: OpenAIClient, *, samples: int = 1, logprobs: bool = True,
                 seed: int | None = None, system_prompt: str | None = None, wire_model: str | None = None):
        if samples < 1:
            raise BadInput("--samples must be at least 1")
        self.model = model  # the id as written (NAME/MODEL on a named endpoint): stored with proposals
        self.wire_model = wire_model or model  # what the endpoint is asked for
        self.client = client
        self.samples = samples
        self.logprobs = logprobs and samples == 1
        self.seed = seed
        self.rng = random.Random(seed)
        # A fine-tuned router must see the exact (unshuffled) system prompt it was trained on.
        self.system_prompt = system_prompt
        self.sources: Counter[str] = Counter()  # where each valid answer's confidence came from

    def __repr__(self) -> str:  # never the key
        return f"OpenAIRouter(model={self.model!r}, base_url={self.client.base_url!r})"

    @property
    def stats(self) -> CallStats:
        return self.client.stats

    @property
    def mode(self) -> str | None:
        """The response format in use and where confidence comes from, e.g. "json_object+schema, confidence:
        logprobs" (before the first answer: what is expected)."""
        form = self.client.caps.get("structured")
        parts = [f"{LABELS[form]}"] if form in LABELS else []
        parts.append(f"confidence: {self.confidence_source}")
        return ", ".join(parts)

    @property
    def confidence_source(self) -> str:
        if self.sources:
            return self.sources.most_common(1)[0][0]
        if self.samples > 1:
            return "sampling agreement"
        return "logprobs" if self.logprobs and not self.client.caps.refused("logprobs") else "none"

    def run_params(self) -> dict[str, Any]:
        return {"samples": self.samples, "endpoint": self.client.target.name}

    def prepare(self) -> None:
        """Import the SDK now (about a second, cold), so it is not counted as labeling time."""
        import importlib

        importlib.import_module("openai")

    def messages(self, example: Example, actions: Sequence[Action], rng: random.Random) -> list[dict[str, str]]:
        return route_messages(example, actions, rng, self.system_prompt)

    def request_body(self, example: Example, actions: Sequence[Action], form: str | None = None,
                     sample: int | None = None) -> dict[str, Any]:
        """The chat completion parameters for one example in a response form (default: the endpoint's,
        else strict json_schema), also a Batch API line's body. `sample`: the i-th of k separate samples."""
        body: dict[str, Any] = {
            "messages": self.messages(example, actions, self.rng),
            "temperature": 1.0 if self.samples > 1 else 0.0,
        }
        form = form or self.client.caps.get("structured") or "json_schema"
        with_format(body, form, "route", route_schema([a.name for a in actions]))
        budget = answer_budget(form, PROSE_TOKENS if form == "prompt" else JSON_TOKENS)
        if budget:
            body["max_tokens"] = budget
        if self.samples > 1 and sample is None:
            body["n"] = self.samples
        elif self.logprobs:
            body["logprobs"] = True  # the chosen tokens' logprobs are enough: exp(sum) is the confidence
        if self.seed is not None:
            body["seed"] = self.seed + (sample or 0)  # separate samples must differ
        for k in self.client.unsupported:
            body.pop(k, None)
        if self.logprobs and "logprobs" not in body:
            self.stats.flags["logprobs_disabled"] = True
        return body

    async def _complete(self, example: Example, actions: Sequence[Action], sample: int | None = None) -> dict:
        sent: list[dict[str, Any]] = []

        def build(form: str) -> dict[str, Any]:
            sent.append(self.request_body(example, actions, form, sample))
            return sent[-1]

        completion, _ = await self.client.chat_structured(self.wire_model, build)
        if "logprobs" in sent[-1] and not any(ch.get("logprobs") for ch in completion.get("choices") or []):
            self.client.caps.record("logprobs", False)  # accepted, but none given (llama.cpp's server): stop asking
        return completion

    async def _samples(self, example: Example, actions: Sequence[Action]) -> dict:
        """k answers: one request with n=k, topped up with separate requests where the server ignores n."""
        caps, k = self.client.caps, self.samples
        completions = [] if caps.refused("n") else [await self._complete(example, actions)]
        have = sum(len(c.get("choices") or []) for c in completions)
        if completions and have < k:
            caps.record("n", False)  # it answered once: asked for n, it ignored it
        if have < k:
            completions += await asyncio.gather(*(self._complete(example, actions, sample=i)
                                                  for i in range(have, k)))
        return merge_completions(completions)

    async def aroute(self, example: Example, actions: Sequence[Action]) -> Route:
        names = {a.name for a in actions}
        t0 = time.perf_counter()
        if self.samples > 1:
            completion = await self._samples(example, actions)
        else:
            completion = await self._complete(example, actions)
        route = route_from_completion(completion, names, self.wire_model)
        route.latency_ms = round((time.perf_counter() - t0) * 1000, 2)
        if route.valid:
            source = "sampling agreement" if self.samples > 1 else "logprobs" if route.confidence is not None \
                else "none"
            self.sources[source] += 1
            self._note_source(source)
        return route

    def _note_source(self, source: str) -> None:
        self.stats.flags["confidence"] = source
        self.stats.flags["response_format"] = self.client.caps.get("structured")
        if self.sources[source] == 1:  # once per source and run: where the endpoint's confidence comes from
            self.client.caps.record("confidence", source)

    def route_batch(self, examples: Sequence[Example], actions: Sequence[Action]) -> list[Route]:
        async def run() -> list[Route]:
            sem = asyncio.Semaphore(BATCH_CONCURRENCY)

            async def one(e: Example) -> Route:
                async with sem:
                    try:
                        return await self.aroute(e, actions)
                    except RequestFailed as exc:
                        return Route(action=None, valid=False, raw=f"error: {exc}")

            try:
                return list(await asyncio.gather(*(one(e) for e in examples)))
            finally:
                await self.client.aclose()

        return asyncio.run(run())

    def estimate(self, sample: Sequence[Example], actions: Sequence[Action], n: int, *,
                 batch: bool = False) -> Estimate | None:
        """Prompt tokens counted offline on a sample of the examples, answers at ANSWER_TOKENS each."""
        priced = pricing.known(self.wire_model)
        if not sample or not n:
            return Estimate(0, self.model, 0, 0, 0.0, priced, batch)
        rng = random.Random(0)
        per_prompt = sum(count_tokens(self.messages(e, actions, rng)) for e in sample) / len(sample)
        tokens_in = int(per_prompt * n)
        tokens_out = ANSWER_TOKENS * self.samples * n
        cost = pricing.chat_cost(self.wire_model, tokens_in, tokens_out, batch=batch)
        return Estimate(n, self.model, tokens_in, tokens_out, cost, priced, batch)

    def question_generator(self) -> QuestionGenerator:
        from routelab.providers.openai.generator import OpenAIGenerator

        return OpenAIGenerator(self.model, self.client, wire_model=self.wire_model)

    def batch_labeler(self) -> BatchLabeler:
        """The Batch API labeler; BadInput, before anything is sent, where the endpoint has no Batch API
        (declared, detected earlier, or found now by one free listing request)."""
        from routelab.providers.openai.batch import OpenAIBatchLabeler, check_batch_api

        check_batch_api(self.client)
        return OpenAIBatchLabeler(self)

    def close(self) -> None:
        self.client.close()

    async def aclose(self) -> None:
        await self.client.aclose()


def merge_completions(completions: Sequence[dict]) -> dict:
    """Several completions' choices and usage as one completion (separate samples of one question)."""
    if len(completions) == 1:
        return completions[0]
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    for c in completions:
        for k in usage:
            usage[k] += int((c.get("usage") or {}).get(k) or 0)
    return {"choices": [ch for c in completions for ch in (c.get("choices") or [])], "usage": usage}
