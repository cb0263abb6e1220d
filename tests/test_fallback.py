"""The fallback action (out of scope): migration 6, the store, the CLI, imports that set it."""

from __future__ import annotations

import json
import sqlite3

import pytest

from routelab.domain import Action, BadInput
from routelab.store import Store
from routelab.store.schema import LATEST, MIGRATIONS
from tests.conftest import DATA
from tests.test_importers import snapshot

CLINC = DATA / "clinc150" / "data_full_slice.json"


def _old_workspace(path, version: int = 5) -> None:
    """A workspace file as routelab made it before migration 6, with a catalog and a question."""
    c = sqlite3.connect(path)
    for migration in MIGRATIONS[:version]:
        for statement in migration:
            c.execute(statement)
    c.execute(f"PRAGMA user_version = {version}")
    c.execute("INSERT INTO actions (name, description, code, created_at) VALUES ('oos', 'out of scope', 7, 'now')")
    c.execute("INSERT INTO actions (name, description, code, created_at) VALUES ('get_policy', 'policy', 8, 'now')")
    c.commit()
    c.close()


def test_migration_6_upgrades_an_old_workspace_and_keeps_its_catalog(tmp_path):
    path = tmp_path / "old.db"
    _old_workspace(path)
    with Store.open(path) as s:
        assert s.schema_version == LATEST >= 6
        assert [(a.name, a.code, a.fallback) for a in s.actions()] == [("oos", 7, False), ("get_policy", 8, False)]
        assert s.fallback_action() is None
        assert s.set_fallback("oos") is None
    with Store.open(path) as s:  # the migrated file passes the schema check and keeps the flag
        assert s.fallback_action() == "oos"
        assert [a.fallback for a in s.actions()] == [True, False]


def test_one_fallback_per_catalog_marking_one_clears_the_other(store):
    assert store.fallback_action() is None
    store.upsert_actions([Action(name="oos", description="none of these", fallback=True)])
    assert store.fallback_action() == "oos"
    assert store.set_fallback("escalate") == "oos"
    assert [a.name for a in store.actions() if a.fallback] == ["escalate"]
    # an update of another action without the flag leaves the fallback alone
    added, updated = store.upsert_actions([Action(name="oos", description="out of scope")])
    assert (added, updated) == ([], ["oos"]) and store.fallback_action() == "escalate"
    # flagging a known action is an update
    assert store.upsert_actions([Action(name="oos", fallback=True)]) == ([], ["oos"])
    assert store.fallback_action() == "oos"
    with pytest.raises(BadInput, match="only one action"):
        store.upsert_actions([Action(name="x", fallback=True), Action(name="y", fallback=True)])
    assert "x" not in store.action_names()  # refused whole
    with pytest.raises(BadInput, match="no action named 'nope'"):
        store.set_fallback("nope")
    assert store.set_fallback(None) == "oos" and store.fallback_action() is None
    # the schema itself refuses a second one, whatever writes the file
    store.set_fallback("oos")
    with pytest.raises(sqlite3.IntegrityError):
        store.conn.execute("UPDATE actions SET fallback = 1 WHERE name = 'escalate'")


def test_cli_add_set_and_list_the_fallback(run_cli, db_path):
    assert run_cli("--db", db_path, "actions", "add", "get_policy", "-d", "policy questions").code == 0
    r = run_cli("--db", db_path, "actions", "add", "oos", "--description", "none of the others", "--fallback")
    assert r.code == 0 and r.out.strip() == "added: oos (code 2), the fallback"
    r = run_cli("--db", db_path, "actions", "list")
    line = next(x for x in r.out.splitlines() if " oos " in x)
    assert "fallback" in line and "fallback" not in next(x for x in r.out.splitlines() if "get_policy" in x)
    listed = json.loads(run_cli("--db", db_path, "actions", "list", "--json").out)
    assert [(a["name"], a["fallback"]) for a in listed] == [("get_policy", False), ("oos", True)]

    r = run_cli("--db", db_path, "actions", "set", "get_policy", "--fallback")
    assert r.code == 0 and r.out.strip() == "updated: get_policy is now the fallback (was oos)"
    r = run_cli("--db", db_path, "actions", "set", "oos", "--no-fallback")
    assert r.code == 0 and r.out.strip() == "unchanged: oos is not the fallback (get_policy is)"
    r = run_cli("--db", db_path, "actions", "set", "get_policy", "--no-fallback")
    assert r.code == 0 and "no longer the fallback" in r.out
    with Store.open(db_path) as s:
        assert s.fallback_action() is None

    before = snapshot(db_path)
    for args, message in [(("nope", "--fallback"), "no action named 'nope'"),
                          (("oos",), "one of the arguments --fallback --no-fallback is required"),
                          (("oos", "--fallback", "--no-fallback"), "not allowed with")]:
        r = run_cli("--db", db_path, "actions", "set", *args)
        assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1
    assert snapshot(db_path) == before


