"""The embedded trainer: a real training run of the local router on an export, as a job.

It reads the same train.jsonl / validation.jsonl an OpenAI fine-tune would get, and goes
through the same lifecycle: validating -> running (one metrics event per step) ->
succeeded with a model id, the model stored in the workspace (plain arrays, no pickle).

Training is the logistic regression of the embedded router (LinearRouter.fit), run in N
warm-started chunks of iterations: after each step the run reports train loss, validation
loss and accuracy, like the steps of a remote fine-tune, at the cost of one fit. The last
step is the model.

Runs in the calling thread (the CLI runs it to completion; the TUI in a worker thread).
It checks the job's status in the store between steps, so `routelab jobs cancel` (from any
process) stops it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from routelab.domain import BadInput, Example, Job, JobEvent, JobStatus, Message, RoutelabError, TrainedModel
from routelab.store import Store

DEFAULT_STEPS = 5
_running: set[int] = set()  # local jobs being trained by this process
_running_lock = threading.Lock()


class Cancelled(RoutelabError):
    exit_code = 1


def is_running_here(job_id: int) -> bool:
    with _running_lock:
        return job_id in _running


def owner() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def owner_alive(params: dict[str, Any]) -> bool:
    """Is the process that runs this local job still alive? (Unknown hosts: assume yes.)"""
    pid, host = params.get("pid"), params.get("host")
    if pid is None:
        return False
    if host and host != socket.gethostname():
        return True
    if pid == os.getpid():
        return True  # this process: the caller checks is_running_here
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def read_chat_jsonl(path: Path) -> tuple[list[Example], list[str]]:
    """Examples (history + last user message) and labels (the assistant's action) of an export file."""
    examples: list[Example] = []
    labels: list[str] = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
            answer = messages[-1]
            if answer["role"] != "assistant":
                raise ValueError("the last message is not the assistant's")
            action = json.loads(answer["content"])["action"]
            turns = [m for m in messages[:-1] if m["role"] != "system"]
            if not turns or turns[-1]["role"] != "user":
                raise ValueError("no user message before the answer")
            history = [Message(role=m["role"], content=m["content"]) for m in turns[:-1]]
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise BadInput(f"{Path(path).name} line {i}: not a routing example ({e})") from None
        examples.append(Example(id=i, text=turns[-1]["content"], conversation=history or None, source="export",
                                split="train", hash="", created_at=""))
        labels.append(str(action))
    return examples, labels


def _log_loss(proba: np.ndarray, classes: list[str], labels: list[str]) -> float:
    index = {c: i for i, c in enumerate(classes)}
    p = np.array([proba[r, index[y]] if y in index else 0.0 for r, y in enumerate(labels)])
    return float(-np.mean(np.log(np.clip(p, 1e-12, 1.0))))


def _accuracy(proba: np.ndarray, classes: list[str], labels: list[str]) -> float:
    pred = [classes[i] for i in proba.argmax(axis=1)]
    return float(np.mean([p == y for p, y in zip(pred, labels)]))


def fit_in_steps(vectors: np.ndarray, labels: list[str], steps: int, *, c: float = 10.0, max_iter: int = 300):
    """The same logistic regression LinearRouter.fit trains, in `steps` warm-started chunks of
    iterations: yields a LinearRouter after each chunk, so a run can report metrics as it goes
    and costs what one fit costs."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    from routelab.providers.local_model import LinearRouter

    # growing chunks (about 3%, 11%, 25%, 44%, 100% of max_iter for 5 steps): early steps show
    # the loss falling even on data where lbfgs converges in a few dozen iterations
    done = 0
    model = LogisticRegression(C=c, max_iter=1, warm_start=True)
    for k in range(1, steps + 1):
        target = max_iter if k == steps else max(done + 1, round(max_iter * (k / steps) ** 2.2))
        model.max_iter = target - done
        done = target
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # stopping early is the point of a step
            model.fit(vectors, labels)
        coef, intercept = model.coef_, model.intercept_
        if len(model.classes_) == 2:  # sklearn keeps one row for two classes
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        yield LinearRouter([str(c_) for c_ in model.classes_], coef, intercept), int(model.n_iter_[0])


class LocalTrainingRun:
    """One training run of job `job_id`, writing its lifecycle into `store`."""

    def __init__(self, store: Store, job_id: int, *, steps: int = DEFAULT_STEPS, seed: int = 0,
                 on_event: Callable[[JobEvent], None] | None = None):
        self.store = store
        self.on_event = on_event
        self._seen = 0
        self.job_id = job_id
        self.steps = max(1, steps)
        self.seed = seed
        self._n = 0

    def event(self, message: str, *, level: str = "info", type_: str = "message", data: dict | None = None) -> None:
        self._n += 1
        self.store.add_job_events([JobEvent(job_id=self.job_id, remote_id=f"local-{self._n}", level=level,
                                            type=type_, message=message, data=data or {})])
        if self.on_event is not None:  # hand every stored event (ours and others') to the caller, once
            for ev in self.store.job_events(self.job_id, after=self._seen):
                self._seen = ev.id or self._seen
                self.on_event(ev)

    def _check_cancel(self) -> None:
        job = self.store.job(self.job_id)
        if job is not None and job.status == JobStatus.CANCELLED:
            raise Cancelled("cancelled")

    def run(self, train_path: Path, validation_path: Path | None) -> TrainedModel:
        with _running_lock:
            _running.add(self.job_id)
        try:
            return self._run(Path(train_path), Path(validation_path) if validation_path else None)
        except Cancelled:
            self.event("Training cancelled; no model was saved", level="warn")
            raise
        finally:
            with _running_lock:
                _running.discard(self.job_id)

    def _run(self, train_path: Path, validation_path: Path | None) -> TrainedModel:
        from routelab.providers.local_model import embed_examples

        started = time.perf_counter()
        store, job_id = self.store, self.job_id
        store.update_job(job_id, status=JobStatus.VALIDATING, progress_done=0, progress_total=self.steps)
        self.event(f"Created local training job {job_id}")
        self.event(f"Validating training file {train_path.name}"
                   + (f" and validation file {validation_path.name}" if validation_path else ""))
        train_x, train_y = read_chat_jsonl(train_path)
        val_x, val_y = read_chat_jsonl(validation_path) if validation_path else ([], [])
        classes = sorted(set(train_y))
        if len(train_x) < 2 or len(classes) < 2:
            raise BadInput(f"{train_path.name}: a router needs examples of at least two actions")
        self.event(f"Files validated: {len(train_x)} training and {len(val_x)} validation examples, "
                   f"{len(classes)} actions")
        self._check_cancel()

        store.update_job(job_id, status=JobStatus.RUNNING)
        self.event("Embedding examples (WordLlama, offline)")
        vectors = embed_examples(train_x)
        val_vectors = embed_examples(val_x) if val_x else None
        self.event(f"Training started: logistic regression on {len(train_x)} examples, {self.steps} steps")
        router = None
        metrics: dict[str, Any] = {}
        iterations = 0
        for step, (router, n_iter) in enumerate(fit_in_steps(vectors, train_y, self.steps), start=1):
            iterations += n_iter
            proba = router.predict_proba(vectors)
            metrics = {
                "step": step, "total_steps": self.steps, "iterations": iterations,
                "train_loss": round(_log_loss(proba, router.classes, train_y), 4),
                "train_accuracy": round(_accuracy(proba, router.classes, train_y), 4),
            }
            if val_vectors is not None:
                vp = router.predict_proba(val_vectors)
                metrics["valid_loss"] = round(_log_loss(vp, router.classes, val_y), 4)
                metrics["valid_accuracy"] = round(_accuracy(vp, router.classes, val_y), 4)
            self.event(f"Step {step}/{self.steps} metrics", type_="metrics", data=metrics)
            text = f"Step {step}/{self.steps} ({iterations} iterations): training loss={metrics['train_loss']:.4f}"
            if "valid_loss" in metrics:
                text += f", validation loss={metrics['valid_loss']:.4f}, accuracy={metrics['valid_accuracy']:.3f}"
            self.event(text)
            store.update_job(job_id, progress_done=step)
            self._check_cancel()
        self._check_cancel()
        assert router is not None
        artifact = router.to_bytes()
        model_id = f"local-ft-{job_id}-{hashlib.sha256(artifact).hexdigest()[:8]}"
        seconds = round(time.perf_counter() - started, 3)
        final = {**metrics, "train_examples": len(train_x), "valid_examples": len(val_x), "seconds": seconds,
                 "classes": len(router.classes)}
        job = store.job(job_id)
        model = TrainedModel(id=model_id, provider="local", kind="finetune", base="wordllama-256+logreg",
                             job_id=job_id, params={"steps": self.steps, "seed": self.seed,
                                                    "export": (job.params.get("export_dir") if job else None)},
                             metrics=final, artifact=artifact)
        store.save_model(model)
        self.event(f"New model created: {model_id}")
        store.update_job(job_id, status=JobStatus.SUCCEEDED, result={"fine_tuned_model": model_id, "metrics": final},
                         progress_done=self.steps)
        self.event("The job has successfully completed")
        return model


def mark_interrupted(store: Store, job: Job) -> Job:
    """A local job whose process is gone: say so instead of claiming it still runs."""
    msg = "interrupted: the process running this local training exited; start it again"
    store.add_job_events([JobEvent(job_id=job.id, level="error", message=msg)])
    return store.update_job(job.id, status=JobStatus.FAILED, error=msg)
