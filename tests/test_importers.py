"""Importers: every supported format, idempotency, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routelab.store import ExampleFilter, Store
from tests.conftest import DATA

BANKING = DATA / "banking77" / "train_slice.csv"
CLINC = DATA / "clinc150" / "data_full_slice.json"


def snapshot(path: Path) -> bytes | None:
    """The workspace as bytes on disk (after a checkpoint), to prove nothing changed."""
    if not path.exists():
        return None
    with Store.open(path) as s:
        s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        dump = "\n".join(s.conn.iterdump())
    return dump.encode()


def test_banking_csv_creates_actions_and_is_idempotent(run_cli, db_path):
    r = run_cli("--db", db_path, "import", BANKING, "--source", "user", "--create-actions")
    assert r.code == 0, r
    assert "added 60" in r.out
    with Store.open(db_path) as s:
        assert len(s.action_names()) == 10
        assert s.count() == 60
        assert s.counts_by("status") == {"reviewed": 60}
        assert s.counts_by("source") == {"user": 60}
        # each file label is an import decision
        assert s.conn.execute("SELECT COUNT(*) FROM decisions WHERE kind = 'import'").fetchone()[0] == 60
        # created actions got readable descriptions and stable codes
        a = s.actions()[0]
        assert a.code == 1 and a.description == a.name.replace("_", " ")
    before = snapshot(db_path)
    r = run_cli("--db", db_path, "import", BANKING, "--source", "user", "--create-actions")
    assert r.code == 0 and "added 0" in r.out and "60 already in the workspace" in r.out
    assert snapshot(db_path) == before


def test_csv_with_split_and_tab_delimiter(store, tmp_path):
    from routelab.services.importing import import_file

    f = tmp_path / "q.tsv"
    f.write_text("question\taction\n where is my payslip \tget_payslip\nbook friday off\t\n")
    r = import_file(store, f, split="test")
    assert (r.added, r.labelled) == (2, 1)
    rows = store.page(ExampleFilter())
    assert [e.text for e in rows] == [" where is my payslip ", "book friday off"]  # stored as given
    assert {e.split for e in rows} == {"test"}
    assert rows[0].label == "get_payslip" and rows[1].label is None
    # identity is compared folded: the same words spaced otherwise are the same example
    f.write_text("question\nwhere  is my payslip\n")
    assert import_file(store, f).existing == 1


def test_clinc150_all_splits_and_out_of_scope(store):
    from routelab.services.importing import import_file
    from routelab.services.parsing import OOS_ACTION

    r = import_file(store, CLINC, create_actions=True)
    assert r.added == 20 + 5 + 5 + 9
    assert store.counts_by("split") == {"train": 23, "validation": 8, "test": 8}
    assert OOS_ACTION in store.action_names()
    assert store.count(ExampleFilter(action=OOS_ACTION)) == 9
    oos = next(a for a in store.actions() if a.name == OOS_ACTION)
    assert "out of scope" in oos.description.lower()


def test_json_list_and_jsonl(store, tmp_path):
    from routelab.services.importing import import_file

    j = tmp_path / "q.json"
    j.write_text(json.dumps([{"question": "what is the leave policy", "action": "get_policy"},
                             {"text": "hello there"}]))
    assert import_file(store, j).added == 2
    jl = tmp_path / "q.jsonl"
    jl.write_text('{"text": "my payslip is wrong", "label": "get_payslip", "source": "synthetic"}\n\n'
                  '{"question": "book me monday"}\n')
    r = import_file(store, jl)
    assert (r.added, r.labelled) == (2, 1)
    assert store.counts_by("source") == {"user": 3, "synthetic": 1}


def test_openai_chat_jsonl(store, tmp_path):
    from routelab.services.importing import import_file

    f = tmp_path / "chat.jsonl"
    lines = [
        {"messages": [{"role": "system", "content": "route"}, {"role": "user", "content": "I need time off"},
                      {"role": "assistant", "content": "Which dates?"}, {"role": "user", "content": "the 3rd to the 7th"},
                      {"role": "assistant", "content": '{"action": "book_holiday"}'}]},
        {"messages": [{"role": "user", "content": "payslip please"}]},
    ]
    f.write_text("\n".join(json.dumps(x) for x in lines))
    r = import_file(store, f)
    assert (r.added, r.labelled) == (2, 1)
    first = store.page(ExampleFilter())[0]
    assert first.text == "the 3rd to the 7th" and first.label == "book_holiday"
    assert [m.role for m in first.conversation] == ["user", "assistant"]
    # the same question with another history is another example; the same one is not
    assert import_file(store, f).added == 0


BAD_INPUTS = {
    "unknown format": ("q.txt", b"just some words\nmore words\n", "unknown format"),
    "missing text column": ("q.csv", b"foo,category\nx,card_arrival\n", "line 1: no text column"),
    "invalid json": ("q.jsonl", b'{"text": "ok"}\n{"text": "ok2"}\n{"text": broken\n', "line 3: invalid JSON"),
    "empty text": ("q.jsonl", b'{"text": "ok"}\n{"text": "   "}\n', 'line 2: field "text": empty text'),
    "unknown label": ("q.csv", b"text,label\nhi,not_an_action\n", "label not in the action catalog: not_an_action"),
    "non utf8": ("q.csv", b"text,label\nhello,get_policy\ncaf\xe9,get_policy\n", "line 3: not UTF-8"),
    "huge line": ("q.jsonl", b'{"text": "ok"}\n{"text": "' + b"a" * (50 << 20) + b'"}\n', "line 2: line longer than"),
    "huge csv field": ("q.csv", b"text\n" + b"a" * (50 << 20) + b"\n", "line 2: bad CSV"),
    "unterminated quote": ("q.csv", b'text,label\nfine,get_policy\n"unterminated,get_policy\nok,escalate\n',
                           "line 3: unterminated quote"),
    "wrong type": ("q.json", b'[{"text": 42}]', 'item 1: field "text": expected a string'),
    "bad chat": ("q.jsonl", b'{"messages": [{"role": "bot", "content": "x"}]}\n', 'field "messages[0]"'),
    # hostile: each was an internal error (exit 1) that left a new workspace behind
    "deep json": ("q.json", b"[" * 100_000 + b"]" * 100_000, "q.json: JSON nested too deeply"),
    "deep jsonl line": ("q.jsonl", b'{"text": "ok"}\n{"text": "fine"}\n{"text": ' + b"[" * 100_000 + b"}\n",
                        "line 3: JSON nested too deeply"),
    "deep first line": ("q.jsonl", b'{"text": ' + b"[" * 100_000 + b"\n", "line 1: JSON nested too deeply"),
    "deep answer": ("q.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                         {"role": "assistant", "content": "[" * 100_000}]}).encode(),
                    'line 1: field "messages[1].content": the assistant answer is not {"action": ...}'),
    "lone surrogate": ("q.jsonl", b'{"text": "ok"}\n{"text": "hi \\ud800 there"}\n',
                       "line 2: field \"text\": a lone surrogate ('\\ud800') is not text"),
    "surrogate label": ("q.json", b'[{"text": "hi", "label": "get_\\udc00"}]', 'item 1: field "label": a lone surrogate'),
    "surrogate source": ("q.jsonl", b'{"text": "hi", "source": "\\udfff"}\n', 'line 1: field "source": a lone surrogate'),
    "surrogate in chat": ("q.jsonl", b'{"messages": [{"role": "user", "content": "a\\ud800"}]}\n',
                          'line 1: field "messages[0].content": a lone surrogate'),
    "surrogate in conversation": ("q.jsonl", b'{"text": "hi", "conversation": [{"role": "user", "content": "\\ud800"}]}\n',
                                  'line 1: field "conversation[0].content": a lone surrogate'),
    "chat labels disagree": ("q.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                                  {"role": "assistant", "content": '{"action": "escalate"}'}],
                                                    "action": "get_policy"}).encode(),
                             "line 1: field \"action\": 'get_policy', but the assistant answer says 'escalate'"),
    "nul byte": ("q.csv", b"text\nhello\x00world\n", "line 2: not UTF-8 text (a NUL byte)"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(run_cli, store, tmp_path, case):
    name, content, expected = BAD_INPUTS[case]
    f = tmp_path / name
    f.write_bytes(content)
    store.close()
    before = snapshot(store.path)
    r = run_cli("--db", store.path, "import", f)
    assert r.code == 2, r
    assert r.err.count("\n") == 1 and "Traceback" not in r.err
    assert str(f) in r.err and expected in r.err, r.err
    assert snapshot(store.path) == before


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_leaves_no_new_workspace(run_cli, tmp_path, case):
    name, content, expected = BAD_INPUTS[case]
    f = tmp_path / name
    f.write_bytes(content)
    db = tmp_path / "new.db"
    r = run_cli("--db", db, "import", f)
    assert r.code == 2 and r.err.count("\n") == 1 and expected in r.err, r
    assert not list(tmp_path.glob("new.db*"))


def test_one_json_document_too_big_to_parse_in_memory_is_refused(run_cli, tmp_path):
    f = tmp_path / "q.json"
    with f.open("w") as out:
        out.write("[" + '{"text": "a question"}, ' * 100_000)
        out.truncate(300 << 20)  # sparse: 300 MiB on paper, nothing on disk
    db = tmp_path / "new.db"
    r = run_cli("--db", db, "import", f)
    assert r.code == 2 and r.err.count("\n") == 1, r
    assert f"{f}: over 256 MiB, too big for one JSON document (write one question per line: JSONL)" in r.err
    assert not db.exists()


def test_missing_file_and_fresh_workspace_not_created(run_cli, tmp_path):
    db = tmp_path / "new.db"
    r = run_cli("--db", db, "import", tmp_path / "nope.csv")
    assert r.code == 2 and "nope.csv: no such file" in r.err
    assert not db.exists()
    # a label problem is found after opening the workspace: the new file is removed again
    f = tmp_path / "q.csv"
    f.write_text("text,label\nhi,unknown_action\n")
    r = run_cli("--db", db, "import", f)
    assert r.code == 2 and not db.exists()


def test_workspace_that_is_not_sqlite_is_never_touched(run_cli, tmp_path):
    db = tmp_path / "notes.db"
    db.write_bytes(b"my precious notes\n" * 10)
    r = run_cli("--db", db, "actions", "list")
    assert r.code == 2 and "not a routelab workspace" in r.err and r.err.count("\n") == 1
    assert db.read_bytes() == b"my precious notes\n" * 10
    assert not Path(f"{db}-wal").exists()


def test_workspace_with_newer_schema_is_refused(run_cli, db_path):
    Store.open(db_path).close()
    import sqlite3

    c = sqlite3.connect(db_path)
    c.execute("PRAGMA user_version = 999")
    c.close()
    r = run_cli("--db", db_path, "actions", "list")
    assert r.code == 2 and "newer than this routelab understands" in r.err


def test_create_actions_rejects_unusable_names(run_cli, db_path, tmp_path):
    f = tmp_path / "q.csv"
    f.write_text('text,label\nhi,"two words"\n')
    r = run_cli("--db", db_path, "import", f, "--create-actions")
    assert r.code == 2 and "cannot be an action name" in r.err
