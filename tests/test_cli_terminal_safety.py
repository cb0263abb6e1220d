"""Nothing the CLI prints lets untrusted text drive the terminal (issue 11, "Terminal escapes")."""

from __future__ import annotations

import json

OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # a clipboard write
CLEAR = "\x1b[2J\x1b[H"  # clear the screen
C1_CSI = "\x9b31m"  # the one-byte CSI
RLO = "\u202e"  # right-to-left override


def _hostile_actions(tmp_path, db_path, run_cli):
    f = tmp_path / "actions.json"
    f.write_text(json.dumps([
        {"name": "get_policy", "description": f"policy{OSC52} questions{CLEAR}"},
        {"name": "escalate", "description": f"a human {C1_CSI}now {RLO}txt.exe"},
    ]))
    assert run_cli("--db", db_path, "init", "--actions", f).code == 0


def _no_controls(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text
    assert RLO not in text


def test_actions_list_strips_control_characters(tmp_path, db_path, run_cli):
    _hostile_actions(tmp_path, db_path, run_cli)
    r = run_cli("--db", db_path, "actions", "list")
    assert r.code == 0
    _no_controls(r.out)
    assert "policy]52;c;ZWNobyBwd25lZA== questions" in r.out  # the words stay, the escape goes
    assert "<U+202E>txt.exe" in r.out  # a bidi override is shown, not applied


def test_json_output_is_the_same_value_without_raw_controls(tmp_path, db_path, run_cli):
    _hostile_actions(tmp_path, db_path, run_cli)
    r = run_cli("--db", db_path, "actions", "list", "--json")
    assert r.code == 0
    _no_controls(r.out)
    described = {a["name"]: a["description"] for a in json.loads(r.out)}
    assert described["escalate"] == f"a human {C1_CSI}now {RLO}txt.exe"  # lossless for scripts


def test_error_naming_an_unknown_label_is_clean(tmp_path, db_path, run_cli):
    _hostile_actions(tmp_path, db_path, run_cli)
    q = tmp_path / "q.csv"
    q.write_text(f'text,label\nhello there,"evil{OSC52}{CLEAR}"\n')
    r = run_cli("--db", db_path, "import", q)
    assert r.code == 2 and r.err.count("\n") == 1
    _no_controls(r.err)
    assert "evil" in r.err
