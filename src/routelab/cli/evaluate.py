"""Evaluation commands: `eval` (the teacher-vs-student table) and `route` (try one question)."""

from __future__ import annotations

import sys

from routelab.cli.output import ProgressPrinter, add_json_flag, confirmer, emit_json, table
from routelab.domain import BadInput


def register(sub, common) -> None:
    p = sub.add_parser(
        "eval", parents=[common],
        help="evaluate routers on the human-labelled questions of a split (accuracy with 95%% intervals, "
             "improvement over the base, macro-F1, latency, cost)",
        description="Evaluates each model on the questions of the split that have a human label. "
                    "Accuracy on synthetic, user (every other source) and all questions, with a 95% Wilson "
                    "interval; improvement over the base model (--base, default the first model: the zero-shot "
                    "baseline) on the same questions, with a 95% interval; macro-F1, per-action precision and "
                    "recall, confusions, expected calibration error (ECE), latency p50/p95, cost per 1,000 "
                    "routes, invalid answers; when the catalog has a fallback action (actions set NAME "
                    "--fallback), in-scope accuracy and out-of-scope recall and precision. Predictions "
                    "are stored as proposals and reused; results are stored (see --show). Default models: "
                    "local-zero-shot, local, every local trained model, and with OPENAI_API_KEY the OpenAI "
                    "teacher, every fine-tuned model and its base model.",
    )
    p.add_argument("--models", metavar="A,B", help="comma-separated model ids, NAME/MODEL for a model on endpoint NAME "
                                                   "(default: every model that can run here)")
    p.add_argument("--split", default="test", choices=["test", "validation", "train", "unassigned"],
                   help="split to evaluate on (default: test)")
    p.add_argument("--base", metavar="MODEL", help="model the others are compared with (default: the first one)")
    p.add_argument("--show", action="store_true", help="show the stored results again, without running anything")
    p.add_argument("--details", action="store_true", help="also print per-action precision/recall and confusions")
    p.add_argument("--yes", action="store_true", help="do not ask before spending above the spend limit")
    add_json_flag(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("route", parents=[common],
                       help="route one question with every model side by side (earlier turns: 'a | b | question')")
    p.add_argument("text", help="the question; earlier turns of a conversation go before it, separated by ' | '")
    p.add_argument("--model", metavar="M", help="model id (NAME/MODEL: on endpoint NAME), or several comma-separated "
                                                "(default: every model that can run here)")
    add_json_flag(p)
    p.set_defaults(func=cmd_route)


# ---------------------------------------------------------------------------- eval


def cmd_eval(ctx) -> int:
    from routelab.services import eval_caveats
    from routelab.services import evaluation as ev

    a = ctx.args
    store = ctx.store()
    if a.show:
        rows = ev.latest(store, a.split)
        if a.models:
            wanted = ev.parse_models(a.models) or []
            rows = [r for r in rows if r.model in wanted]
        if not rows:
            raise BadInput(f"no stored evaluation on the {a.split} split yet: run `routelab eval --split {a.split}`")
        changes = eval_caveats.changed_test_labels(store)
        if a.json:
            emit_json({"split": a.split, "n": max(r.n for r in rows), "base": rows[0].details.get("base"),
                       "job_id": None, "models": [ev.to_json(r) for r in rows], "errors": {},
                       **eval_caveats.changed_test_labels_json(changes)})
        else:
            _print_table(rows, a.split, job_id=None, details=a.details)
            print(eval_caveats.changed_test_labels_line(changes))
        return 0

    models = ev.parse_models(a.models)
    progress = ProgressPrinter("evaluate", quiet=a.json)
    try:
        run = ev.evaluate(store, models, split=a.split, base=a.base, settings=ctx.settings(), progress=progress,
                          confirm=confirmer(a.yes, "evaluating", ctx.settings().spend_limit))
    finally:
        progress.close()
    changes = eval_caveats.changed_test_labels(store)
    if a.json:
        emit_json({"split": run.split, "n": run.n, "base": run.base, "job_id": run.job_id,
                   "models": [ev.to_json(r) for r in run.evaluations], "errors": run.errors,
                   **eval_caveats.changed_test_labels_json(changes)})
    elif run.evaluations:
        _print_table(run.evaluations, run.split, job_id=run.job_id, details=a.details)
        print(eval_caveats.changed_test_labels_line(changes))
    for model, reason in run.errors.items():
        sys.stderr.write(f"routelab: error: {model}: {' '.join(reason.split())}\n")
    return 1 if run.errors else 0


def _print_table(rows, split: str, *, job_id: int | None, details: bool) -> None:
    from routelab.services.formatting import has_scope, headline_columns, headline_row

    n = max(r.n for r in rows)
    base = rows[0].details.get("base")
    when = rows[0].created_at[:16].replace("T", " ")
    head = f"eval on the {split} split: {n} questions with a human label · base {base}"
    head += f" · job {job_id}" if job_id else f" · stored {when} UTC"
    print(head)
    columns = headline_columns(rows)
    table([[headline_row(r)[k] for k, _ in columns] for r in rows], [h for _, h in columns])
    print("accuracy: 95% Wilson interval · vs base: accuracy difference on the same questions, 95% interval · "
          "ECE: expected calibration error of the confidences (10 bins; 0 = calibrated)")
    if has_scope(rows):
        fallback = next(r.details["fallback"] for r in rows if r.details.get("out_of_scope"))
        print(f"out of scope: fallback action {fallback} · in-scope: accuracy on the questions labelled with "
              f"another action · OOS recall: labelled {fallback}, answered {fallback} · OOS precision: the reverse")
    for r in rows:
        verdict = r.details.get("in_sample") or {}
        if verdict.get("in_sample") is not False and verdict:
            what = "in-sample" if verdict["in_sample"] else "maybe in-sample"
            print(f"{r.model}: {what}, not a held-out figure: {verdict['reason']}")
    for r in rows:
        missing = r.details.get("missing", 0)
        if missing:
            print(f"{r.model}: {missing} questions without a prediction (failed calls) are left out")
    for r in rows:
        confusions = r.details.get("confusions", [])
        if confusions and not details:
            top = ", ".join(f"{c['gold']} → {c['pred']} {c['count']}" for c in confusions[:3])
            print(f"{r.model}: largest confusions (label → predicted): {top}")
    if details:
        for r in rows:
            _print_details(r)


def _print_details(r) -> None:
    print()
    print(f"{r.model} · per action (n={r.n})")
    per = r.details.get("per_action", {})
    table([(a, f"{m['precision']:.2f}", f"{m['recall']:.2f}", f"{m['f1']:.2f}", m["support"]) for a, m in per.items()],
          ["action", "precision", "recall", "F1", "n"])
    confusions = r.details.get("confusions", [])
    if confusions:
        print(f"{r.model} · largest confusions")
        table([(c["gold"], c["pred"], c["count"]) for c in confusions[:15]], ["label", "predicted", "count"])


# ---------------------------------------------------------------------------- route


def cmd_route(ctx) -> int:
    from routelab.services.evaluation import parse_models
    from routelab.services.formatting import fmt_confidence, fmt_ms, fmt_route_cost
    from routelab.services.playground import Playground, parse_question

    a = ctx.args
    parse_question(a.text)  # bad input is refused before anything is opened
    pg = Playground(ctx.store(), ctx.settings())
    models = parse_models(a.model) or pg.models()
    pg.warm(models)  # load first, so the latency shown is the routing, not the loading
    attempt = pg.route(a.text, models)
    codes = {act.name: act.code for act in ctx.store().actions(active_only=False)}
    if a.json:
        out = attempt.as_dict()
        for r in out["routes"]:
            r["code"] = codes.get(r["action"]) if r["action"] else None
        emit_json(out)
    else:
        rows = []
        for r in attempt.results:
            if r.error:
                rows.append((r.model, "error (see below)", "", "", "", ""))
                continue
            action = r.action if r.valid else "(invalid)"
            code = codes.get(r.action) if r.action else None
            rows.append((
                r.model, action, "" if code is None else code,
                fmt_confidence(r.confidence), fmt_ms(r.latency_ms), fmt_route_cost(r.cost, r.tokens_in + r.tokens_out),
            ))
        table(rows, ["model", "action", "code", "confidence", "latency", "cost"])
    # a failed request is an error, one line per model (its endpoint and why), exit 1
    failed = [r for r in attempt.results if r.error]
    for r in failed:
        sys.stderr.write(f"routelab: error: {r.model}: {' '.join(r.error.split())}\n")
    return 1 if failed else 0
