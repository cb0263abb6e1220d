"""Backends, resolved by model id.

- "local": the embedded offline teacher (zero-shot, then trained on reviewed labels).
- an id in the workspace's trained models: a local model (its stored artifact) or an
  OpenAI fine-tuned model.
- anything else: an OpenAI(-compatible) model id, which needs OPENAI_API_KEY.

Heavy imports (openai, wordllama, scikit-learn) stay inside the implementations.
"""

from __future__ import annotations

from typing import Any

from routelab.domain import BadInput
from routelab.providers.base import Route, Router

LOCAL_TEACHER = "local"


def default_teacher(settings) -> str:
    """The teacher to use when none is named: the configured OpenAI model with a key, else local."""
    return settings.teacher if settings.has_openai else LOCAL_TEACHER


def openai_router(model_id: str, settings, **kwargs: Any):
    from routelab.providers.openai_provider import OpenAIRouter

    if not settings.has_openai:
        raise BadInput(f"model {model_id!r} needs an OpenAI-compatible endpoint: set OPENAI_API_KEY "
                       "(and OPENAI_BASE_URL for a non-OpenAI server), or use --provider local")
    return OpenAIRouter(model_id, api_key=settings.openai_api_key.get_secret_value(),
                        base_url=settings.openai_base_url, **kwargs)


def get_router(store, model_id: str, settings, **kwargs: Any) -> Router:
    """The Router for `model_id`; kwargs (timeout, samples, ...) go to the OpenAI provider."""
    if model_id == LOCAL_TEACHER:
        from routelab.providers.local import LocalTeacher

        return LocalTeacher.from_store(store)
    trained = store.trained_model(model_id)
    if trained is not None and trained.provider == "local":
        from routelab.providers.local import LocalModelRouter

        if not trained.artifact:
            raise BadInput(f"local model {model_id!r} has no stored artifact")
        return LocalModelRouter(model_id, trained.artifact)
    if trained is not None and trained.params.get("system_prompt"):
        kwargs.setdefault("system_prompt", trained.params["system_prompt"])  # what it was fine-tuned on
    return openai_router(model_id, settings, **kwargs)


__all__ = ["LOCAL_TEACHER", "Route", "Router", "default_teacher", "get_router", "openai_router"]
