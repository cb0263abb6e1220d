"""Checkpoints of a run, in the job's folder beside the workspace (never in the SQLite file).

    <stem>-models/<job id>/checkpoints/step-000200/
        trainable.safetensors   the weights training changes (all of a classifier; a LoRA's adapter)
        optimizer.pt, scheduler.pt
        state.json              step, best validation loss, metrics so far, the run key

A checkpoint is written to a temporary folder and renamed into place, so a kill leaves the
previous one whole; the newest two are kept. A new job on the same data with the same
options (the run key) continues from the newest checkpoint of an unfinished earlier job.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KEEP = 2
STATE = "state.json"


@dataclass
class RunState:
    step: int = 0
    best_loss: float | None = None
    best_step: int | None = None
    bad_evals: int = 0  # validations in a row without a better loss
    stopped_early: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)  # the last metrics event
    run: dict[str, Any] = field(default_factory=dict)  # the run key
    job_id: int | None = None


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def trainable_state(model) -> dict[str, Any]:
    """The parameters training changes (detached, contiguous: what safetensors saves)."""
    return {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}


def save_trainable(model, path: Path) -> None:
    from safetensors.torch import save_file

    save_file(trainable_state(model), str(path))


def load_trainable(model, path: Path) -> None:
    from safetensors.torch import load_file

    saved = load_file(str(path))
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in saved]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {len(missing)} trained tensors (e.g. {missing[0]})")
    import torch

    with torch.no_grad():
        for name, tensor in saved.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))


def save(run_dir: Path, state: RunState, model, optimizer, scheduler) -> Path:
    import torch

    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step:06d}"
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_trainable(model, tmp / "trainable.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    (tmp / STATE).write_text(json.dumps(asdict(state), indent=1), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(checkpoint: Path) -> RunState:
    return RunState(**json.loads((checkpoint / STATE).read_text(encoding="utf-8")))


def restore(checkpoint: Path, model, optimizer, scheduler) -> RunState:
    import torch

    load_trainable(model, checkpoint / "trainable.safetensors")
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    return read_state(checkpoint)


def latest(run_dir: Path) -> Path | None:
    done = sorted(p for p in checkpoints_dir(run_dir).glob("step-*") if (p / STATE).exists())
    return done[-1] if done else None


def find_resumable(models_dir: Path, run: dict[str, Any]) -> Path | None:
    """The newest checkpoint of an unfinished run with this run key (its folder has no final model)."""
    best: tuple[int, Path] | None = None
    for job_dir in models_dir.glob("*"):
        if not job_dir.is_dir() or (job_dir / "model").exists():
            continue
        point = latest(job_dir)
        if point is None:
            continue
        try:
            state = read_state(point)
        except (ValueError, TypeError, OSError):
            continue
        if state.run == run and (best is None or state.step > best[0]):
            best = (state.step, point)
    return best[1] if best else None


def remove(run_dir: Path) -> None:
    shutil.rmtree(checkpoints_dir(run_dir), ignore_errors=True)
