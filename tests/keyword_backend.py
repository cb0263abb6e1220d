"""A third backend, written as a plugin author would: a keyword router and a trainer that learns a
lookup table. Tests register it through the registry only (`registry.register(KeywordBackend())`)."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Sequence

from routelab.domain import Action, Example, Job, JobStatus, TrainedModel
from routelab.providers.base import (
    ROUTE,
    TRAIN,
    Backend,
    Cancelled,
    JobReporter,
    Route,
    Router,
    Trainer,
    TrainingFiles,
    UploadLog,
)
from routelab.providers.prompts import read_chat_jsonl

NAME = "keyword"
_WORD = re.compile(r"[a-z]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class KeywordRouter(Router):
    """The first action whose keyword appears in the question; invalid when none does."""

    provider = NAME
    prompt_version = "kw-v1"

    def __init__(self, model: str, table: dict[str, str] | None = None):
        self.model = model
        self.table = table  # word -> action; None: keywords from the action names
        self.mode = "trained table" if table else "action names"

    def _table(self, actions: Sequence[Action]) -> dict[str, str]:
        if self.table is not None:
            return self.table
        return {w: a.name for a in actions for w in words(a.name.replace("_", " ")) if len(w) > 3}

    def route_batch(self, examples: Sequence[Example], actions: Sequence[Action]) -> list[Route]:
        table, names = self._table(actions), {a.name for a in actions}
        out = []
        for e in examples:
            hit = next((table[w] for w in words(e.text) if w in table and table[w] in names), None)
            out.append(Route(action=hit, valid=hit is not None, confidence=1.0 if hit else None,
                             raw=json.dumps({"keyword": hit}), latency_ms=0.01))
        return out


class LookupTrainer(Trainer):
    """'Trains' a word -> action table on the export: each word's most frequent action."""

    provider = NAME
    default_base = "keywords"
    runs_here = True
    free = True

    def describe(self, report, base, cost) -> str:
        return f"keyword table from {report['train']['examples']} examples: free"

    def start(self, job: Job, files: TrainingFiles, reporter: JobReporter, uploads: UploadLog) -> None:
        reporter.status(JobStatus.RUNNING)
        reporter.progress(0, 2)
        reporter.event(f"Reading {files.train.name}")
        examples, labels = read_chat_jsonl(files.train)
        counts: dict[str, Counter] = defaultdict(Counter)
        for e, label in zip(examples, labels):
            for w in set(words(e.text)):
                counts[w][label] += 1
        reporter.progress(1)
        if reporter.cancelled():
            raise Cancelled("cancelled")
        # a word counts when one action has most of its uses
        table = {w: c.most_common(1)[0][0] for w, c in counts.items()
                 if len(w) > 3 and c.most_common(1)[0][1] >= 0.8 * sum(c.values())}
        catalog = [Action(name=n) for n in sorted(set(labels))]
        routes = KeywordRouter("t", table).route_batch(examples, catalog)
        accuracy = sum(r.action == label for r, label in zip(routes, labels)) / len(examples)
        reporter.event("Step 1/1 metrics", type="metrics",
                       data={"step": 1, "total_steps": 1, "train_accuracy": round(accuracy, 4)})
        model_id = f"keyword-ft-{job.id}"
        reporter.produced(TrainedModel(id=model_id, provider=NAME, kind="finetune", base="keywords", job_id=job.id,
                                       artifact=json.dumps(table).encode(), metrics={"words": len(table)}))
        reporter.result(fine_tuned_model=model_id)
        reporter.progress(2)
        reporter.status(JobStatus.SUCCEEDED)
        reporter.event(f"New model created: {model_id}")

    def cancel(self, job: Job, reporter: JobReporter) -> None:
        reporter.event("Cancellation requested", level="warn")
        reporter.status(JobStatus.CANCELLED)


class KeywordBackend(Backend):
    name = NAME
    description = "keyword routing and lookup tables (a test plugin)"
    capabilities = frozenset({ROUTE, TRAIN})
    teacher_ids = (NAME,)

    def router(self, model_id: str, *, store, settings, trained: TrainedModel | None = None, **options) -> Router:
        if trained is not None:
            return KeywordRouter(model_id, json.loads(trained.artifact or b"{}"))
        return KeywordRouter(model_id)

    def trainer(self, settings) -> Trainer:
        return LookupTrainer()
