"""Guard rails an operator relies on (issue 11: "Misleading answers"): a question made only of
separators is no question, a second paid fine-tune on the very same data is asked about
first, and skipping or flagging a human label says it leaves the training data."""

from __future__ import annotations

import pytest

# ---------------------------------------------------------------------------- route ' | | '


@pytest.mark.parametrize("raw", ["", "   ", " | | ", "|", " | ", "| | |", " |  | "])
def test_route_refuses_a_question_of_nothing_but_separators(demo_store, run_cli, raw):
    r = run_cli("--db", demo_store.path, "route", raw, "--model", "local")
    assert r.code == 2 and "type a question" in r.err and r.out == "", r


def test_a_trailing_separator_leaves_the_question():
    from routelab.services.playground import parse_question

    assert parse_question("where is my payslip | | ") == ("where is my payslip", None)
    assert parse_question("a || b") == ("a || b", None)  # only ' | ' separates turns
