"""The training loop both methods share: steps, validation, events, cancel, checkpoints.

A `Task` (classifier.py, lora.py) knows its model, its batches and its loss; the loop does
the rest, through accelerate (one CPU, one GPU with mixed precision, or several processes
started by `accelerate launch`, each taking every n-th batch). Only the main process
reports; whether the job was cancelled is asked there between steps and broadcast, so
every process stops at the same step.

Events are those of the local trainer: a metrics event per logged step (train loss and
accuracy; validation loss and accuracy at each validation), a message beside it, and
progress in optimizer steps: what the Jobs pane's chart draws.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from routelab.providers.base import Cancelled, JobReporter
from routelab.providers.hf import checkpoints
from routelab.providers.hf.checkpoints import RunState
from routelab.providers.hf.data import length_batches
from routelab.providers.hf.options import HFOptions


class Task(Protocol):
    model: Any
    train_lengths: list[int]
    val_lengths: list[int]
    early_stopping: bool

    def param_groups(self, opts: HFOptions) -> list[dict[str, Any]]: ...

    def batch(self, indices: list[int], split: str) -> dict[str, Any]: ...

    def loss(self, model, batch: dict[str, Any]) -> tuple[Any, int, int]:
        """(mean loss, correct, counted): accuracy of classes (classifier) or answer tokens (lora)."""


@dataclass
class Window:
    """Sums over the steps since the last training-loss event."""

    loss: float = 0.0
    steps: int = 0
    correct: int = 0
    counted: int = 0

    def metrics(self) -> dict[str, float]:
        out = {"train_loss": round(self.loss / max(1, self.steps), 4)}
        if self.counted:
            out["train_accuracy"] = round(self.correct / self.counted, 4)
        return out


class TrainingLoop:
    def __init__(self, task: Task, opts: HFOptions, reporter: JobReporter | None, run_dir: Path,
                 accelerator, run_key: dict[str, Any], job_id: int | None):
        self.task, self.opts, self.reporter, self.run_dir = task, opts, reporter, run_dir
        self.acc = accelerator
        self.main = accelerator.is_main_process
        self.world = accelerator.num_processes
        self.steps_per_epoch = max(1, len(task.train_lengths) // opts.batch_size // self.world)
        self.total = self.steps_per_epoch * opts.n_epochs
        self.eval_every = opts.eval_every or self.steps_per_epoch
        self.log_every = opts.log_every or max(1, self.total // 50)
        self.state = RunState(run=run_key, job_id=job_id)
        self.started = time.perf_counter()

    # ---------------------------------------------------------------- reporting (main process only)

    def say(self, message: str, level: str = "info", data: dict | None = None) -> None:
        if self.main and self.reporter is not None:
            self.reporter.event(message, level=level)
            if data is not None:
                self.reporter.event(f"Step {data['step']}/{self.total} metrics", type="metrics", data=data)

    def _stop_requested(self) -> bool:
        flag = bool(self.main and self.reporter is not None and self.reporter.cancelled())
        if self.world == 1:
            return flag
        import torch
        from accelerate.utils import broadcast

        return bool(broadcast(torch.tensor([int(flag)], device=self.acc.device), from_process=0).item())

    # ---------------------------------------------------------------- the run

    def prepare(self, resume_from: Path | None):
        import torch
        from transformers import get_linear_schedule_with_warmup

        optimizer = torch.optim.AdamW(self.task.param_groups(self.opts), weight_decay=self.opts.weight_decay)
        scheduler = get_linear_schedule_with_warmup(optimizer, int(self.opts.warmup * self.total), self.total)
        if resume_from is not None:  # before prepare(): the plain model and optimizer take the state
            restored = checkpoints.restore(resume_from, self.task.model, optimizer, scheduler)
            restored.job_id, restored.run = self.state.job_id, self.state.run
            self.state = restored
        self.model, self.optimizer, self.scheduler = self.acc.prepare(self.task.model, optimizer, scheduler)

    def run(self, resume_from: Path | None = None) -> RunState:
        self.prepare(resume_from)
        if self.main and self.reporter is not None:
            self.reporter.progress(self.state.step, self.total)
        start_epoch, skip = divmod(self.state.step, self.steps_per_epoch)
        window = Window()
        for epoch in range(start_epoch, self.opts.n_epochs):
            mine = self._epoch_batches(epoch)[skip:]
            skip = 0
            for indices in mine:
                self._train_step(indices, window)
                if self.state.step % self.log_every == 0 or self.state.step == self.total:
                    self._log(window, epoch)
                    window = Window()
                if self._after_step(epoch):
                    return self.state
        return self.state

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        batches = length_batches(self.task.train_lengths, self.opts.batch_size, self.opts.seed * 1000 + epoch)
        batches = batches[:self.steps_per_epoch * self.world]  # every process takes as many steps
        return batches[self.acc.process_index::self.world]

    def _train_step(self, indices: list[int], window: Window) -> None:
        self.model.train()
        batch = {k: v.to(self.acc.device) for k, v in self.task.batch(indices, "train").items()}
        with self.acc.autocast():
            loss, correct, counted = self.task.loss(self.model, batch)
        self.acc.backward(loss)
        self.acc.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        window.loss += float(loss.detach())
        window.steps += 1
        window.correct += correct
        window.counted += counted

    def _log(self, window: Window, epoch: int) -> None:
        data = {"step": self.state.step, "total_steps": self.total, "epoch": epoch + 1, **window.metrics(),
                "learning_rate": float(self.scheduler.get_last_lr()[0])}
        self.state.metrics = {**self.state.metrics, **data}
        if self.main and self.reporter is not None:
            self.reporter.event(f"Step {self.state.step}/{self.total} metrics", type="metrics", data=data)

    def _after_step(self, epoch: int) -> bool:
        """Validate, checkpoint, report progress, check for cancel; True: stop now (early stopping)."""
        step, stop = self.state.step, False
        if self.task.val_lengths and (step % self.eval_every == 0 or step == self.total):
            stop = self._validate(epoch)
        if step % self.opts.checkpoint_every == 0 and step < self.total and not stop:
            self._checkpoint()
        if self.main and self.reporter is not None:
            self.reporter.progress(step)
        if self._stop_requested():
            raise Cancelled("cancelled")
        return stop

    def _checkpoint(self) -> None:
        self.acc.wait_for_everyone()
        if self.main:
            path = checkpoints.save(self.run_dir, self.state, self.acc.unwrap_model(self.model), self.optimizer,
                                    self.scheduler)
            self.say(f"Checkpoint saved at step {self.state.step}: {path}")

    def _validate(self, epoch: int) -> bool:
        loss, acc = self.evaluate()
        s = self.state
        data = {"step": s.step, "total_steps": self.total, "epoch": epoch + 1, "valid_loss": round(loss, 4),
                ("valid_accuracy" if self.task.early_stopping else "valid_mean_token_accuracy"): round(acc, 4)}
        s.metrics = {**s.metrics, **data}
        if s.best_loss is None or loss < s.best_loss - 1e-4:
            s.best_loss, s.best_step, s.bad_evals = loss, s.step, 0
            if self.task.early_stopping and self.main:
                checkpoints.save_trainable(self.acc.unwrap_model(self.model), self._best_path())
        else:
            s.bad_evals += 1
        text = f"Step {s.step}/{self.total}: validation loss={loss:.4f}, accuracy={acc:.3f}"
        self.say(text, data={**{k: v for k, v in s.metrics.items() if k != "learning_rate"}, **data})
        if self.task.early_stopping and s.bad_evals >= self.opts.patience and s.step < self.total:
            s.stopped_early = True
            self.say(f"Early stopping at step {s.step}: validation loss has not improved for {s.bad_evals} "
                     f"validations (best {s.best_loss:.4f} at step {s.best_step})")
            return True
        return False

    def _best_path(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        return self.run_dir / "best.safetensors"

    def evaluate(self) -> tuple[float, float]:
        """Validation loss (mean over examples) and accuracy, summed over every process."""
        import torch

        model = self.acc.unwrap_model(self.model)  # no DDP hooks: processes may hold different numbers of batches
        model.eval()
        batches = length_batches(self.task.val_lengths, self.opts.batch_size, 0, shuffle=False)
        sums = torch.zeros(3, device=self.acc.device, dtype=torch.float64)
        with torch.no_grad():
            for indices in batches[self.acc.process_index::self.world]:
                batch = {k: v.to(self.acc.device) for k, v in self.task.batch(indices, "valid").items()}
                with self.acc.autocast():
                    loss, correct, counted = self.task.loss(model, batch)
                sums += torch.tensor([float(loss) * len(indices), correct, counted], device=sums.device,
                                     dtype=sums.dtype)
        if self.world > 1:
            sums = self.acc.reduce(sums, reduction="sum")
        n = max(1, len(self.task.val_lengths))
        loss = float(sums[0]) / n
        return (loss if math.isfinite(loss) else float("inf")), float(sums[1]) / max(1.0, float(sums[2]))

    def restore_best(self) -> None:
        """Early stopping keeps the weights of the best validation loss, not the last."""
        path = self.run_dir / "best.safetensors"
        if self.task.early_stopping and path.exists():
            checkpoints.load_trainable(self.acc.unwrap_model(self.model), path)
