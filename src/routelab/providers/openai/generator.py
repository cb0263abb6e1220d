"""Synthetic questions from a chat model, as JSON {"questions": [...]}: forced by a schema where the
endpoint takes one (the same probed, remembered form as the router's), read tolerantly where not."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from routelab import pricing
from routelab.domain import Action
from routelab.providers.base import Estimate, Generated, QuestionGenerator
from routelab.providers.openai.answers import parse_questions, usage
from routelab.providers.openai.client import OpenAIClient
from routelab.providers.openai.formats import answer_budget, with_format
from routelab.providers.openai.prompts import QUESTION_TOKENS, QUESTIONS_SCHEMA, generate_messages
from routelab.providers.openai.tokens import count_tokens


class OpenAIGenerator(QuestionGenerator):
    provider = "openai"

    def __init__(self, model: str, client: OpenAIClient, *, seed: int | None = None, wire_model: str | None = None):
        self.model = model
        self.wire_model = wire_model or model
        self.client = client
        self.seed = seed
        self.rng = random.Random(seed)

    def request_body(self, action: Action, catalog: Sequence[Action], n: int, avoid: Sequence[str],
                     form: str) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": generate_messages(action, catalog, n, avoid, self.rng), "temperature": 1.0}
        with_format(body, form, "questions", QUESTIONS_SCHEMA)
        budget = answer_budget(form, 3 * QUESTION_TOKENS * n + 64)
        if budget:
            body["max_tokens"] = budget
        if self.seed is not None:
            body["seed"] = self.seed
        for k in self.client.unsupported:
            body.pop(k, None)
        return body

    async def agenerate(self, action: Action, catalog: Sequence[Action], n: int,
                        avoid: Sequence[str] = ()) -> Generated:
        completion, _ = await self.client.chat_structured(
            self.wire_model, lambda form: self.request_body(action, catalog, n, avoid, form))
        tokens_in, tokens_out = usage(completion)
        questions, raw = parse_questions(completion)
        cost = pricing.chat_cost(self.wire_model, tokens_in, tokens_out)
        return Generated(questions, raw, tokens_in, tokens_out, cost)

    def estimate(self, targets: Sequence[Action], catalog: Sequence[Action], requests: Sequence[int]) -> Estimate:
        rng = random.Random(0)
        tokens_in = sum(count_tokens(generate_messages(a, catalog, k, (), rng)) for a in targets for k in requests)
        tokens_out = sum(requests) * len(targets) * QUESTION_TOKENS
        return Estimate(len(requests) * len(targets), self.model, tokens_in, tokens_out,
                        pricing.chat_cost(self.wire_model, tokens_in, tokens_out), pricing.known(self.wire_model))

    async def aclose(self) -> None:
        await self.client.aclose()
