"""The progress callback every long service takes, so CLI, TUI and tests can watch it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    done: int
    total: int | None
    cost: float = 0.0  # USD spent so far
    rate: float | None = None  # items per second
    eta: float | None = None  # seconds left
    message: str = ""
    invalid: int = 0
    failed: int = 0

    @property
    def fraction(self) -> float | None:
        return None if not self.total else min(1.0, self.done / self.total)


ProgressCallback = Callable[[Progress], None]


def format_duration(seconds: float | None) -> str:
    """45s, 6m12s, 2h05m; an em dash when unknown."""
    if seconds is None:
        return "—"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Tracker:
    """Counts and timing of a run; `snapshot()` makes the Progress to report."""

    def __init__(self, total: int | None, callback: ProgressCallback | None = None):
        self.total = total
        self.callback = callback
        self.started = time.monotonic()
        self.done = self.invalid = self.failed = 0
        self.cost = 0.0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def snapshot(self, message: str = "") -> Progress:
        elapsed = self.elapsed
        rate = self.done / elapsed if elapsed > 0 and self.done else None
        eta = None
        if rate and self.total is not None:
            eta = max(0, self.total - self.done - self.failed) / rate
        return Progress(self.done, self.total, self.cost, rate, eta, message, self.invalid, self.failed)

    def report(self, message: str = "") -> None:
        if self.callback is not None:
            self.callback(self.snapshot(message))
