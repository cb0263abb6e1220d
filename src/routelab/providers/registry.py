"""The one place that knows which backends exist and which one serves a model id.

Backends register through the entry-point group `routelab.providers`, the built-ins
exactly as a third-party package would (in pyproject.toml):

    [project.entry-points."routelab.providers"]
    mybackend = "mypackage.routelab_backend:MyBackend"

An entry point names a `Backend` subclass (instantiated without arguments) or an
instance. Code can also register one at run time with `register(backend)` (tests do).
Entry points are read once, on first use: `routelab --help` and the TUI's first paint
do not pay for them. A plugin that fails to load is left out, and `load_errors()` says why.

Which backend serves a model id (`resolve`), in this order:
1. an id a backend serves without training (`teacher_ids`, e.g. "local");
2. a model trained in this workspace: the backend that trained it (its `provider`);
3. anything else: the default remote backend (`openai`, any OpenAI-compatible endpoint),
   which reads a `NAME/MODEL` id as MODEL on the workspace's endpoint NAME (`routelab
   endpoints add`; split at the first `/`) and any other id as a model of the default
   endpoint (OPENAI_BASE_URL, else OpenAI): providers/openai/endpoints.py.
"""

from __future__ import annotations

import threading
from typing import Any

from routelab.domain import BadInput, TrainedModel
from routelab.providers.base import GENERATE, TRAIN, Backend, QuestionGenerator, Router, Trainer

GROUP = "routelab.providers"
DEFAULT_REMOTE = "openai"  # serves every model id no other backend claims
LOCAL = "local"  # the embedded backend: what runs when nothing else can
# Where the built-ins are when routelab runs from a source tree that was never installed
# (no entry-point metadata); an install finds them through the entry points above.
_BUILTINS = {"openai": "routelab.providers.openai.backend:OpenAIBackend",
             "local": "routelab.providers.local.backend:LocalBackend"}

_lock = threading.Lock()
_loaded: dict[str, Backend] | None = None
_registered: dict[str, Backend] = {}
_errors: dict[str, str] = {}


def register(backend: Backend) -> Backend:
    """Add (or replace) a backend by its name, at run time."""
    if not getattr(backend, "name", None):
        raise ValueError("a backend needs a name")
    with _lock:
        _registered[backend.name] = backend
    return backend


def unregister(name: str) -> None:
    """Forget a backend registered at run time (entry-point backends come back on the next load)."""
    with _lock:
        _registered.pop(name, None)


def _instance(obj: Any) -> Backend:
    backend = obj() if isinstance(obj, type) else obj
    if not isinstance(backend, Backend):
        raise TypeError(f"{obj!r} is not a routelab Backend")
    return backend


def _load() -> dict[str, Backend]:
    global _loaded
    with _lock:
        if _loaded is not None:
            return _loaded
        from importlib import import_module
        from importlib.metadata import entry_points

        found: dict[str, Backend] = {}
        targets = {ep.name: ep for ep in entry_points(group=GROUP)}
        for name, target in _BUILTINS.items():
            targets.setdefault(name, target)  # type: ignore[arg-type]
        for name, ep in sorted(targets.items()):
            try:
                if isinstance(ep, str):
                    module, _, attr = ep.partition(":")
                    obj = getattr(import_module(module), attr)
                else:
                    obj = ep.load()
                found[name] = _instance(obj)
            except Exception as e:  # a broken plugin must not break routelab
                _errors[name] = f"{type(e).__name__}: {e}"
        _loaded = found
        return found


def load_errors() -> dict[str, str]:
    """Backends whose entry point could not be loaded, with the reason."""
    _load()
    return dict(_errors)


def backends(capability: str | None = None) -> list[Backend]:
    """Every backend (entry points, then run-time registrations by name), optionally with a capability."""
    merged = {**_load(), **_registered}
    return [b for _, b in sorted(merged.items()) if capability is None or capability in b.capabilities]


def names(capability: str | None = None) -> list[str]:
    return [b.name for b in backends(capability)]


def get(name: str) -> Backend:
    for b in backends():
        if b.name == name:
            return b
    raise BadInput(f"unknown provider {name!r} (known: {', '.join(names())})")


