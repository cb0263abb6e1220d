"""The `openai` backend as the registry sees it: the entry point of pyproject.toml points here.

It serves every model id no other backend claims, on the endpoint the id names
(`NAME/MODEL`, endpoints.py) or the default one (OPENAI_BASE_URL, else OpenAI).
"""

from __future__ import annotations

from typing import Any

from routelab.domain import TrainedModel
from routelab.providers.base import BATCH, GENERATE, ROUTE, TRAIN, Backend

ROUTER_OPTIONS = ("samples", "logprobs", "seed", "system_prompt")
CLIENT_OPTIONS = ("timeout", "on_retry")
POLICY_OPTIONS = ("max_attempts", "max_rate_limited", "backoff", "max_wait")


class OpenAIBackend(Backend):
    name = "openai"
    description = "any OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp), several at once " \
                  "(NAME/MODEL): teacher, question writer, Batch API, fine-tuning"
    capabilities = frozenset({ROUTE, TRAIN, GENERATE, BATCH})
    requirement = "an OpenAI-compatible endpoint"
    setup_hint = "set OPENAI_API_KEY (and OPENAI_BASE_URL for a non-OpenAI server), or add one with " \
                 "`routelab endpoints add NAME --base-url URL` and use NAME/MODEL"

    def available(self, settings) -> bool:
        return settings.has_openai

    def require_model(self, store, model_id: str, settings, what: str) -> None:
        """A model on a named endpoint needs that endpoint's key variable, not OPENAI_API_KEY."""
        from routelab.providers.openai.endpoints import DEFAULT, target

        found = target(store, model_id, settings)
        if found.name == DEFAULT:
            self.require(settings, what)
        else:
            found.api_key()  # BadInput naming the variable when it is not set

    def default_teacher(self, settings) -> str:
        return settings.teacher

    def baselines(self, store, settings) -> list[str]:
        """The base model of each fine-tune, newest first: the comparison's base is the student's own."""
        return [m.base for m in reversed(store.trained_models(provider=self.name)) if m.base]

    def models(self, store, settings) -> list[str]:
        return [settings.teacher, *(m.id for m in store.trained_models(provider=self.name))]

    def client(self, settings, *, store=None, model_id: str | None = None, **options: Any):
        """The client of the endpoint `model_id` names (the default endpoint without one)."""
        from routelab.providers.openai.client import OpenAIClient, RetryPolicy
        from routelab.providers.openai.endpoints import default_target, target

        policy = {k: options.pop(k) for k in POLICY_OPTIONS if k in options}
        client = {k: options.pop(k) for k in CLIENT_OPTIONS if k in options}
        found = target(store, model_id, settings) if model_id else default_target(settings)
        return OpenAIClient.for_target(found, settings=settings, store=store, policy=RetryPolicy(**policy), **client)

    def router(self, model_id: str, *, store, settings, trained: TrainedModel | None = None, **options: Any):
        from routelab.providers.openai.router import OpenAIRouter

        if trained is not None and trained.params.get("system_prompt"):
            options.setdefault("system_prompt", trained.params["system_prompt"])  # what it was fine-tuned on
        kept = {k: options.pop(k) for k in ROUTER_OPTIONS if k in options}
        client = self.client(settings, store=store, model_id=model_id, **options)
        return OpenAIRouter(model_id, client, wire_model=client.target.model or model_id, **kept)

    def generator(self, model_id: str, *, settings, trained: TrainedModel | None = None, store=None,
                  **options: Any):
        from routelab.providers.openai.generator import OpenAIGenerator

        seed = options.pop("seed", None)
        client = self.client(settings, store=store, model_id=model_id, **options)
        return OpenAIGenerator(model_id, client, seed=seed, wire_model=client.target.model or model_id)

    def trainer(self, settings):
        from routelab.providers.openai.endpoint_trainer import EndpointTrainer

        return EndpointTrainer(settings)
