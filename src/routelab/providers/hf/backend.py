"""The `hf` backend as the registry sees it (the entry point of pyproject.toml points here).

Importing it costs nothing: torch and transformers are loaded only when a run or a route
needs them, and when they are not installed every use says, in one line, what to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from routelab.domain import BadInput, TrainedModel
from routelab.providers.base import ROUTE, TRAIN, Backend
from routelab.providers.hf.deps import INSTALL, missing, require
from routelab.providers.hf.options import DEFAULT_BASE

ZERO_SHOT = "hf-zero-shot"  # the base encoder untrained: an eval table's baseline for an hf classifier


class HFBackend(Backend):
    name = "hf"
    description = "open weights (Hugging Face transformers): a fine-tuned encoder classifier or a LoRA chat model"
    capabilities = frozenset({ROUTE, TRAIN})
    teacher_ids = (ZERO_SHOT,)
    requirement = "torch, transformers and accelerate (the hf extra)"
    setup_hint = INSTALL

    def available(self, settings) -> bool:
        return not missing()

    def models(self, store, settings) -> list[str]:
        """Trained models only: the zero-shot baseline may need a Hub download (name it to compare)."""
        return [m.id for m in store.trained_models(provider=self.name)]

    def router(self, model_id: str, *, store, settings, trained: TrainedModel | None = None, **options: Any):
        from routelab.providers.hf.router import ClassifierRouter, LoraRouter, ZeroShotRouter

        if options.get("samples", 1) > 1:
            raise BadInput("--samples needs an OpenAI-compatible teacher (an hf router is deterministic)")
        device = getattr(settings, "hf_device", None) or "auto"
        if model_id == ZERO_SHOT:
            require(f"model {model_id!r}")
            return ZeroShotRouter(model_id, getattr(settings, "hf_base_model", None) or DEFAULT_BASE["classifier"],
                                  device=device)
        if trained is None or not trained.params.get("path"):
            raise BadInput(f"hf model {model_id!r} has no model folder recorded")
        method = trained.params.get("method", "classifier")
        require(f"model {model_id!r}", method)
        cls = LoraRouter if method == "lora" else ClassifierRouter
        return cls(model_id, Path(trained.params["path"]), device=device)

    def trainer(self, settings):
        from routelab.providers.hf.trainer import HFTrainer

        return HFTrainer(settings)

    def export_model(self, trained: TrainedModel, out: Path) -> dict[str, Any]:
        """Write what a server loads (a merged folder for LoRA); returns what was written."""
        from routelab.providers.hf.export import export_model

        require("export-model", trained.params.get("method", "classifier"))
        return export_model(trained, out)
