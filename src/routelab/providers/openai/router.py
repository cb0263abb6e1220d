"""The OpenAI router: teacher proposals (and fine-tuned routers) from a chat model.

Confidence: the probability of the answer from its token logprobs, or with `samples=k > 1`
the share of k samples that agree. A server that refuses logprobs (some reasoning
models) is asked again without them, and not asked again this run.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import Any

from routelab import pricing
from routelab.domain import Action, BadInput, Example
from routelab.providers.base import BatchLabeler, CallStats, Estimate, QuestionGenerator, RequestFailed, Route, Router
from routelab.providers.openai.answers import route_from_completion
from routelab.providers.openai.client import OpenAIClient
from routelab.providers.openai.prompts import ANSWER_TOKENS, PROMPT_VERSION, route_messages, route_schema
from routelab.providers.openai.tokens import count_tokens

BATCH_CONCURRENCY = 8  # requests in flight for a blocking route_batch (the playground, small evals)


class OpenAIRouter(Router):
    provider = "openai"
    prompt_version = PROMPT_VERSION
    supports_async = True
    remote = True

    def __init__(self, model: str, client: OpenAIClient, *, samples: int = 1, logprobs: bool = True,
                 seed: int | None = None, system_prompt: str | None = None):
        if samples < 1:
            raise BadInput("--samples must be at least 1")
        self.model = model
        self.client = client
        self.samples = samples
        self.logprobs = logprobs and samples == 1
        self.rng = random.Random(seed)
        # A fine-tuned router must see the exact (unshuffled) system prompt it was trained on.
        self.system_prompt = system_prompt

    def __repr__(self) -> str:  # never the key
        return f"OpenAIRouter(model={self.model!r}, base_url={self.client.base_url!r})"

    @property
    def stats(self) -> CallStats:
        return self.client.stats

    def run_params(self) -> dict[str, Any]:
        return {"samples": self.samples}

    def prepare(self) -> None:
        """Import the SDK now (about a second, cold), so it is not counted as labeling time."""
        import importlib

        importlib.import_module("openai")

    def messages(self, example: Example, actions: Sequence[Action], rng: random.Random) -> list[dict[str, str]]:
        return route_messages(example, actions, rng, self.system_prompt)

    def request_body(self, example: Example, actions: Sequence[Action]) -> dict[str, Any]:
        """The chat completion parameters for one example (also a Batch API line's body)."""
        body: dict[str, Any] = {
            "messages": self.messages(example, actions, self.rng),
            "response_format": route_schema([a.name for a in actions]),
            "temperature": 1.0 if self.samples > 1 else 0.0,
        }
        if self.samples > 1:
            body["n"] = self.samples
        elif self.logprobs and "logprobs" not in self.client.unsupported:
            body["logprobs"] = True  # the chosen tokens' logprobs are enough: exp(sum) is the confidence
        for k in self.client.unsupported:
            body.pop(k, None)
        return body

    async def aroute(self, example: Example, actions: Sequence[Action]) -> Route:
        names = {a.name for a in actions}
        body = self.request_body(example, actions)
        t0 = time.perf_counter()
        completion = await self.client.chat(self.model, body)
        route = route_from_completion(completion, names, self.model)
        route.latency_ms = round((time.perf_counter() - t0) * 1000, 2)
        return route

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
        priced = pricing.known(self.model)
        if not sample or not n:
            return Estimate(0, self.model, 0, 0, 0.0, priced, batch)
        rng = random.Random(0)
        per_prompt = sum(count_tokens(self.messages(e, actions, rng)) for e in sample) / len(sample)
        tokens_in = int(per_prompt * n)
        tokens_out = ANSWER_TOKENS * self.samples * n
        cost = pricing.chat_cost(self.model, tokens_in, tokens_out, batch=batch)
        return Estimate(n, self.model, tokens_in, tokens_out, cost, priced, batch)

    def question_generator(self) -> QuestionGenerator:
        from routelab.providers.openai.generator import OpenAIGenerator

        return OpenAIGenerator(self.model, self.client)

    def batch_labeler(self) -> BatchLabeler:
        from routelab.providers.openai.batch import OpenAIBatchLabeler

        return OpenAIBatchLabeler(self)

    def close(self) -> None:
        self.client.close()

    async def aclose(self) -> None:
        await self.client.aclose()
