"""A workspace file and its settings, with the services an app calls from several threads.

The app works in worker threads (a count, a poll, a training run) beside its UI thread.
An SQLite connection serves one thread at a time, and one connection runs one statement
at a time, so a Workspace holds no connection of its own: each call here opens one for
itself and closes it (opening costs about a millisecond beside what these calls do), and
the long-lived services it hands out (a review session, the playground's routers, the job
monitor) keep theirs. Settings are read once, by `Workspace.at`, and passed to every service.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routelab.domain import BadInput, Evaluation, Job, RoutelabError
from routelab.services.job_monitor import JobMonitor
from routelab.services.review_session import ReviewSession
from routelab.store import Store


@dataclass(frozen=True)
class EvaluationOverview:
    """The stored evaluations, or why there are none yet."""

    rows: list[Evaluation]  # the newest evaluation per model, the base first
    split: str
    labelled: int | None = None  # with no rows: questions of the split that have a human label
    problem: str | None = None  # with no rows: why nothing can be evaluated (no such split, no labels)
    offline: bool = True  # every model that would run is local: evaluating costs nothing
    changed_test_labels: int = 0  # test labels changed after a model proposed for them (services/eval_caveats)


class Workspace:
    def __init__(self, path: str | Path, settings):
        self.path = Path(path)
        self.settings = settings
        self._kept: list[Store] = []  # connections of the services handed out, closed by close()
        self._lock = threading.Lock()

    @classmethod
    def at(cls, path: str | Path) -> Workspace:
        """The workspace at `path` with the settings of the environment, read now, once."""
        from pydantic import ValidationError

        from routelab.config import settings as load_settings

        try:
            return cls(path, load_settings())
        except ValidationError as e:
            problem = e.errors()[0]
            raise BadInput(f"bad setting {'.'.join(map(str, problem['loc']))}: {problem['msg']}") from None

    @property
    def name(self) -> str:
        return self.path.name

    def teacher_label(self) -> str:
        """`openai gpt-4.1` when the remote default can run here, else `local` (no network)."""
        from routelab.providers.registry import default_teacher, default_trainer

        teacher = default_teacher(self.settings)
        backend = default_trainer(self.settings)
        return teacher if teacher == backend else f"{backend} {teacher}"

    @contextmanager
    def _store(self) -> Iterator[Store]:
        with Store.open(self.path, create=False) as store:
            yield store

    def _keep(self, store: Store) -> Store:
        with self._lock:
            self._kept.append(store)
        return store

    def close(self) -> None:
        with self._lock:
            kept, self._kept = self._kept, []
        for store in kept:
            store.close()

    # ---------------------------------------------------------------- long-lived services

    def review_session(self) -> ReviewSession:
        """A reviewer's session (its caller closes it)."""
        return ReviewSession.open(self.path, self.settings)

    def playground(self):
        """The playground service (routers load lazily and stay); its connection lives until close()."""
        from routelab.services.playground import Playground

        return Playground(self._keep(Store.open(self.path, create=False)), self.settings)

    def job_monitor(self) -> JobMonitor:
        return JobMonitor(self.path, self.settings)

    # ---------------------------------------------------------------- evaluations

    def evaluation_overview(self, split: str = "test") -> EvaluationOverview:
        """The newest evaluations (of the newest evaluated split); with none, about `split`."""
        from routelab.services.evaluation import check_split, latest

        with self._store() as store:
            rows = latest(store)
            if rows:
                return EvaluationOverview(rows, rows[0].split or split,
                                          changed_test_labels=store.changed_test_labels().total)
            try:
                labelled = len(check_split(store, split))
            except RoutelabError as e:  # no such split, or no labels yet
                return EvaluationOverview([], split, problem=str(e))
        return EvaluationOverview([], split, labelled=labelled, offline=not self.settings.has_openai)

    def evaluate(self, split: str, *, progress: Callable | None = None, confirm: Callable[[Any], bool] | None = None,
                 cancelled: Callable[[], bool] | None = None):
        """Evaluate every model that can run here (see services.evaluation.evaluate): an EvalRun."""
        from routelab.services.evaluation import evaluate

        with self._store() as store:
            return evaluate(store, split=split, settings=self.settings, progress=progress, confirm=confirm,
                            cancelled=cancelled)

    # ---------------------------------------------------------------- jobs and fine-tuning

    def default_trainer(self) -> str:
        """The trainer `f` starts: the remote default where it can run here, else the embedded one."""
        from routelab.providers.registry import default_trainer

        return default_trainer(self.settings)

    def trainers(self) -> list[str]:
        """Every registered backend that trains (what the Jobs pane offers)."""
        from routelab.services.finetune import providers

        return providers()

    def plan_finetune(self, provider: str):
        """Export and estimate (BadInput before anything is spent): a FinetunePlan to confirm."""
        from routelab.services.finetune import FinetuneOptions, plan_finetune

        with self._store() as store:
            return plan_finetune(store, FinetuneOptions(provider=provider), self.settings)

    def start_finetune(self, plan) -> Job:
        """Start the planned job; a local one trains here, to the end (call it from a worker)."""
        from routelab.services.finetune import start_finetune

        with self._store() as store:
            return start_finetune(store, plan, self.settings)

    def cancel_job(self, job_id: int) -> Job:
        from routelab.services.jobs import JobService

        with self._store() as store:
            return JobService(store, self.settings).cancel(job_id)


__all__ = ["EvaluationOverview", "Workspace"]
