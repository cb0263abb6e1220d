"""Review commands: `routelab accept` (bulk accept a model's proposals).

The test split is held out: without `--split test` no test question is accepted, and the
output says how many were left out (held-out labels accepted from a model grade it on its own answers)."""

from __future__ import annotations

from routelab.cli.output import add_json_flag, emit_json
from routelab.domain import SPLITS, BadInput


def register(sub, common) -> None:
    p = sub.add_parser(
        "accept", parents=[common],
        help="accept one model's proposals for unreviewed questions (each its own, undoable decision)",
    )
    p.add_argument("--model", "-m", required=True, help="whose proposals to accept")
    p.add_argument("--min-confidence", type=float, metavar="X", help="only proposals at or above this confidence (0-1)")
    p.add_argument("--source", help="only questions from this source")
    p.add_argument("--split", choices=SPLITS,
                   help="only questions in this split (the test split is left out unless named: --split test)")
    p.add_argument("--action", help="only questions whose proposal is this action")
    p.add_argument("--query", "-q", help="only questions matching this full-text search")
    p.add_argument("--dry-run", action="store_true", help="say how many would be accepted, change nothing")
    add_json_flag(p)
    p.set_defaults(func=cmd_accept)


def cmd_accept(ctx) -> int:
    from dataclasses import replace

    from routelab.services.review import bulk_accept, count_bulk
    from routelab.store import ExampleFilter

    a = ctx.args
    if a.min_confidence is not None and not 0.0 <= a.min_confidence <= 1.0:
        raise BadInput("--min-confidence must be between 0 and 1")
    store = ctx.store()
    if a.action is not None and a.action not in store.action_names():
        raise BadInput(f"unknown action {a.action!r}")
    if a.model not in store.proposal_models():
        models = ", ".join(store.proposal_models()) or "none yet (run routelab label)"
        raise BadInput(f"no proposals from model {a.model!r}; models with proposals: {models}")
    flt = ExampleFilter(source=a.source, split=a.split, action=a.action, query=a.query, model=a.model)
    held_out = count_bulk(store, replace(flt, split="test"), a.model, a.min_confidence) if a.split is None else 0
    note = f" ({held_out} test-split questions left out: --split test includes them)" if held_out else ""
    if a.dry_run:
        n = count_bulk(store, flt, a.model, a.min_confidence)
        if a.json:
            emit_json({"would_accept": n, "model": a.model, "min_confidence": a.min_confidence,
                       "test_left_out": held_out})
        else:
            print(f"would accept {n} proposals from {a.model}{note}")
        return 0
    result = bulk_accept(store, flt, a.model, a.min_confidence)
    if a.json:
        emit_json({"accepted": result.accepted, "model": a.model, "min_confidence": a.min_confidence,
                   "test_left_out": held_out})
    else:
        threshold = f" at confidence >= {a.min_confidence:g}" if a.min_confidence is not None else ""
        print(f"accepted {result.accepted} proposals from {a.model}{threshold}{note}")
    return 0
