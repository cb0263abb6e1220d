"""Like for like: eval says "in-sample" beside a figure measured on questions the model trained on
(the local teacher's labels, a fine-tune's export), in the table and as `in_sample` in --json."""

from __future__ import annotations

import json

from routelab.domain import Job, JobStatus, TrainedModel
from routelab.providers.local import LocalTeacher
from routelab.services.in_sample import in_sample, mark
from routelab.store import ExampleFilter


def _by_model(out: str) -> dict[str, dict]:
    return {m["model"]: m for m in json.loads(out)["models"]}


def _split_ids(store, split: str) -> set[int]:
    return {e.id for e in store.page(ExampleFilter(split=split), limit=10_000) if e.label}


def test_the_local_teacher_is_in_sample_on_the_labels_it_learns_from(demo_store, run_cli):
    path = demo_store.path
    r = run_cli("--db", path, "eval", "--split", "train", "--models", "local-zero-shot,local", "--json")
    assert r.code == 0, r
    models = _by_model(r.out)
    assert models["local"]["in_sample"] is True and "learns from 191 labels" in models["local"]["in_sample_reason"]
    assert models["local-zero-shot"]["in_sample"] is False
    r = run_cli("--db", path, "eval", "--split", "train", "--models", "local-zero-shot,local")
    rows = {ln.split()[0]: ln for ln in r.out.splitlines() if ln.startswith("local")}
    assert "local (in-sample)" in rows["local"] and "(in-sample" not in rows["local-zero-shot"]
    assert "local: in-sample, not a held-out figure: the local teacher learns from 191 labels" in r.out
    # the test split is never learnt from
    r = run_cli("--db", path, "eval", "--models", "local", "--json")
    assert _by_model(r.out)["local"]["in_sample"] is False
    assert "in-sample" not in run_cli("--db", path, "eval", "--show").out


def test_on_validation_the_teacher_is_in_sample_exactly_when_it_learns_from_validation(demo_store, run_cli):
    path = demo_store.path
    assert run_cli("--db", path, "export", "--out", demo_store.path.parent / "out").code == 0  # makes a validation split
    validation = _split_ids(demo_store, "validation")
    assert validation
    learnt = {e.id for e in LocalTeacher.from_store(demo_store).training}
    r = run_cli("--db", path, "eval", "--split", "validation", "--models", "local", "--json")
    verdict = _by_model(r.out)["local"]
    assert verdict["in_sample"] is bool(validation & learnt)  # validation labels in its training set: said


def test_a_fine_tune_is_in_sample_on_its_export_train_file_only(demo_store, run_cli):
    path = demo_store.path
    r = run_cli("--db", path, "finetune", "--provider", "local", "--wait", "--json")
    assert r.code == 0, r
    model = next(m.id for m in demo_store.trained_models(provider="local"))
    on_train = _by_model(run_cli("--db", path, "eval", "--split", "train", "--models", model, "--json").out)[model]
    record = demo_store.export_records()[0]
    assert on_train["in_sample"] is True
    evaluated = _split_ids(demo_store, "train")  # the human-labelled train questions left after the export
    assert evaluated <= set(record.train_ids)  # every one of them in train.jsonl (with the teacher-labelled ones)
    assert f"({len(record.train_ids)} questions), {len(evaluated)} of the {len(evaluated)} evaluated" in on_train[
        "in_sample_reason"]
    for split in ("validation", "test"):  # the export held validation out; test is never exported
        r = run_cli("--db", path, "eval", "--split", split, "--models", model, "--json")
        assert _by_model(r.out)[model]["in_sample"] is False, split


def test_a_model_whose_training_data_is_not_on_record_may_be_in_sample(demo_store):
    job = demo_store.create_job(Job(kind="finetune", status=JobStatus.SUCCEEDED, params={"digest": "feedbeef"}))
    demo_store.save_model(TrainedModel(id="local-ft-old", provider="local", job_id=job.id))
    ids = sorted(_split_ids(demo_store, "test"))
    verdict = in_sample(demo_store, "local-ft-old", ids)
    assert verdict["in_sample"] is None and "not on record" in verdict["reason"]
    assert mark({"in_sample": verdict}) == " (in-sample?)"
    assert in_sample(demo_store, "gpt-4.1", ids) == {"in_sample": False, "trained_on": 0,
                                                     "reason": "not trained in this workspace"}
    assert mark({}) == ""  # an evaluation stored before this was known says nothing


async def test_the_evaluate_pane_marks_an_in_sample_row(demo_store):
    from textual.widgets import DataTable

    from routelab.config import Settings
    from routelab.services import evaluation as ev
    from tests.test_eval_pane import PaneApp, _cells, _settle

    ev.evaluate(demo_store, [ev.ZERO_SHOT, "local"], split="train", settings=Settings())
    app = PaneApp(demo_store.path, auto_run=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await _settle(app, pilot)
        table = app.query_one("#eval-table", DataTable)
        assert [_cells(table, i)[0] for i in range(table.row_count)] == [ev.ZERO_SHOT, "local (in-sample)"]


def test_predictions_of_an_earlier_fit_of_the_teacher_are_not_called_held_out(store, run_cli):
    from routelab.domain import DecisionKind, NewExample

    names = store.action_names()
    store.add_examples([NewExample(text=f"question {i} about {a.replace('_', ' ')}", split="train", label=a)
                        for a in names for i in range(6)])
    store.add_examples([NewExample(text=f"held question {i} on {a.replace('_', ' ')}", split="validation", label=a)
                        for i, a in enumerate(names)])
    assert run_cli("--db", store.path, "label", "--provider", "local").code == 0  # fit A, then its predictions
    validation = _split_ids(store, "validation")
    fit_a = {e.id for e in LocalTeacher.from_store(store).training}
    for i in validation:  # skipped: they keep their labels (evaluated), but the teacher no longer learns them
        store.decide(i, DecisionKind.SKIP)
    assert not validation & {e.id for e in LocalTeacher.from_store(store).training}
    r = run_cli("--db", store.path, "eval", "--split", "validation", "--models", "local", "--json")
    verdict = _by_model(r.out)["local"]
    if validation & fit_a:  # the stored predictions came from a fit that learnt these very questions
        assert verdict["in_sample"] is None and "earlier fit" in verdict["in_sample_reason"]
    else:
        assert verdict["in_sample"] is False
