"""The `local` backend as the registry sees it: the entry point of pyproject.toml points here."""

from __future__ import annotations

from typing import Any

from routelab.domain import BadInput, TrainedModel
from routelab.providers.base import ROUTE, TRAIN, Backend
from routelab.providers.local.teacher import LOCAL_TEACHER, ZERO_SHOT


class LocalBackend(Backend):
    name = "local"
    description = "embedded, offline: WordLlama embeddings + a linear model (teacher, trainer, router)"
    capabilities = frozenset({ROUTE, TRAIN})
    teacher_ids = (LOCAL_TEACHER, ZERO_SHOT)

    def models(self, store, settings) -> list[str]:
        return [ZERO_SHOT, LOCAL_TEACHER, *(m.id for m in store.trained_models(provider=self.name))]

    def router(self, model_id: str, *, store, settings, trained: TrainedModel | None = None, **options: Any):
        from routelab.providers.local.teacher import LocalModelRouter, LocalTeacher

        if options.get("samples", 1) > 1:
            raise BadInput("--samples needs an OpenAI-compatible teacher (a local router is deterministic)")
        if model_id == LOCAL_TEACHER:
            return LocalTeacher.from_store(store)
        if model_id == ZERO_SHOT:
            return LocalTeacher(store.actions(), model=ZERO_SHOT)  # no labels: zero-shot similarity
        if trained is None or not trained.artifact:
            raise BadInput(f"local model {model_id!r} has no stored artifact")
        return LocalModelRouter(model_id, trained.artifact)

    def trainer(self, settings):
        from routelab.providers.local.trainer import LocalTrainer

        return LocalTrainer(settings)