def resolve(store, model_id: str) -> tuple[Backend, TrainedModel | None]:
    """The backend that serves `model_id`, and the trained model it is (if it is one)."""
    for b in backends():
        if model_id in b.teacher_ids:
            return b, None
    trained = store.trained_model(model_id)
    if trained is not None:
        try:
            return get(trained.provider), trained
        except BadInput:
            raise BadInput(f"model {model_id!r} was trained by the {trained.provider!r} provider, which is not "
                           f"installed here (installed: {', '.join(names())})") from None
    return get(DEFAULT_REMOTE), None


def router(store, model_id: str, settings, *, provider: str | None = None, **options: Any) -> Router:
    """The Router for `model_id`. With `provider`, the id must be one that provider serves.
    `options` (timeout, samples, ...) go to the backend, which refuses what it cannot do."""
    backend, trained = resolve(store, model_id)
    if provider is not None and backend.name != provider:
        raise BadInput(f"{model_id!r} is not a {provider} model (it belongs to {backend.name}); "
                       f"use --provider {backend.name}, or --model {get(provider).default_teacher(settings)}")
    backend.require_model(store, model_id, settings, f"model {model_id!r}")
    return backend.router(model_id, store=store, settings=settings, trained=trained, **options)


def generator(store, model_id: str, settings, **options: Any) -> QuestionGenerator:
    """The question generator for `model_id`; BadInput when its backend has no generative model."""
    backend, trained = resolve(store, model_id)
    if GENERATE not in backend.capabilities:
        raise no_generator(backend.name)
    backend.require_model(store, model_id, settings, "generate")
    return backend.generator(model_id, settings=settings, trained=trained, store=store, **options)


def no_generator(provider: str) -> BadInput:
    remote = get(DEFAULT_REMOTE)
    makers = ", ".join(names(GENERATE)) or "none installed"
    return BadInput(f"generate needs {remote.requirement}: {remote.setup_hint}; the {provider} provider has no "
                    f"generative model (providers with one: {makers})")


def trainer(provider: str, settings, *, store=None, base: str | None = None) -> Trainer:
    """The trainer of `provider`; with the base model to train (`base`), checked for that model (a base
    model on a named endpoint needs that endpoint's key, not the provider's default one)."""
    backend = get(provider)
    if TRAIN not in backend.capabilities:
        raise BadInput(f"the {provider} provider does not train (providers that do: {', '.join(names(TRAIN))})")
    what = f"fine-tuning with --provider {provider}"
    if base:
        backend.require_model(store, base, settings, what)
    else:
        backend.require(settings, what)
    made = backend.trainer(settings)
    if base:
        made.check_base(store, base)
    return made


def default_teacher(settings) -> str:
    """The teacher when none is named: the remote default where it can run here, else the local one."""
    remote = get(DEFAULT_REMOTE)
    return remote.default_teacher(settings) if remote.available(settings) else get(LOCAL).default_teacher(settings)


def default_trainer(settings) -> str:
    """The trainer when none is named: the remote default where it can run here, else the local one."""
    return DEFAULT_REMOTE if get(DEFAULT_REMOTE).available(settings) else LOCAL


def runnable_models(store, settings) -> list[str]:
    """Every model that can run here. First the baselines (the base model of the newest remote
    fine-tune: the comparison's base), then the local backend's models (the zero-shot baseline
    leads them), then every other backend's."""
    usable = [b for b in backends() if b.available(settings)]
    lead = sorted(usable, key=lambda b: (b.name != DEFAULT_REMOTE, b.name))
    rest = sorted(usable, key=lambda b: (b.name != LOCAL, b.name))
    models = [m for b in lead for m in b.baselines(store, settings)]
    models += [m for b in rest for m in b.models(store, settings)]
    return list(dict.fromkeys(models))


__all__ = [
    "DEFAULT_REMOTE", "GROUP", "LOCAL", "backends", "default_teacher", "default_trainer", "generator", "get",
    "load_errors", "names", "no_generator", "register", "resolve", "router", "runnable_models", "trainer",
    "unregister",
]
