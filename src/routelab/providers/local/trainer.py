"""The embedded trainer: a real training run of the local router on an export, as a job.

It reads the same train.jsonl / validation.jsonl an OpenAI fine-tune would get, and goes
through the same lifecycle: validating -> running (one metrics event per step) ->
succeeded with a model id, the model stored in the workspace (plain arrays, no pickle).

Training is the logistic regression of the embedded router (LinearRouter.fit), run in N
warm-started chunks of iterations: after each step the run reports train loss, validation
loss and accuracy, like the steps of a remote fine-tune, at the cost of one fit. The last
step is the model.

Runs in the calling thread, to the end (the CLI runs it in its process, the TUI in a
worker thread), reporting everything to its JobReporter and asking it between steps
whether the job was cancelled (`routelab jobs cancel`, from any process, stops it).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np

from routelab.domain import BadInput, Job, JobStatus, TrainedModel
from routelab.providers.base import Cancelled, JobReporter, Trainer, TrainingFiles, UploadLog
from routelab.providers.prompts import read_chat_jsonl

DEFAULT_STEPS = 5
LOCAL_BASE = "wordllama-256+logreg"


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

    from routelab.providers.local.model import LinearRouter

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


class LocalTrainer(Trainer):
    provider = "local"
    default_base = LOCAL_BASE
    runs_here = True
    free = True

    def __init__(self, settings):
        self.settings = settings

    def describe(self, report: dict[str, Any], base: str, cost: float | None) -> str:
        return f"local training on {report['train']['examples']} examples: free, about a few seconds"

    def start(self, job: Job, files: TrainingFiles, reporter: JobReporter, uploads: UploadLog) -> None:
        try:
            LocalTrainingRun(job, reporter).run(files)
        except Cancelled:
            reporter.event("Training cancelled; no model was saved", level="warn")
            raise

    def cancel(self, job: Job, reporter: JobReporter) -> None:
        """The run asks its reporter between steps and stops; a run whose process is gone is just marked."""
        reporter.event("Cancellation requested", level="warn")
        reporter.status(JobStatus.CANCELLED)


class LocalTrainingRun:
    """One training run of `job`, reporting its lifecycle."""

    def __init__(self, job: Job, reporter: JobReporter):
        self.job = job
        self.reporter = reporter
        self.steps = max(1, int(job.params.get("steps") or DEFAULT_STEPS))
        self.started = time.perf_counter()

    def _check_cancel(self) -> None:
        if self.reporter.cancelled():
            raise Cancelled("cancelled")

    def run(self, files: TrainingFiles) -> None:
        from routelab.providers.local.model import embed_examples

        r = self.reporter
        r.status(JobStatus.VALIDATING)
        r.progress(0, self.steps)
        r.event(f"Created local training job {self.job.id}")
        r.event(f"Validating training file {files.train.name}"
                + (f" and validation file {files.validation.name}" if files.validation else ""))
        train_x, train_y = read_chat_jsonl(files.train)
        val_x, val_y = read_chat_jsonl(files.validation) if files.validation else ([], [])
        classes = sorted(set(train_y))
        if len(train_x) < 2 or len(classes) < 2:
            raise BadInput(f"{files.train.name}: a router needs examples of at least two actions")
        r.event(f"Files validated: {len(train_x)} training and {len(val_x)} validation examples, "
                f"{len(classes)} actions")
        self._check_cancel()
        r.status(JobStatus.RUNNING)
        r.event("Embedding examples (WordLlama, offline)")
        vectors = embed_examples(train_x)
        val_vectors = embed_examples(val_x) if val_x else None
        r.event(f"Training started: logistic regression on {len(train_x)} examples, {self.steps} steps")
        router, metrics = self._train(vectors, train_y, val_vectors, val_y)
        self._finish(router, metrics, len(train_x), len(val_x))

    def _train(self, vectors, train_y: list[str], val_vectors, val_y: list[str]):
        router, metrics, iterations = None, {}, 0
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
            self.reporter.event(f"Step {step}/{self.steps} metrics", type="metrics", data=metrics)
            text = f"Step {step}/{self.steps} ({iterations} iterations): training loss={metrics['train_loss']:.4f}"
            if "valid_loss" in metrics:
                text += f", validation loss={metrics['valid_loss']:.4f}, accuracy={metrics['valid_accuracy']:.3f}"
            self.reporter.event(text)
            self.reporter.progress(step)
            self._check_cancel()
        self._check_cancel()
        assert router is not None
        return router, metrics

    def _finish(self, router, metrics: dict[str, Any], n_train: int, n_val: int) -> None:
        artifact = router.to_bytes()
        model_id = f"local-ft-{self.job.id}-{hashlib.sha256(artifact).hexdigest()[:8]}"
        final = {**metrics, "train_examples": n_train, "valid_examples": n_val,
                 "seconds": round(time.perf_counter() - self.started, 3), "classes": len(router.classes)}
        r = self.reporter
        r.produced(TrainedModel(id=model_id, provider="local", kind="finetune", base=LOCAL_BASE, job_id=self.job.id,
                                params={"steps": self.steps, "seed": self.job.params.get("seed"),
                                        "export": self.job.params.get("export_dir")},
                                metrics=final, artifact=artifact))
        r.event(f"New model created: {model_id}")
        r.result(fine_tuned_model=model_id, metrics=final)
        r.progress(self.steps)
        r.status(JobStatus.SUCCEEDED)
        r.event("The job has successfully completed")
