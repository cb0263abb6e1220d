"""Splits are the user's: export keeps the workspace's train and validation questions where they are,
and whatever it does move into validation it says (output, --json, report.json) and records."""

from __future__ import annotations

import json

from routelab.domain import NewExample
from routelab.services.export import ExportOptions, build_export, export_dataset
from routelab.store import ExampleFilter, Store
from routelab.store.exports import decode_ids, encode_ids
from tests.conftest import DATA


def _splits(store: Store) -> dict[int, str]:
    return {e.id: e.split for e in store.page(limit=100_000)}


def test_clinc150_splits_survive_an_export_unchanged(tmp_path, run_cli):
    db = tmp_path / "clinc.db"
    r = run_cli("import", DATA / "clinc150" / "data_full_slice.json", "--db", db, "--create-actions")
    assert r.code == 0, r
    with Store.open(db) as s:
        before = _splits(s)
        counts = s.counts_by("split")
    assert set(counts) == {"train", "validation", "test"}
    r = run_cli("export", "--db", db, "--out", tmp_path / "out", "--json")
    assert r.code == 0, r
    report = json.loads(r.out)
    assert report["split_changes"] == {"moved_to_validation": 0, "from": {}}
    assert report["train"]["examples"] == counts["train"] and report["validation"]["examples"] == counts["validation"]
    with Store.open(db) as s:
        assert _splits(s) == before  # train, validation and test, question by question
        (record,) = s.export_records()
    assert record.moved_ids == [] and record.seed == 0 and record.digest == report["digest"]
    assert sorted(record.validation_ids) == sorted(i for i, sp in before.items() if sp == "validation")
    r = run_cli("export", "--db", db, "--out", tmp_path / "out")
    assert r.code == 0 and "splits: as in the workspace (no question moved)" in r.out


def test_without_a_validation_split_export_takes_one_from_train_and_says_so(tmp_path, run_cli):
    db = tmp_path / "bank.db"
    r = run_cli("import", DATA / "banking77" / "train_slice.csv", "--db", db, "--split", "train", "--create-actions")
    assert r.code == 0, r
    r = run_cli("import", DATA / "banking77" / "test_slice.csv", "--db", db, "--split", "test")
    assert r.code == 0, r
    r = run_cli("export", "--db", db, "--out", tmp_path / "out", "--seed", "3")
    assert r.code == 0, r
    line = next(ln for ln in r.out.splitlines() if ln.startswith("splits:"))
    with Store.open(db) as s:
        moved = s.page(ExampleFilter(split="validation"), limit=1000)
        (record,) = s.export_records()
        assert s.count(ExampleFilter(split="test")) == 20  # the test split is never touched
    assert len(moved) == 10  # round(20% of 6): one question of each of the 10 categories
    assert line == ("splits: moved 10 questions into the workspace's validation split: 10 from train (the "
                    "workspace had no validation split); seed 3, --val-fraction 0.2; recorded with this export")
    assert record.seed == 3 and record.moved == {"train": 10} and record.moved_ids == sorted(e.id for e in moved)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["split_changes"] == {"moved_to_validation": 10, "from": {"train": 10}}
    # the next export finds the validation split and keeps it: nothing more moves, whatever the seed
    r = run_cli("export", "--db", db, "--out", tmp_path / "out2", "--seed", "9", "--json")
    assert r.code == 0 and json.loads(r.out)["split_changes"]["moved_to_validation"] == 0
    with Store.open(db) as s:
        assert {e.id for e in s.page(ExampleFilter(split="validation"), limit=1000)} == {e.id for e in moved}
        assert len(s.export_records()) == 2


def test_only_unassigned_questions_are_split_beside_the_users_validation(store):
    train = [NewExample(text=f"train question {i} about payslips", split="train", label="get_payslip") for i in range(10)]
    val = [NewExample(text=f"validation question {i} on holidays", split="validation", label="book_holiday")
           for i in range(2)] + [NewExample(text="a train question on holidays", split="train", label="book_holiday")]
    free = [NewExample(text=f"loose question {i} on policy", label="get_policy") for i in range(10)]
    both = [NewExample(text=f"loose question {i} on escalation", label="escalate") for i in range(10)]
    store.add_examples(train + val + free + both)
    before = _splits(store)
    ex = build_export(store, ExportOptions(val_fraction=0.2, seed=1))
    val_ids = {ln.example_id for ln in ex.validation}
    by_split = {sp: {i for i, s in before.items() if s == sp} for sp in ("train", "validation", "unassigned")}
    assert by_split["validation"] <= val_ids and not by_split["train"] & val_ids  # the user's, as they are
    assert len(val_ids & by_split["unassigned"]) == 4  # 20% of each action's ten unassigned questions
    assert ex.moved == {"unassigned": 4} and ex.report["split_changes"]["from"] == {"unassigned": 4}
    assert _splits(store) == before  # building changes nothing; writing does, and records it


def test_a_near_duplicate_of_a_validation_question_follows_it(store):
    store.add_examples([NewExample(text=f"train question {i} about {a}", split="train", label=a)
                        for a in store.action_names() for i in range(3)])
    store.add_examples([NewExample(text="Where is my P60?", split="validation", label="get_payslip"),
                        NewExample(text="where is my p60", label="get_payslip")])
    pinned, twin = (e.id for e in store.page(limit=100)[-2:])
    ex = build_export(store, ExportOptions(val_fraction=0.2))
    assert {ln.example_id for ln in ex.validation} == {pinned, twin}  # the unassigned twin goes with the pinned one


def test_ids_round_trip_compactly():
    ids = list(range(1, 200_001)) + [10**9, 5]
    data = encode_ids(ids)
    assert decode_ids(data) == sorted(ids)
    assert len(data) < 4_000  # dense ids: deltas of 1 compress to almost nothing
    assert decode_ids(encode_ids([])) == []


def test_demo_export_records_the_split_it_makes(demo_store, tmp_path):
    result = export_dataset(demo_store, tmp_path / "out")
    (record,) = demo_store.export_records()
    assert record.moved == {"train": result.report["validation"]["examples"]}
    assert set(record.moved_ids) == set(record.validation_ids)
    assert len(record.train_ids) == result.report["train"]["examples"] and not set(record.train_ids) & set(
        record.validation_ids)
    assert demo_store.export_record(result.report["digest"]).id == record.id
    workspace_val = {e.id for e in demo_store.page(ExampleFilter(split="validation"), limit=1000)}
    assert workspace_val == set(record.validation_ids)
