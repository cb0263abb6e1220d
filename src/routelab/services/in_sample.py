"""Was a model trained on the questions it is scored on? Then its figure is in-sample, not held out.

An evaluation's figure is in-sample for a model whose training set included evaluated questions:

- `local-zero-shot` never trains: never in-sample;
- `local`, the embedded teacher, learns from the workspace's reviewed labels; the set it learns
  from now (`LocalTeacher.from_store(...).training`: today every non-test label, validation
  included; train-split labels only once the teacher is made to keep validation out) is compared
  with the evaluated questions. Eval reuses stored predictions, and the teacher refits as labels
  change: predictions made by an earlier fit (older than the cached fit, or any when the labels
  no longer match it) were trained on a set that is not on record, so they make the figure
  unknown rather than held out;
- a trained model (a local fine-tune, an OpenAI or endpoint fine-tune) was trained on one
  export's train.jsonl: its job keeps the export's digest, and the export record
  (`Store.export_record`) lists that file's questions;
- any other model (an OpenAI teacher, a model served elsewhere) was not trained here: not
  in-sample as far as this workspace can tell.

`None` (JSON null) where a trained model's training data cannot be found (trained before
routelab recorded its exports, or its job is gone): the figure may be in-sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from routelab.store import Store


def in_sample(store: Store, model: str, example_ids: Sequence[int]) -> dict[str, Any]:
    """{"in_sample": True | False | None, "trained_on": how many of the questions, "reason": one line}."""
    from routelab.providers.local import LOCAL_TEACHER, ZERO_SHOT

    ids = set(example_ids)
    if model == ZERO_SHOT:
        return _verdict(False, 0, "never trained: similarity to the action names and descriptions")
    if model == LOCAL_TEACHER:
        return _local_teacher(store, ids)
    trained = store.trained_model(model, with_artifact=False)
    if trained is None:
        return _verdict(False, 0, "not trained in this workspace")
    return _trained(store, trained, ids)


def _verdict(value: bool | None, n: int, reason: str) -> dict[str, Any]:
    return {"in_sample": value, "trained_on": n, "reason": reason}


def _local_teacher(store: Store, ids: set[int]) -> dict[str, Any]:
    from routelab.providers.local import LOCAL_TEACHER, LocalTeacher

    teacher = LocalTeacher.from_store(store)
    training = {e.id for e in getattr(teacher, "training", ())} if getattr(teacher, "trained", False) else set()
    overlap = len(ids & training)
    if overlap:
        return _verdict(True, overlap, f"the local teacher learns from {len(training):,} labels, "
                                       f"{overlap:,} of the {len(ids):,} evaluated questions among them")
    stale = _earlier_fit(store, teacher, LOCAL_TEACHER, ids)
    if stale:
        return _verdict(None, 0, f"{stale:,} of its stored predictions for these questions come from an earlier fit "
                                 "of the teacher, on other labels (which ones is not on record): they may be "
                                 "in-sample")
    if not training:
        return _verdict(False, 0, "zero-shot: too few reviewed labels to train on yet")
    return _verdict(False, 0, f"the local teacher learns from {len(training):,} labels, none of these")


def _earlier_fit(store: Store, teacher, model: str, ids: set[int]) -> int:
    """How many of the teacher's stored predictions for `ids` were made by a fit other than the one
    its labels make now: eval reuses stored predictions, and each fit is cached over the last."""
    proposals = store.proposals_for(model, sorted(ids))
    cached = store.trained_model(model, with_artifact=False)
    if cached is None or cached.kind != "teacher":
        return 0  # never trained: every prediction was zero-shot
    current = getattr(teacher, "trained", False) and cached.params.get("fingerprint") == teacher.fingerprint()
    if not current:
        return len(proposals)
    return sum(p.created_at < cached.created_at for p in proposals.values())


def _trained(store: Store, trained, ids: set[int]) -> dict[str, Any]:
    job = store.job(trained.job_id) if trained.job_id is not None else None
    digest = (job.params.get("digest") if job else None) or trained.params.get("digest")
    record = store.export_record(digest) if digest else None
    if record is None:
        return _verdict(None, 0, "its training data is not on record (an export made before routelab kept "
                                 "export records): the figure may be in-sample")
    overlap = len(ids.intersection(record.train_ids))
    if overlap:
        return _verdict(True, overlap, f"trained on export {digest[:12]} ({len(record.train_ids):,} questions), "
                                       f"{overlap:,} of the {len(ids):,} evaluated questions among them")
    return _verdict(False, 0, f"trained on export {digest[:12]}, none of these questions")


def mark(details: dict[str, Any]) -> str:
    """What goes beside a model's figures: ` (in-sample)`, ` (in-sample?)` when unknown, else nothing."""
    verdict = (details.get("in_sample") or {}).get("in_sample", False)
    return " (in-sample)" if verdict else " (in-sample?)" if verdict is None else ""


__all__ = ["in_sample", "mark"]
