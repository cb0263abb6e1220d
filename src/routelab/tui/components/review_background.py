"""The Review pane's reads in worker threads: the filter's COUNT and the status counts (a
second on a million rows), applied on the UI thread only if nothing changed meanwhile.

A mixin of ReviewPane (it uses the pane's session, window, filter and local-change
counter `_seq`), kept apart so the pane stays about keys and what they show.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from textual.worker import get_current_worker

from routelab.domain import ExampleFilter

T = TypeVar("T")


class BackgroundReads:
    def _in_background(self, group: str, read: Callable[[], T], apply: Callable[[int, T], None]) -> None:
        """`read()` in a worker thread (a newer one in the same group replaces it), then `apply(seq, result)`
        on the UI thread, with the local-change counter as it was when the read began."""
        seq = self._seq

        def run() -> None:
            result = read()
            if not get_current_worker().is_cancelled:
                self.app.call_from_thread(apply, seq, result)

        self.run_worker(run, thread=True, exclusive=True, group=group)

    def _count_filter(self) -> None:
        assert self.window is not None and self.session is not None
        if not self.window.exact:
            session, flt = self.session, self.flt
            self._in_background("review-filter-count", lambda: session.fresh_count(flt),
                                lambda seq, n: self._set_filter_count(seq, flt, n))

    def _set_filter_count(self, seq: int, flt: ExampleFilter, n: int) -> None:
        assert self.window is not None
        if flt != self.flt or self.window.exact:
            return
        if seq != self._seq:
            self._count_filter()  # decided meanwhile: count again
            return
        self.window.set_count(n)
        self.dataset.sync()
        self._paint_progress()

    def _load_counts(self) -> None:
        assert self.session is not None
        self._in_background("review-counts", self.session.fresh_status_counts, self._set_counts)

    def _set_counts(self, seq: int, counts: dict[str, int]) -> None:
        if seq != self._seq and self.status_counts is not None:
            self._load_counts()  # we decided meanwhile: count again
            return
        self.status_counts = counts
        self._paint_progress()
