"""`routelab export-model`: a model trained in the workspace, written where a model server loads it.

The backend that trained it writes the files (hf: a merged folder for a LoRA, the classifier
folder as it is); models of other backends are refused with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from routelab.domain import BadInput
from routelab.providers import registry
from routelab.store import Store


def export_model(store: Store, model_id: str, out: Path, settings) -> dict[str, Any]:
    backend, trained = registry.resolve(store, model_id)
    if trained is None:
        raise BadInput(f"{model_id!r} is not a model trained in this workspace (see routelab jobs list)")
    backend.require_model(store, model_id, settings, "export-model")
    return backend.export_model(trained, Path(out))
