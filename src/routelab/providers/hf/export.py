"""`routelab export-model`: a folder that vLLM or Ollama loads as it is.

- LoRA: the adapter merged into its base (`merge_and_unload`), saved as safetensors with
  the tokenizer and the chat template it was trained with, plus an Ollama `Modelfile`.
  `vllm serve DIR` serves it behind the OpenAI API; `routelab endpoints add` makes it a
  named endpoint and routelab routes through it (the student answers {"action": ...}).
- classifier: the fine-tuned encoder folder itself (transformers, or vLLM's classify
  task, load it); it has no chat API, so routelab routes with it in-process.

Written to a sibling folder and renamed into place: a failed export leaves no half folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from routelab.domain import BadInput, TrainedModel
from routelab.providers.hf.models import META, read_meta, write_meta


def export_model(trained: TrainedModel, out: Path) -> dict[str, Any]:
    folder = Path(trained.params["path"])
    meta = read_meta(folder)
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / META).exists():
        raise BadInput(f"{out}: exists and is not an exported routelab model; choose an empty or new folder")
    staging = out.parent / f".{out.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if meta["method"] == "lora":
            _merge(folder, meta, staging)
            (staging / "Modelfile").write_text(f"FROM {out.resolve()}\nPARAMETER temperature 0\n", encoding="utf-8")
        else:
            for item in folder.iterdir():
                if item.is_file():
                    shutil.copy2(item, staging / item.name)
        write_meta(staging, {**meta, "model_id": trained.id, "exported_from": str(folder)})
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = sorted(p.name for p in out.iterdir())
    return {"model": trained.id, "method": meta["method"], "out": str(out), "files": files, "serve": serve_hint(meta, out)}


def _merge(folder: Path, meta: dict[str, Any], staging: Path) -> None:
    from peft import PeftModel

    from routelab.providers.hf.models import load_causal_lm, load_tokenizer

    base = load_causal_lm(meta["base"])
    merged = PeftModel.from_pretrained(base, str(folder)).merge_and_unload()
    merged.save_pretrained(staging)
    load_tokenizer(str(folder)).save_pretrained(staging)


def serve_hint(meta: dict[str, Any], out: Path) -> str:
    if meta["method"] == "lora":
        return (f"vllm serve {out} --served-model-name routelab-router  (or: ollama create routelab-router -f "
                f"{out}/Modelfile); then: routelab endpoints add vllm --base-url http://127.0.0.1:8000/v1 and "
                "route with --model vllm/routelab-router")
    return f"a transformers sequence classifier: AutoModelForSequenceClassification.from_pretrained('{out}')"
