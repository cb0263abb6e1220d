"""The `openai` backend as the registry sees it: the entry point of pyproject.toml points here."""

from __future__ import annotations

from typing import Any

from routelab.domain import TrainedModel
from routelab.providers.base import BATCH, GENERATE, ROUTE, TRAIN, Backend

ROUTER_OPTIONS = ("samples", "logprobs", "seed", "system_prompt")
CLIENT_OPTIONS = ("timeout", "on_retry")
POLICY_OPTIONS = ("max_attempts", "max_rate_limited", "backoff", "max_wait")


class OpenAIBackend(Backend):
    name = "openai"
    description = "any OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, llama.cpp): teacher, " \
                  "question writer, Batch API, fine-tuning"
    capabilities = frozenset({ROUTE, TRAIN, GENERATE, BATCH})
    requirement = "an OpenAI-compatible endpoint"
    setup_hint = "set OPENAI_API_KEY (and OPENAI_BASE_URL for a non-OpenAI server)"

    def available(self, settings) -> bool:
        return settings.has_openai

    def default_teacher(self, settings) -> str:
        return settings.teacher

    def baselines(self, store, settings) -> list[str]:
        """The base model of each fine-tune, newest first: the comparison's base is the student's own."""
        return [m.base for m in reversed(store.trained_models(provider=self.name)) if m.base]

    def models(self, store, settings) -> list[str]:
        return [settings.teacher, *(m.id for m in store.trained_models(provider=self.name))]

    def client(self, settings, **options: Any):
        from routelab.providers.openai.client import OpenAIClient, RetryPolicy

        policy = {k: options.pop(k) for k in POLICY_OPTIONS if k in options}
        client = {k: options.pop(k) for k in CLIENT_OPTIONS if k in options}
        return OpenAIClient.from_settings(settings, policy=RetryPolicy(**policy), **client)

    def router(self, model_id: str, *, store, settings, trained: TrainedModel | None = None, **options: Any):
        from routelab.providers.openai.router import OpenAIRouter

        if trained is not None and trained.params.get("system_prompt"):
            options.setdefault("system_prompt", trained.params["system_prompt"])  # what it was fine-tuned on
        kept = {k: options.pop(k) for k in ROUTER_OPTIONS if k in options}
        return OpenAIRouter(model_id, self.client(settings, **options), **kept)

    def generator(self, model_id: str, *, settings, trained: TrainedModel | None = None, **options: Any):
        from routelab.providers.openai.generator import OpenAIGenerator

        seed = options.pop("seed", None)
        return OpenAIGenerator(model_id, self.client(settings, **options), seed=seed)

    def trainer(self, settings):
        from routelab.providers.openai.trainer import OpenAITrainer

        return OpenAITrainer(settings)
