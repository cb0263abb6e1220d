"""The export's report: counts per split and action, label origins, tokens, epochs, the estimate."""

from __future__ import annotations

from typing import Any

import numpy as np

from routelab import pricing
from routelab.domain import Action
from routelab.providers.prompts import ROUTER_PROMPT_VERSION, prompt_hash
from routelab.services.export_checks import default_epochs


def training_price_per_1m(base_model: str) -> float | None:
    """Price of training on 1M tokens from the project's dated price table (None: unknown model)."""
    value = pricing.training_price_per_1m(base_model)
    return None if value is None else float(value)


def price_table_date() -> str:
    return str(pricing.PRICES_AS_OF)


def part_report(actions: list[Action], names: list[str], action_of: np.ndarray, tokens: np.ndarray,
                human: np.ndarray) -> dict[str, Any]:
    """One file's figures; `action_of` indexes `names`, and by_action follows the catalog's order."""
    counts = np.bincount(action_of, minlength=len(names)).tolist() if len(action_of) else [0] * len(names)
    by_name = dict(zip(names, counts))
    n_human = int(human.sum())
    return {
        "examples": len(action_of),
        "by_action": {a.name: by_name.get(a.name, 0) for a in actions},
        "tokens": int(tokens.sum()),
        "max_example_tokens": int(tokens.max()) if len(tokens) else 0,
        "human_labels": n_human,
        "teacher_labels": len(action_of) - n_human,
    }


def build_report(opts, train: dict[str, Any], validation: dict[str, Any], left_out: dict[str, int],
                 teacher: str | None, system: str, limit: int, billable_tokens: int,
                 moved: dict[str, int] | None = None) -> dict[str, Any]:
    """The report as report.json has it (the files and the digest are added when written).

    `billable_tokens` is the sum over training examples of min(limit, tokens); `moved`: the questions
    the export moves into the workspace's validation split, by the split they come from."""
    epochs = opts.epochs or default_epochs(train["examples"])
    billed = epochs * billable_tokens
    price = training_price_per_1m(opts.base_model)
    return {
        "format": "openai-chat-jsonl",
        "prompt_version": ROUTER_PROMPT_VERSION,
        "prompt_sha": prompt_hash(system),
        "base_model": opts.base_model,
        "seed": opts.seed,
        "val_fraction": opts.val_fraction,
        "reviewed_only": opts.reviewed_only,
        "teacher": teacher,
        "labels": {"human": train["human_labels"] + validation["human_labels"],
                   "teacher": train["teacher_labels"] + validation["teacher_labels"]},
        "train": train,
        "validation": validation,
        "left_out": dict(sorted(left_out.items())),
        "split_changes": split_changes(moved or {}),
        "token_limit": limit,
        "train_tokens": train["tokens"],
        "epochs": epochs,
        "epochs_rule": "given" if opts.epochs else "cookbook default",
        "billed_tokens": billed,
        "price_per_1m": price,
        "price_table": price_table_date(),
        "estimated_cost": None if price is None else round(billed * price / 1e6, 4),
    }


def split_changes(moved: dict[str, int]) -> dict[str, Any]:
    """What the export changes in the workspace's splits: only ever questions moved into validation."""
    return {"moved_to_validation": sum(moved.values()), "from": dict(sorted(moved.items()))}


def split_changes_line(report: dict[str, Any]) -> str:
    """One line saying exactly what the export changed in the workspace's splits (or that it changed nothing)."""
    changes = report.get("split_changes") or {}
    n = changes.get("moved_to_validation", 0)
    if not n:
        return "splits: as in the workspace (no question moved)"
    parts = ", ".join(f"{v:,} from {k}" for k, v in changes["from"].items())
    why = " (the workspace had no validation split)" if changes["from"].get("train") else ""
    return (f"splits: moved {n:,} questions into the workspace's validation split: {parts}{why}; "
            f"seed {report['seed']}, --val-fraction {report['val_fraction']:g}; recorded with this export")


def format_report(report: dict[str, Any]) -> str:
    """The report for people: per-action counts per split, label origins, tokens, estimate."""
    tr, va = report["train"], report["validation"]
    width = max([len(a) for a in tr["by_action"]] + [6])
    lines = [f"{'action'.ljust(width)}  {'train':>6}  {'valid':>6}"]
    for a in tr["by_action"]:
        lines.append(f"{a.ljust(width)}  {tr['by_action'][a]:>6}  {va['by_action'].get(a, 0):>6}")
    lines.append(f"{'total'.ljust(width)}  {tr['examples']:>6}  {va['examples']:>6}")
    lab = report["labels"]
    teacher = f" ({report['teacher']})" if report.get("teacher") else ""
    lines.append(f"labels: {lab['human']} from people, {lab['teacher']} from the teacher{teacher}")
    lines.append(split_changes_line(report))
    if report["left_out"]:
        lines.append("left out: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report["left_out"].items()))
    longest = max(tr["max_example_tokens"], va["max_example_tokens"])
    lines.append(
        f"tokens: {tr['tokens']:,} train, {va['tokens']:,} validation (longest example {longest:,}, "
        f"limit {report['token_limit']:,})"
    )
    cost = report.get("estimated_cost")
    price = report.get("price_per_1m")
    estimate = (f"${cost:,.2f} at ${price:g}/1M" if cost is not None else "cost unknown (no price for this model)")
    lines.append(
        f"estimate for {report['base_model']}: {report['epochs']} epochs ({report['epochs_rule']}) x "
        f"{tr['tokens']:,} = {report['billed_tokens']:,} billed tokens, {estimate}"
    )
    return "\n".join(lines)
