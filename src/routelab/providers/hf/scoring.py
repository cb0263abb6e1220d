"""A chat model routes by scoring every action's answer, never by generating free text.

For each question: log p(answer | prompt) of `{"action": "<name>"}` + end of turn, for every
action of the catalog; the best is the route and the softmax over the scores its
confidence. The answer can only ever be an action of the catalog.

Work is shared: the system prompt (the catalog: most of each prompt) is run once per
scorer and its KV cache copied for each question; each question's cache is then repeated
for a chunk of candidate answers, which run together in one batch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

from routelab.providers.hf.data import answer_ids, prompt_ids
from routelab.providers.hf.models import cache_keyword, output_cache
from routelab.providers.prompts import assistant_answer


@dataclass
class Scored:
    action: str
    confidence: float
    scores: dict[str, float]  # log p(answer | prompt) per action


class ActionScorer:
    def __init__(self, model, tokenizer, system_prompt: str, actions: Sequence[str], *, chunk: int = 32):
        import torch

        self.model, self.tok, self.actions, self.chunk = model, tokenizer, list(actions), chunk
        self.device = next(model.parameters()).device
        self.kw = cache_keyword(model)
        self.answers = [answer_ids(tokenizer, assistant_answer(a)) for a in self.actions]
        self.system = [{"role": "system", "content": system_prompt}] if system_prompt else []
        self.prefix = self._shared_prefix()
        self._prefix_cache = None
        if len(self.prefix) > 1:
            with torch.no_grad():
                ids = torch.tensor([self.prefix[:-1]], device=self.device)  # the last token runs with the question
                self._prefix_cache = output_cache(self.model(input_ids=ids, use_cache=True))

    def _shared_prefix(self) -> list[int]:
        """The tokens every prompt starts with: those of two different questions, in common."""
        a = prompt_ids(self.tok, [*self.system, {"role": "user", "content": "a"}])
        b = prompt_ids(self.tok, [*self.system, {"role": "user", "content": "zz qq"}])
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return a[:n]

    def score(self, messages: Sequence[dict[str, str]]) -> Scored:
        """Scores of every action after `messages` (history and question, without the system prompt)."""
        import torch

        ids = prompt_ids(self.tok, [*self.system, *messages])
        with torch.no_grad():
            cache, rest = None, ids
            if self._prefix_cache is not None and ids[:len(self.prefix) - 1] == self.prefix[:-1]:
                cache, rest = copy.deepcopy(self._prefix_cache), ids[len(self.prefix) - 1:]
            out = self.model(input_ids=torch.tensor([rest], device=self.device), use_cache=True,
                             **({self.kw: cache} if cache is not None else {}))
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            cache = output_cache(out)
            totals: list[float] = []
            for start in range(0, len(self.answers), self.chunk):
                totals += self._score_chunk(cache, first, self.answers[start:start + self.chunk])
        best = max(range(len(totals)), key=totals.__getitem__)
        top = totals[best]
        norm = sum(math.exp(t - top) for t in totals)
        return Scored(self.actions[best], 1.0 / norm, dict(zip(self.actions, totals)))

    def _score_chunk(self, cache, first, answers: list[list[int]]) -> list[float]:
        """Sum of log-probabilities of each answer, given the question's cache."""
        import torch

        width = max(len(a) for a in answers)
        if width == 1:
            return [float(first[a[0]]) for a in answers]
        pad = self.tok.pad_token_id or 0
        # the answers run without their last token: every position predicts the next one
        inputs = torch.tensor([a[:-1] + [pad] * (width - len(a)) for a in answers], device=self.device)
        repeated = copy.deepcopy(cache)
        repeated.batch_repeat_interleave(len(answers))
        logp = torch.log_softmax(self.model(input_ids=inputs, use_cache=True, **{self.kw: repeated}).logits.float(), -1)
        out = []
        for row, a in enumerate(answers):
            total = float(first[a[0]])
            for j in range(1, len(a)):
                total += float(logp[row, j - 1, a[j]])
            out.append(total)
        return out
