"""What every backend offers: route (propose an action for) examples.

A router answers with a Route per example; services turn Routes into Proposals for the
store. Implementations: `local` (embedded, offline) and `openai` (any OpenAI-compatible
endpoint). Trainers and question generators are defined beside them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from pydantic import BaseModel

from routelab.domain import Action, Example, Proposal


class Route(BaseModel):
    action: str | None  # None when the answer was invalid (refusal, unparsable, unknown action)
    valid: bool = True
    confidence: float | None = None
    raw: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latency_ms: float | None = None

    def proposal(self, example_id: int, model: str, prompt_version: str = "v1") -> Proposal:
        return Proposal(example_id=example_id, model=model, prompt_version=prompt_version,
                        **self.model_dump())


class Router(ABC):
    """Routes questions (with their conversation) to one action of a catalog."""

    provider: str  # "local" | "openai"
    model: str  # the id stored in proposals.model and shown in tables

    @abstractmethod
    def route_batch(self, examples: Sequence[Example], actions: Sequence[Action]) -> list[Route]:
        """Route several examples at once (blocking). Local routers do this in one matrix product."""
