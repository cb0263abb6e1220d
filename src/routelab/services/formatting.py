"""Figures the CLI and the app both show (accuracy, intervals, latency, cost, durations), one way each.

Where the app's tables must be narrow (five models side by side in 120 columns) a formatter
takes `compact=True`: an interval end drops its leading zero (`[.84–.91]`) and a latency
pair loses its unit (`0.12/0.31`, the column header says `ms`). Everything else is shared
as it is, so `routelab eval` and the Evaluate pane never disagree about a number.
"""

from __future__ import annotations

from typing import Any

from routelab.domain import Evaluation
from routelab.services.progress import format_duration  # the one duration format: 45s, 6m12s, 2h05m

DASH = "—"  # an empty slice, an unknown value


def interval_end(x: float, *, sign: bool = False, compact: bool = False) -> str:
    """0.84 -> `0.84` (`.84` compact), -0.05 -> `-0.05` (`-.05`), 1.0 -> `1.00`."""
    s = f"{x:+.2f}" if sign else f"{x:.2f}"
    if compact and s.lstrip("+-").startswith("0."):
        return s.replace("0.", ".", 1)
    return s


def fmt_acc(cell: dict[str, Any] | None, *, compact: bool = False) -> str:
    """`0.88 [0.84–0.91]` (95% Wilson interval; `[.84–.91]` compact), or `—` for an empty slice."""
    if not cell or not cell.get("n"):
        return DASH
    low, high = (interval_end(cell[k], compact=compact) for k in ("ci_low", "ci_high"))
    return f"{cell['accuracy']:.2f} [{low}–{high}]"


def fmt_improvement(imp: dict[str, Any] | None, is_base: bool, *, compact: bool = False) -> str:
    """`+0.35 [+0.21–+0.49]` (`[+.21–+.49]` compact), `base`, or `—`."""
    if is_base:
        return "base"
    if not imp:
        return DASH
    low, high = (interval_end(imp[k], sign=True, compact=compact) for k in ("ci_low", "ci_high"))
    return f"{imp['delta']:+.2f} [{low}–{high}]"


def _ms(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.0f}"


def fmt_ms(ms: float | None) -> str:
    """One latency: `0.12 ms`, `19 ms`; empty when unknown."""
    return "" if ms is None else f"{_ms(ms)} ms"


def fmt_latency(p50: float | None, p95: float | None, *, compact: bool = False) -> str:
    """`0.12 / 0.31 ms` (p50 / p95), or `0.12/0.31` compact (the header says ms); `—` when unknown."""
    if p50 is None:
        return DASH
    pair = (_ms(p50), _ms(p95 if p95 is not None else p50))
    return "/".join(pair) if compact else f"{pair[0]} / {pair[1]} ms"


def fmt_cost(per_1k: float | None) -> str:
    """Cost per 1,000 routes: `$0`, `$0.012`, `$12.50`; `—` when unknown."""
    if per_1k is None:
        return DASH
    if per_1k == 0:
        return "$0"
    return f"${per_1k:.3f}" if per_1k < 10 else f"${per_1k:.2f}"


def fmt_route_cost(cost: float, tokens: int = 0) -> str:
    """One route's cost, readable in a narrow column: `free` (no tokens: a local model), `$0`,
    `<$0.0001`, `$0.00012` (two significant digits below a dollar), `$2.50`."""
    if not cost:
        return "$0" if tokens else "free"
    if cost < 0.0001:
        return "<$0.0001"
    if cost < 1:
        return f"${cost:.2g}"
    return f"${cost:.2f}"


def fmt_confidence(confidence: float | None) -> str:
    return "" if confidence is None else f"{confidence:.2f}"


def fmt_share(x: float | None, *, compact: bool = False) -> str:
    """A proportion without an interval (recall, precision, ECE): `0.39` (`.39` compact), `—` when unknown."""
    return DASH if x is None else interval_end(x, compact=compact)


def headline_row(ev: Evaluation, *, compact: bool = False) -> dict[str, str]:
    """One model's row of the eval table, by column key (see HEADLINE_COLUMNS)."""
    d = ev.details
    slices = d.get("slices", {})
    oos = d.get("out_of_scope") or {}
    from routelab.services.in_sample import mark

    return {
        "model": ev.model + mark(d),  # an in-sample figure says so beside it
        "synthetic": fmt_acc(slices.get("synthetic"), compact=compact),
        "user": fmt_acc(slices.get("user"), compact=compact),
        "all": fmt_acc(slices.get("all"), compact=compact),
        "in_scope": fmt_acc(oos.get("in_scope"), compact=compact),
        "oos_recall": fmt_share(oos.get("oos_recall"), compact=compact),
        "oos_precision": fmt_share(oos.get("oos_precision"), compact=compact),
        "ece": fmt_share(d.get("ece"), compact=compact),
        "n": str(ev.n),
        "improvement": fmt_improvement(d.get("improvement"), d.get("base") == ev.model, compact=compact),
        "macro_f1": f"{ev.macro_f1:.2f}" if ev.macro_f1 is not None else DASH,
        "invalid": f"{ev.invalid_rate:.1%}",
        "latency": fmt_latency(ev.latency_p50_ms, ev.latency_p95_ms, compact=compact),
        "cost": fmt_cost(ev.cost_per_1k),
    }


# (key, header) of the CLI's eval table; the app shows fewer columns with shorter headers
HEADLINE_COLUMNS = [
    ("model", "model"), ("synthetic", "synthetic"), ("user", "user"), ("all", "all"), ("n", "n"),
    ("improvement", "vs base"), ("macro_f1", "macro-F1"), ("ece", "ECE"), ("invalid", "invalid"),
    ("latency", "latency p50/p95"), ("cost", "$/1k routes"),
]
# after "all", when the catalog has a fallback action
SCOPE_COLUMNS = [("in_scope", "in-scope"), ("oos_recall", "OOS recall"), ("oos_precision", "OOS precision")]


def has_scope(evaluations: list[Evaluation]) -> bool:
    """Were these evaluations made with a fallback action (so they carry out-of-scope figures)?"""
    return any(ev.details.get("out_of_scope") for ev in evaluations)


def headline_columns(evaluations: list[Evaluation]) -> list[tuple[str, str]]:
    """The CLI's eval table columns for these rows: the out-of-scope ones only where they mean something."""
    if not has_scope(evaluations):
        return list(HEADLINE_COLUMNS)
    at = [k for k, _ in HEADLINE_COLUMNS].index("all") + 1
    return HEADLINE_COLUMNS[:at] + SCOPE_COLUMNS + HEADLINE_COLUMNS[at:]

__all__ = [
    "DASH", "HEADLINE_COLUMNS", "SCOPE_COLUMNS", "fmt_acc", "fmt_confidence", "fmt_cost", "fmt_improvement",
    "fmt_latency", "fmt_ms", "fmt_route_cost", "fmt_share", "format_duration", "has_scope", "headline_columns",
    "headline_row", "interval_end",
]
