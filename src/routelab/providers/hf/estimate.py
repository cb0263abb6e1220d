"""What a run will take, shown before it starts: tokens, steps, minutes here, dollars on a GPU.

Minutes on this device are measured, not guessed: a few real optimizer steps of the model
on a batch of typical length (after a warm-up step), times the number of steps, plus the
validations. For a rented GPU the time is projected from the arithmetic (6 x parameters x
tokens for full fine-tuning, 4 x for LoRA, whose frozen weights need no gradients) at an
effective throughput (ROUTELAB_GPU_TFLOPS, default 100 TFLOP/s: a third of an H100's bf16
peak) and priced at ROUTELAB_GPU_PRICE dollars per GPU-hour.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from routelab.providers.hf.device import Device
from routelab.providers.hf.options import HFOptions

MIN_GPU_STEP = 0.015  # s: a small model's step on a GPU is bound by kernel launches, not arithmetic


@dataclass
class TrainingEstimate:
    method: str
    base: str
    examples: int
    tokens: int  # training tokens per epoch (what the model reads, padding aside)
    epochs: int
    steps: int
    batch_size: int
    device: Device
    step_seconds: float  # measured here
    minutes: float  # on this device
    parameters: int
    gpu_minutes: float  # projected on a rented GPU
    gpu_price: float  # USD per GPU-hour
    gpus: int = 1

    @property
    def gpu_dollars(self) -> float:
        return self.gpu_minutes / 60 * self.gpu_price * self.gpus

    @property
    def dollars_here(self) -> float:
        """What this run costs on this device: a GPU at the configured price; a CPU is free."""
        return self.minutes / 60 * self.gpu_price * self.gpus if self.device.gpu else 0.0

    def line(self) -> str:
        here = f"~{_minutes(self.minutes)} on {self.device.name} ({self.step_seconds:.2f} s/step measured)"
        if self.device.gpu:
            here += f", ${self.dollars_here:.2f} at ${self.gpu_price:.2f}/GPU-hour"
        return (f"hf {self.method} fine-tune of {self.base}: {self.examples:,} examples, {self.tokens:,} tokens x "
                f"{self.epochs} epochs, {self.steps:,} steps of {self.batch_size}"
                + (f" on {self.gpus} GPUs" if self.gpus > 1 else "") + f"; {here}"
                + ("" if self.device.gpu else f"; on a rented GPU ~{_minutes(self.gpu_minutes)}, "
                   f"~${self.gpu_dollars:.2f} at ${self.gpu_price:.2f}/GPU-hour (projected)"))

    def as_dict(self) -> dict:
        return {"examples": self.examples, "tokens": self.tokens, "epochs": self.epochs, "steps": self.steps,
                "batch_size": self.batch_size, "device": self.device.name, "step_seconds": round(self.step_seconds, 4),
                "minutes": round(self.minutes, 2), "parameters": self.parameters,
                "gpu_minutes_projected": round(self.gpu_minutes, 2), "gpu_price": self.gpu_price,
                "gpu_dollars_projected": round(self.gpu_dollars, 4), "dollars": round(self.dollars_here, 4)}


def _minutes(m: float) -> str:
    return f"{m * 60:.0f} s" if m < 1 else (f"{m:.0f} min" if m < 120 else f"{m / 60:.1f} h")


def measure_step(task, opts: HFOptions, device: Device, steps: int = 2) -> float:
    """Seconds per optimizer step of `task`'s model here, on a batch of median length (throwaway updates)."""
    import torch

    model = task.model.to("cuda" if device.gpu else "cpu")
    order = sorted(range(len(task.train_lengths)), key=task.train_lengths.__getitem__)
    mid = len(order) // 2
    indices = order[max(0, mid - opts.batch_size // 2):][:opts.batch_size]
    optimizer = torch.optim.AdamW(task.param_groups(opts))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(device.mixed_precision)
    elapsed = 0.0
    for k in range(steps + 1):  # the first step warms up (allocations, kernels) and is not counted
        batch = {key: v.to(model.device) for key, v in task.batch(indices, "train").items()}
        t0 = time.perf_counter()
        with torch.autocast(device_type=model.device.type, dtype=dtype, enabled=dtype is not None):
            loss, _, _ = task.loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.gpu:
            torch.cuda.synchronize()
        if k:
            elapsed += time.perf_counter() - t0
    return elapsed / steps


def estimate(task, opts: HFOptions, device: Device, *, base: str, gpu_price: float, gpu_tflops: float,
             world: int = 1) -> TrainingEstimate:
    n = len(task.train_lengths)
    steps_per_epoch = max(1, n // opts.batch_size // world)
    steps = steps_per_epoch * opts.n_epochs
    step_s = measure_step(task, opts, device)
    # each validation reads the validation set once, forward only (about a third of a training step's work)
    evals = opts.n_epochs if not opts.eval_every else max(1, steps // opts.eval_every)
    val_steps = len(task.val_lengths) / max(1, opts.batch_size) * evals / 3
    minutes = (steps + val_steps) * step_s / 60
    tokens = sum(task.train_lengths)
    parameters = sum(p.numel() for p in task.model.parameters())
    per_token = 6 if opts.method == "classifier" else 4
    flops = per_token * parameters * tokens * opts.n_epochs
    gpu_s = max(flops / (gpu_tflops * 1e12 * max(1, world)), steps * MIN_GPU_STEP)  # steps: per process already
    return TrainingEstimate(opts.method, base, n, tokens, opts.n_epochs, steps, opts.batch_size, device, step_s,
                            minutes, parameters, gpu_s / 60, gpu_price, world)
