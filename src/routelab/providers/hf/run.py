"""One hf training run, start to end, reporting to a JobReporter: what the trainer runs in its
process, and what each process of `accelerate launch` runs (worker.py).

validating (read and check the export) -> running (load the base, resume from a checkpoint
if an unfinished run of the same data and options left one, train) -> the model folder,
the TrainedModel row (its path, never weights) -> succeeded.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from routelab.domain import BadInput, JobStatus, TrainedModel
from routelab.providers.base import JobReporter
from routelab.providers.hf import checkpoints
from routelab.providers.hf.options import HFOptions, parse_options
from routelab.providers.prompts import read_chat_jsonl

VALID_ROUTES = 200  # LoRA: validation questions routed at the end (scoring every action) for an accuracy


@dataclass
class RunSpec:
    job_id: int
    base: str
    options: dict[str, Any]
    train: str
    validation: str | None
    models_dir: str
    digest: str | None = None

    @property
    def run_dir(self) -> Path:
        return Path(self.models_dir) / str(self.job_id)

    def run_key(self, opts: HFOptions) -> dict[str, Any]:
        return {"base": self.base, "digest": self.digest, **opts.run_key()}

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> RunSpec:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def accelerator(device):
    """An Accelerator for this run. In one process a new run may differ from the last (CPU, then GPU):
    accelerate's process-wide state is reset first; under `accelerate launch` it is the launcher's."""
    import os

    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    return Accelerator(mixed_precision=device.mixed_precision, cpu=not device.gpu)


def _validate_files(spec: RunSpec, r: JobReporter):
    train = read_chat_jsonl(Path(spec.train))
    valid = read_chat_jsonl(Path(spec.validation)) if spec.validation else ([], [])
    classes = sorted(set(train[1]))
    if len(train[0]) < 2 or len(classes) < 2:
        raise BadInput(f"{Path(spec.train).name}: a router needs examples of at least two actions")
    r.event(f"Files validated: {len(train[0])} training and {len(valid[0])} validation examples, "
            f"{len(classes)} actions")
    return train, valid


def build_task(spec: RunSpec, opts: HFOptions, device, train, valid):
    if opts.method == "classifier":
        from routelab.providers.hf.classifier import ClassifierTask

        return ClassifierTask(spec.base, opts, train, valid)
    import torch

    from routelab.providers.hf.lora import LoraTask

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(device.mixed_precision)
    # bf16 weights on a GPU that has it (the adapters train in float32 under autocast)
    return LoraTask(spec.base, opts, Path(spec.train), Path(spec.validation) if spec.validation else None,
                    dtype if dtype == torch.bfloat16 else None)


def _resume_point(spec: RunSpec, opts: HFOptions, r: JobReporter | None) -> Path | None:
    if not opts.resume:
        return None
    point = checkpoints.latest(spec.run_dir) or checkpoints.find_resumable(Path(spec.models_dir), spec.run_key(opts))
    if point is not None:
        state = checkpoints.read_state(point)
        best = point.parent.parent / "best.safetensors"
        if best.exists() and point.parent.parent != spec.run_dir:  # the best weights so far come along
            spec.run_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(best, spec.run_dir / "best.safetensors")
        if r is not None:
            r.event(f"Resuming from the checkpoint at step {state.step} of job {state.job_id} ({point})")
    return point


def run_training(spec: RunSpec, reporter: JobReporter | None) -> None:
    """The whole run. `reporter` is None in the processes of a launch other than the main one."""
    from accelerate.utils import set_seed

    from routelab.providers.hf.device import pick_device
    from routelab.providers.hf.loop import TrainingLoop
    from routelab.providers.hf.models import quiet

    quiet()
    started = time.perf_counter()
    opts = parse_options(spec.options)
    r = reporter if reporter is not None else _Silent()
    r.status(JobStatus.VALIDATING)
    r.event(f"Validating training file {Path(spec.train).name}"
            + (f" and validation file {Path(spec.validation).name}" if spec.validation else ""))
    train, valid = _validate_files(spec, r)
    device = pick_device(opts.device, opts.threads)
    acc = accelerator(device)
    set_seed(opts.seed)
    r.status(JobStatus.RUNNING)
    r.event(f"Loading {spec.base} on {device.name}" + (f", {acc.num_processes} processes" if acc.num_processes > 1
                                                        else "") + f", mixed precision {device.mixed_precision}")
    task = build_task(spec, opts, device, train, valid)
    if getattr(task, "truncated", 0):
        r.event(f"{task.truncated} examples are longer than --max-length {opts.length}: cut from the left",
                level="warn")
    loop = TrainingLoop(task, opts, reporter if acc.is_main_process else None, spec.run_dir, acc,
                        spec.run_key(opts), spec.job_id)
    r.event(f"Training started: {opts.method} on {len(train[0])} examples, {opts.n_epochs} epochs, {loop.total} "
            f"steps of {opts.batch_size}, learning rate {opts.lr:g}"
            + (f" (head {opts.head_learning_rate:g})" if opts.method == "classifier" else ""))
    state = loop.run(_resume_point(spec, opts, reporter if acc.is_main_process else None))
    acc.wait_for_everyone()
    if acc.is_main_process:
        loop.restore_best()
        _finish(spec, opts, task, loop, state, r, time.perf_counter() - started, valid)
    acc.wait_for_everyone()


def _finish(spec: RunSpec, opts: HFOptions, task, loop, state, r: JobReporter, seconds: float, valid) -> None:
    folder = spec.run_dir / "model"
    model = loop.acc.unwrap_model(loop.model)
    meta = {"base": spec.base, "job_id": spec.job_id, "options": opts.as_dict(), "metrics": state.metrics}
    task.save(model, folder, meta)
    metrics = {**state.metrics, "train_examples": len(task.train_lengths), "valid_examples": len(task.val_lengths),
               "seconds": round(seconds, 3), "best_valid_loss": state.best_loss, "best_step": state.best_step,
               "stopped_early": state.stopped_early}
    if opts.method == "lora" and valid[0]:
        metrics["valid_accuracy"] = _lora_accuracy(task, model, valid)
        r.event(f"Validation routing accuracy (every action scored, {min(len(valid[0]), VALID_ROUTES)} "
                f"questions): {metrics['valid_accuracy']:.3f}")
    digest = hashlib.sha256(f"{spec.job_id}:{folder}:{state.step}".encode()).hexdigest()[:8]
    model_id = f"hf-{opts.method}-{spec.job_id}-{digest}"
    r.produced(TrainedModel(id=model_id, provider="hf", kind="finetune", base=spec.base, job_id=spec.job_id,
                            params={"path": str(folder.resolve()), "method": opts.method, "options": opts.as_dict(),
                                    "system_prompt": getattr(task, "system_prompt", None)},
                            metrics=metrics))
    checkpoints.remove(spec.run_dir)
    (spec.run_dir / "best.safetensors").unlink(missing_ok=True)
    r.event(f"New model created: {model_id} in {folder}")
    r.result(fine_tuned_model=model_id, metrics=metrics, model_path=str(folder.resolve()))
    r.progress(state.step)
    r.status(JobStatus.SUCCEEDED)
    r.event("The job has successfully completed")


def _lora_accuracy(task, model, valid) -> float:
    from routelab.providers.hf.scoring import ActionScorer

    model.eval()
    scorer = ActionScorer(model, task.tokenizer, task.system_prompt, sorted(set(valid[1]) | set(task.actions)))
    examples, labels = valid[0][:VALID_ROUTES], valid[1][:VALID_ROUTES]
    hits = 0
    for e, y in zip(examples, labels):
        turns = [{"role": m.role, "content": m.content} for m in (e.conversation or [])]
        hits += scorer.score([*turns, {"role": "user", "content": e.text}]).action == y
    return round(hits / max(1, len(examples)), 4)


class _Silent:
    """The reporter of processes that do not report (all but the main one of a launch)."""

    def __getattr__(self, name):
        return lambda *a, **k: False
