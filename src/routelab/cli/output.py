"""Printing results (aligned tables for people, one JSON document for scripts), progress on
stderr, and the spend question every paid command asks."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

from routelab.domain import BadInput, printable
from routelab.redaction import redact
from routelab.services.progress import format_duration

# json.dumps escapes C0 but leaves C1 controls and bidi overrides raw: write those as
# \uXXXX (the same JSON value, and nothing a terminal acts on).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
# Ours: a write that starts with "\r" (optionally erase-line) repaints the progress line.
# Everything else in a write is cleaned.
_REPAINT = re.compile(r"^\r(\x1b\[K)?")


class SafeStream:
    """stdout/stderr for the CLI: every text printed, whatever its origin (a question, an
    action's description, a server's error), reaches the terminal without control
    characters (OSC 52 clipboard writes, screen clears), with bidi overrides visible and
    without secrets (routelab.redaction: the last line of defence, whoever built the text)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        lead = _REPAINT.match(text)
        head = lead.group() if lead else ""
        self._stream.write(head + redact(printable(text[len(head):])))
        return len(text)

    def __getattr__(self, name: str):  # flush, isatty, fileno, encoding...
        return getattr(self._stream, name)


def json_text(obj: Any) -> str:
    text = json.dumps(obj, ensure_ascii=False, indent=2, default=str)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json_text(obj) + "\n")


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")


def add_json_flag(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


class ProgressPrinter:
    """A bar on stderr when it is a terminal; a plain line every few seconds otherwise."""

    def __init__(self, label: str, quiet: bool = False):
        self.label = label
        self.tty = sys.stderr.isatty()
        self.quiet = quiet
        # Not a terminal (a log, CI): the first plain line after 5 s, so a run that fails at
        # once prints nothing but its one-line error.
        self._last = 0.0 if self.tty else time.monotonic()
        self._drawn = False
        self._final_shown = False

    def __call__(self, p) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        final = p.total is not None and p.done + p.failed >= p.total
        if final and self._final_shown:
            return
        if not final and now - self._last < (0.1 if self.tty else 5.0):
            return
        self._final_shown = final
        self._last = now
        total = p.total or 0
        pct = f"{100 * p.done / total:3.0f}%" if total else ""
        rate = f"{p.rate:.1f}/s" if p.rate else "-/s"
        eta = f"ETA {format_duration(p.eta)}" if p.eta is not None and not final else ""
        extra = f" {p.invalid} invalid" if p.invalid else ""
        extra += f" {p.failed} failed" if p.failed else ""
        if self.tty:
            width = 24
            filled = int(width * p.done / total) if total else 0
            bar = "█" * filled + "░" * (width - filled)
            line = f"\r{self.label} {bar} {p.done}/{total} {pct} {rate} {eta} ${p.cost:.4f}{extra}"
            sys.stderr.write(line.ljust(100)[:150])
            self._drawn = True
        else:
            sys.stderr.write(f"{self.label}: {p.done}/{total} {pct} {rate} {eta} ${p.cost:.4f}{extra}\n".replace("  ", " "))
        sys.stderr.flush()

    def close(self) -> None:
        if self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._drawn = False


def confirmer(yes: bool, what: str):
    """The service's confirm(estimate): yes with --yes, ask on a terminal, refuse otherwise."""

    def confirm(estimate) -> bool:
        if yes:
            return True
        from routelab.config import settings

        limit = settings().spend_limit
        if not sys.stdin.isatty():
            raise BadInput(
                f"{what} would cost about ${estimate.cost:.2f} ({estimate.n} requests to {estimate.model}), above "
                f"the spend limit ${limit:.2f}; not started: pass --yes to go ahead in a script"
            )
        sys.stderr.write(f"{estimate.line()}\nThat is above the spend limit (${limit:.2f}). Continue? [y/N] ")
        sys.stderr.flush()
        try:
            answer = input()
        except EOFError:
            answer = ""
        return answer.strip().lower() in ("y", "yes")

    return confirm
