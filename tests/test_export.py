"""Export: labels, the split (stratified, no leakage, deterministic), the cookbook checks, the report."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from routelab.domain import BadInput, NewExample, Proposal
from routelab.services.export import (
    ExportOptions,
    build_export,
    check_chat_lines,
    check_jsonl_file,
    count_tokens,
    default_epochs,
    export_dataset,
    near_key,
)
from routelab.store import ExampleFilter


def _lines(path):
    return [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines()]


def _user_texts(rows):
    return [[m for m in r["messages"] if m["role"] == "user"][-1]["content"] for r in rows]


def _action(row):
    return json.loads(row["messages"][-1]["content"])["action"]


def test_export_writes_chat_jsonl_with_report(demo_store, tmp_path):
    result = export_dataset(demo_store, tmp_path / "out")
    train, val = _lines(result.train_path), _lines(result.validation_path)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["train"]["examples"] == len(train) and report["validation"]["examples"] == len(val)
    names = set(demo_store.action_names())
    for row in train + val:
        roles = [m["role"] for m in row["messages"]]
        assert roles[0] == "system" and roles[-2:] == ["user", "assistant"]
        assert "Actions:" in row["messages"][0]["content"]
        assert all(n in row["messages"][0]["content"] for n in names)
        assert _action(row) in names
    # labels: people where they labelled, the teacher (the demo's local proposals) for the rest
    assert report["labels"]["human"] == 191 and report["labels"]["teacher"] == 109
    assert report["teacher"] == "local"
    # the estimate follows the cookbook rule and the price table
    assert report["epochs"] == default_epochs(len(train)) == 3
    assert report["billed_tokens"] == 3 * report["train"]["tokens"]
    assert report["estimated_cost"] == pytest.approx(report["billed_tokens"] * 5.0 / 1e6, abs=1e-3)
    # a conversation keeps its earlier turns
    assert any(len(r["messages"]) > 3 for r in train + val)
    assert not list((tmp_path / "out").glob(".*tmp"))  # atomic writes leave nothing behind


def test_test_split_and_near_duplicates_never_exported(demo_store, tmp_path):
    test_texts = [e.text for e in demo_store.page(ExampleFilter(split="test"), limit=1000)]
    # a near-identical copy of a test question sneaks into the train pool, with a human label
    sneaky = test_texts[0].upper().rstrip("?.!") + " !!"
    demo_store.add_examples([NewExample(text=sneaky, split="train", label="escalate")])
    result = export_dataset(demo_store, tmp_path / "out")
    exported = _user_texts(_lines(result.train_path) + _lines(result.validation_path))
    test_keys = {near_key(t) for t in test_texts}
    assert not test_keys & {near_key(t) for t in exported}
    assert result.report["left_out"]["same_as_a_test_question"] == 1
    assert result.report["left_out"]["test_split"] == len(test_texts)


def test_split_is_stratified_grouped_and_deterministic(demo_store, tmp_path):
    # near-identical pairs must land on the same side
    pairs = [("Can I book Friday off please?", "can i book friday off please"),
             ("Where is my P60 for last year", "where is my p60 for last year??")]
    demo_store.add_examples([NewExample(text=t, split="train", label=a)
                             for (x, y), a in zip(pairs, ["book_holiday", "get_payslip"]) for t in (x, y)])
    a = build_export(demo_store, ExportOptions(seed=7))
    b = build_export(demo_store, ExportOptions(seed=7))
    c = build_export(demo_store, ExportOptions(seed=8))
    assert a.data("train") == b.data("train") and a.data("validation") == b.data("validation")
    assert a.data("validation") != c.data("validation")
    train_keys = {near_key(t) for t in _user_texts([{"messages": ln.messages} for ln in a.train])}
    val_keys = {near_key(t) for t in _user_texts([{"messages": ln.messages} for ln in a.validation])}
    assert not train_keys & val_keys
    # stratified: every action gets about 20% of its examples in validation
    tr, va = Counter(ln.action for ln in a.train), Counter(ln.action for ln in a.validation)
    for action in demo_store.action_names():
        total = tr[action] + va[action]
        assert abs(va[action] - 0.2 * total) <= 2, (action, tr[action], va[action])


def test_validation_examples_stay_and_are_remembered(demo_store, tmp_path):
    pool = demo_store.page(ExampleFilter(split="train", status="reviewed"), limit=5)
    demo_store.set_split([pool[0].id], "validation")
    result = export_dataset(demo_store, tmp_path / "out", ExportOptions(val_fraction=0.2))
    val_ids = {ln.example_id for ln in build_export(demo_store, ExportOptions()).validation}
    assert pool[0].id in val_ids
    # the export recorded its validation split, so a different seed keeps the same validation set
    again = build_export(demo_store, ExportOptions(seed=99))
    assert {ln.example_id for ln in again.validation} == val_ids
    assert demo_store.count(ExampleFilter(split="validation")) == result.report["validation"]["examples"]


def test_skipped_flagged_and_reviewed_only(demo_store):
    unlabelled = demo_store.page(ExampleFilter(status="unreviewed", split="train"), limit=3)
    demo_store.decide(unlabelled[0].id, "skip")
    demo_store.decide(unlabelled[1].id, "flag")
    ex = build_export(demo_store)
    ids = {ln.example_id for ln in ex.train + ex.validation}
    assert unlabelled[0].id not in ids and unlabelled[1].id not in ids and unlabelled[2].id in ids
    assert ex.report["left_out"]["skipped"] == 1 and ex.report["left_out"]["flagged"] == 1
    only = build_export(demo_store, ExportOptions(reviewed_only=True))
    assert only.report["labels"]["teacher"] == 0 and only.report["labels"]["human"] == 191
    # an override beats the teacher's proposal
    demo_store.decide(unlabelled[2].id, "override", "escalate")
    line = next(ln for ln in build_export(demo_store).train + build_export(demo_store).validation
                if ln.example_id == unlabelled[2].id)
    assert line.action == "escalate" and line.origin == "human"


def test_teacher_option_and_invalid_proposals(store):
    texts = [f"question number {i} about payslips" for i in range(12)]
    store.add_examples([NewExample(text=t, split="train") for t in texts])
    ids = [e.id for e in store.page(limit=100)]
    names = store.action_names()
    store.add_proposals([Proposal(example_id=i, model="gpt-4.1", action=names[k % 4]) for k, i in enumerate(ids)])
    store.add_proposals([Proposal(example_id=ids[0], model="other", action=None, valid=False)])
    ex = build_export(store, ExportOptions(val_fraction=0.0))
    assert ex.report["teacher"] == "gpt-4.1" and ex.report["labels"]["teacher"] == 12
    with pytest.raises(BadInput, match="no proposals from teacher"):
        build_export(store, ExportOptions(teacher="nope"))
    with pytest.raises(BadInput, match="only 0 training"):  # its one answer was invalid
        build_export(store, ExportOptions(teacher="other", val_fraction=0.0))


def test_bad_input_is_refused_before_anything_is_written(store, tmp_path, run_cli, db_path):
    out = tmp_path / "out"
    store.add_examples([NewExample(text=f"payslip question {i}", split="train", label="get_payslip") for i in range(4)])
    store.add_examples([NewExample(text=f"book leave {i}", split="train", label="book_holiday") for i in range(4)])
    r = run_cli("--db", db_path, "export", "--out", out)
    assert r.code == 2 and "only 6 training examples" in r.err and "at least 10" in r.err
    assert not out.exists()
    store.add_examples([NewExample(text=f"payslip question {i}", split="train", label="get_payslip") for i in range(4, 6)])
    store.add_examples([NewExample(text=f"book leave {i}", split="train", label="book_holiday") for i in range(4, 6)])
    r = run_cli("--db", db_path, "export", "--out", out, "--val-fraction", "0")
    assert r.code == 2 and "no training examples for action(s) get_policy, escalate" in r.err
    store.add_examples([NewExample(text=f"policy on thing {i}", split="train", label="get_policy") for i in range(3)])
    store.add_examples([NewExample(text=f"I need a human {i}", split="train", label="escalate") for i in range(3)])
    with pytest.raises(BadInput, match="over the 50-token limit"):
        build_export(store, ExportOptions(token_limit=50))
    r = run_cli("--db", db_path, "export", "--out", out, "--val-fraction", "1.5")
    assert r.code == 2 and "--val-fraction" in r.err
    assert not out.exists()
    r = run_cli("--db", db_path, "export", "--out", out, "--json")
    assert r.code == 0, r
    assert json.loads(r.out)["train"]["examples"] + json.loads(r.out)["validation"]["examples"] == 18


def test_cookbook_checks():
    ok = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                       {"role": "assistant", "content": "a"}]}
    rows = [
        ok,
        [1, 2],
        {"nope": []},
        {"messages": [{"role": "user"}]},
        {"messages": [{"role": "user", "content": "u", "colour": "red"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "wizard", "content": "u"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": None}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "u"}]},
        {"messages": [{"role": "user", "content": "word " * 100}, {"role": "assistant", "content": "a"}]},
    ]
    errors = check_chat_lines(rows, token_limit=60)
    assert errors == {
        "data_type": [2], "missing_messages_list": [3], "message_missing_key": [4],
        "message_unrecognized_key": [5], "unrecognized_role": [6], "missing_content": [7],
        "example_missing_assistant_message": [8], "over_token_limit": [9],
    }
    assert count_tokens(ok["messages"]) == 3 + 3 * (3 + 2)  # each role and content is one token here
    assert (default_epochs(10), default_epochs(20), default_epochs(40), default_epochs(1000),
            default_epochs(20_000)) == (10, 5, 3, 3, 1)


def test_check_file_on_disk(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}\n'
                    "not json\n" + json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
    with pytest.raises(BadInput) as e:
        check_jsonl_file(path)
    assert "invalid json on 1 line(s) (2)" in str(e.value)
    assert "example missing assistant message on 1 line(s) (3)" in str(e.value)


def test_identical_export_is_reused(demo_store, tmp_path):
    first = export_dataset(demo_store, tmp_path / "out")
    mtime = first.train_path.stat().st_mtime_ns
    second = export_dataset(demo_store, tmp_path / "out")
    assert second.reused and second.train_path.stat().st_mtime_ns == mtime
    assert second.report["digest"] == first.report["digest"]


def test_export_cli_prints_the_report(demo_store, tmp_path, run_cli):
    r = run_cli("--db", demo_store.path, "export", "--out", tmp_path / "out", "--seed", "3", "--reviewed-only")
    assert r.code == 0, r
    assert "labels: 191 from people, 0 from the teacher" in r.out
    assert "billed tokens" in r.out and "$" in r.out and "get_payslip" in r.out
    assert "wrote train.jsonl, validation.jsonl and report.json" in r.out
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["seed"] == 3 and report["reviewed_only"] and report["left_out"]["unlabelled"] == 109


def test_exported_files_are_ordinary_files(demo_store, tmp_path):
    import os



    out = tmp_path / "out"
    export_dataset(demo_store, out)
    mask = os.umask(0)
    os.umask(mask)
    for name in ("train.jsonl", "validation.jsonl", "report.json"):
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~mask


def test_streamed_token_counts_are_the_count_functions(demo_store, tmp_path):
    """Tokens are counted per message as the lines stream; the sums equal count_tokens of each whole line."""
    demo_store.add_examples([NewExample(text="what does <|endoftext|> mean in my payslip?", split="train",
                                        label="get_payslip")])  # spelled like a special token: plain text
    result = export_dataset(demo_store, tmp_path / "out")
    for part, path in (("train", result.train_path), ("validation", result.validation_path)):
        counts = [count_tokens(row["messages"]) for row in _lines(path)]
        assert result.report[part]["tokens"] == sum(counts)
        assert result.report[part]["max_example_tokens"] == max(counts)
    assert check_jsonl_file(result.train_path, result.report["token_limit"]) == result.report["train"]["examples"]


def test_two_id_ranges_at_once_give_the_same_files(demo_store, monkeypatch):
    """A big workspace is scanned in two halves, one in a worker process: the files are the same."""
    import routelab.services.export_scan as scan

    one = build_export(demo_store, ExportOptions(seed=4))
    monkeypatch.setattr(scan, "PARALLEL_MIN", 0)
    two = build_export(demo_store, ExportOptions(seed=4))
    assert two.digest == one.digest and two.report == one.report
    assert two.data("train") == one.data("train") and two.data("validation") == one.data("validation")
    assert [ln.example_id for ln in two.train] == [ln.example_id for ln in one.train]


def test_near_keys_hash_the_same_on_the_fast_path():
    from hashlib import blake2b

    from routelab.services.export_scan import key_hash

    for text in ["Can I book Friday off?", "  ?!  ", "", "Ünïcödé — straße", "tab\tand\nnew line", "ALL_CAPS_42",
                 "emoji 🎉 ok", "日本語のテキスト"]:
        assert key_hash(text) == blake2b(near_key(text).encode(), digest_size=8).digest(), text


def test_check_file_on_disk_counts_every_bad_line(tmp_path):
    good = {"messages": [{"role": "system", "content": "route " * 50}, {"role": "user", "content": "u"},
                         {"role": "assistant", "content": "a"}]}
    path = tmp_path / "train.jsonl"
    rows = [good] * 3 + [{"messages": [{"role": "user", "content": "x"}]}] * 7 + [good]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    with pytest.raises(BadInput) as e:
        check_jsonl_file(path)
    assert "example missing assistant message on 7 line(s) (4, 5, 6, 7, 8 ...)" in str(e.value)
    path.write_text(json.dumps(good) + "\n")
    limit = count_tokens(good["messages"])  # the repeated system prompt is counted once, the same
    assert check_jsonl_file(path, limit) == 1
    with pytest.raises(BadInput, match="over token limit on 1 line"):
        check_jsonl_file(path, limit - 1)


def test_a_line_separator_inside_a_message_is_not_a_line_break(demo_store, tmp_path):
    """U+2028 is kept raw in JSON (ensure_ascii=False); only "\\n" ends a line of the file."""
    from routelab.domain import Message

    history = [Message(role="user", content="my payslip\u2028is wrong"), Message(role="assistant", content="Which month?")]
    demo_store.add_examples([NewExample(text="May", conversation=history, split="train", label="get_payslip")])
    result = export_dataset(demo_store, tmp_path / "out", ExportOptions(val_fraction=0.0))
    assert "\u2028" in result.train_path.read_text(encoding="utf-8")
    assert check_jsonl_file(result.train_path) == result.report["train"]["examples"]
    ex = build_export(demo_store, ExportOptions(val_fraction=0.0))
    line = next(ln for ln in ex.train if ln.messages[-2]["content"] == "May")
    assert line.messages[1]["content"] == "my payslip\u2028is wrong" and line.action == "get_payslip"


def test_a_line_never_has_more_tokens_than_bytes():
    """Why check_jsonl_file counts only lines longer than the limit: tokens <= bytes of the line."""
    import random

    rng = random.Random(3)
    alphabet = ["a", "é", "日", "🎉", " ", "\n", '"', "\\", "<|endoftext|>", "0"]
    for _ in range(300):
        messages = [{"role": rng.choice(["system", "user", "assistant"]),
                     "content": "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))}
                    for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:
            messages[0]["name"] = rng.choice(["x", "日本"])
        row = {"messages": messages}
        for line in (json.dumps(row, ensure_ascii=False), json.dumps(row, separators=(",", ":"), ensure_ascii=False)):
            assert count_tokens(messages) <= len(line.encode("utf-8")), line