def test_actions_set_does_not_create_a_workspace(run_cli, tmp_path):
    r = run_cli("--db", tmp_path / "typo.db", "actions", "set", "oos", "--fallback")
    assert r.code == 2 and not (tmp_path / "typo.db").exists()


def test_actions_import_reads_the_fallback_field(run_cli, db_path, tmp_path):
    f = tmp_path / "actions.json"
    f.write_text(json.dumps([{"name": "get_policy", "description": "policy"},
                             {"name": "oos", "description": "nothing else", "fallback": True}]))
    r = run_cli("--db", db_path, "actions", "import", f)
    assert r.code == 0 and r.out.strip() == "2 added, 0 updated, 0 unchanged; oos is the fallback"
    with Store.open(db_path) as s:
        assert s.fallback_action() == "oos"
    before = snapshot(db_path)
    for items, message in [
        ([{"name": "a", "fallback": "yes"}], 'item 1: field "fallback": expected true or false'),
        ([{"name": "a", "fallback": True}, {"name": "b", "fallback": True}],
         'item 2: field "fallback": only one action can be the fallback'),
    ]:
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(items))
        r = run_cli("--db", db_path, "actions", "import", bad)
        assert r.code == 2 and message in r.err, r
    assert snapshot(db_path) == before


def test_clinc150_import_that_creates_oos_makes_it_the_fallback(run_cli, db_path):
    r = run_cli("--db", db_path, "import", CLINC, "--create-actions")
    assert r.code == 0, r
    with Store.open(db_path) as s:
        assert s.fallback_action() == "oos"
        assert [a.name for a in s.actions() if a.fallback] == ["oos"]


def test_clinc150_import_leaves_a_chosen_fallback_alone(store):
    from routelab.services.importing import import_file

    store.set_fallback("escalate")
    r = import_file(store, CLINC, create_actions=True)
    assert "oos" in r.actions_created
    assert store.fallback_action() == "escalate"


def test_an_oos_label_in_another_format_is_just_an_action(store, tmp_path):
    from routelab.services.importing import import_file

    f = tmp_path / "q.csv"
    f.write_text("text,label\nwhat is the weather on mars,oos\n")
    import_file(store, f, create_actions=True)
    assert "oos" in store.action_names() and store.fallback_action() is None


def test_the_openai_teacher_gets_the_fallback_in_its_prompt(store, fake_openai):
    from routelab.config import Settings
    from routelab.domain import NewExample
    from routelab.providers import registry
    from routelab.services.labeling import label

    store.upsert_actions([Action(name="oos", description="none of the other actions", fallback=True)])
    store.add_examples([NewExample(text="what is the weather on mars"), NewExample(text="my payslip is wrong")])
    teacher = registry.get("openai").router("gpt-4.1", store=None, settings=Settings(), backoff=0.01, timeout=5.0)
    assert label(store, teacher).labelled == 2
    for body in fake_openai.chat_requests():
        system = body["messages"][0]["content"]
        assert "- oos: none of the other actions" in system  # in the catalog like any action
        assert system.count("- ") == 5
        assert system.endswith("If no other action fits the message, answer oos.")
        assert "oos" in body["response_format"]["json_schema"]["schema"]["properties"]["action"]["enum"]
    # without a fallback the prompt is the one it always was
    store.set_fallback(None)
    store.add_examples([NewExample(text="book me friday off")])
    before = len(fake_openai.chat_requests())
    assert label(store, teacher).labelled == 1
    assert "If no other action fits" not in fake_openai.chat_requests()[before]["messages"][0]["content"]


def test_the_exported_router_prompt_names_the_fallback():
    from routelab.providers.prompts import router_system_prompt

    catalog = [Action(name="get_policy", description="policy", code=1), Action(name="oos", code=2)]
    plain = router_system_prompt(catalog)
    assert "- oos" in plain and "If no other action fits" not in plain
    catalog[1].fallback = True
    flagged = router_system_prompt(catalog)
    assert flagged.replace("\n\nIf no other action fits the user's last message, answer oos.", "") == plain
