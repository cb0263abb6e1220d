"""Synthetic questions from a chat model, as JSON {"questions": [...]} forced by a schema."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from routelab import pricing
from routelab.domain import Action
from routelab.providers.base import Estimate, Generated, QuestionGenerator
from routelab.providers.openai.answers import parse_questions, usage
from routelab.providers.openai.client import OpenAIClient
from routelab.providers.openai.prompts import QUESTION_TOKENS, QUESTIONS_SCHEMA, generate_messages
from routelab.providers.openai.tokens import count_tokens


class OpenAIGenerator(QuestionGenerator):
    provider = "openai"

    def __init__(self, model: str, client: OpenAIClient, *, seed: int | None = None):
        self.model = model
        self.client = client
        self.rng = random.Random(seed)

    async def agenerate(self, action: Action, catalog: Sequence[Action], n: int,
                        avoid: Sequence[str] = ()) -> Generated:
        body: dict[str, Any] = {"messages": generate_messages(action, catalog, n, avoid, self.rng),
                                "response_format": QUESTIONS_SCHEMA, "temperature": 1.0}
        for k in self.client.unsupported:
            body.pop(k, None)
        completion = await self.client.chat(self.model, body)
        tokens_in, tokens_out = usage(completion)
        questions, raw = parse_questions(completion)
        return Generated(questions, raw, tokens_in, tokens_out, pricing.chat_cost(self.model, tokens_in, tokens_out))

    def estimate(self, targets: Sequence[Action], catalog: Sequence[Action], requests: Sequence[int]) -> Estimate:
        rng = random.Random(0)
        tokens_in = sum(count_tokens(generate_messages(a, catalog, k, (), rng)) for a in targets for k in requests)
        tokens_out = sum(requests) * len(targets) * QUESTION_TOKENS
        return Estimate(len(requests) * len(targets), self.model, tokens_in, tokens_out,
                        pricing.chat_cost(self.model, tokens_in, tokens_out), pricing.known(self.model))

    async def aclose(self) -> None:
        await self.client.aclose()
