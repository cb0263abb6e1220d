"""The workspace commands as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from routelab.store import Store


def test_init_with_actions_and_list(run_cli, db_path, tmp_path):
    f = tmp_path / "actions.json"
    f.write_text(json.dumps([{"name": "get_policy", "description": "policy questions", "code": 10},
                             {"name": "escalate", "description": "a human"}]))
    r = run_cli("--db", db_path, "init", "--actions", f)
    assert r.code == 0 and "2 added" in r.out
    r = run_cli("--db", db_path, "actions", "list", "--json")
    assert [(a["name"], a["code"]) for a in json.loads(r.out)] == [("get_policy", 10), ("escalate", 11)]
    r = run_cli("actions", "add", "book_holiday", "-d", "time off", "--db", db_path)
    assert r.code == 0 and "code 12" in r.out
    r = run_cli("--db", db_path, "actions", "import", f)
    assert r.code == 0 and "0 added" in r.out


def test_bad_actions_file(run_cli, db_path, tmp_path):
    f = tmp_path / "actions.json"
    f.write_text('[{"name": "ok"}, {"description": "no name"}]')
    r = run_cli("--db", db_path, "init", "--actions", f)
    assert r.code == 2 and 'item 2: field "name": missing' in r.err
    assert not db_path.exists()


def test_usage_error_is_one_line(run_cli):
    r = run_cli("import")
    assert r.code == 2 and r.err.count("\n") == 1 and "routelab" in r.err


def test_demo_creates_workspace_offline(run_cli, tmp_path):
    r = run_cli("demo", "--no-open")
    assert r.code == 0
    path = tmp_path / "userdata" / "hr-demo.db"
    assert r.out.strip() == str(path)
    with Store.open(path) as s:
        assert s.action_names() == ["get_policy", "book_holiday", "get_payslip", "escalate"]
        counts = s.counts_by("source")
        assert counts["synthetic"] > 100 and counts["user"] > 100
        assert s.counts_by("split")["test"] >= 50
        assert s.count() >= 300
    assert run_cli("demo", "--no-open").code == 0  # second time: opens the same workspace


def test_python_dash_m_and_no_tty(tmp_path):
    env = {**os.environ, "ROUTELAB_DB": str(tmp_path / "x.db")}
    r = subprocess.run([sys.executable, "-m", "routelab", "--version"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.startswith("routelab ")
    r = subprocess.run([sys.executable, "-m", "routelab"], capture_output=True, text=True, env=env,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "needs a terminal" in r.stderr and "Traceback" not in r.stderr


def test_a_mistyped_workspace_path_is_an_error_not_a_new_workspace(run_cli, tmp_path):
    db = tmp_path / "nope" / "none.db"
    for args in (["actions", "list"], ["label"], ["eval"], ["jobs", "list"], ["export", "--out", tmp_path / "o"]):
        r = run_cli("--db", db, *args)
        assert r.code == 2 and "no workspace here" in r.err, (args, r)
    assert not db.exists() and not db.parent.exists()
