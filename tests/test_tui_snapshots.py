"""Snapshots of the main screens: the review pane, the help overlay, the action picker.

Update after an intended change: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

from routelab.tui.app import RoutelabApp
from routelab.tui.panes.review import ReviewPane
from tests.test_tui_review import seed

SIZE = (120, 40)


async def _settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_review_pane(store, db_path, snap_compare):
    seed(store)
    assert snap_compare(RoutelabApp(db_path), terminal_size=SIZE, run_before=_settle)


def test_review_after_decisions(store, db_path, snap_compare):
    seed(store)

    async def run_before(pilot) -> None:
        await _settle(pilot)
        pilot.app.query_one(ReviewPane).pace.clock = lambda: 1000.0  # decisions per minute without a wall clock
        await pilot.press("enter", "4", "s")
        await _settle(pilot)

    # the history shows decision times, so this one lands on a question without history
    assert snap_compare(RoutelabApp(db_path), terminal_size=SIZE, run_before=run_before)


def test_help_overlay(store, db_path, snap_compare):
    seed(store)
    assert snap_compare(RoutelabApp(db_path), terminal_size=SIZE, press=["question_mark"], run_before=_settle)


def test_action_picker(store, db_path, snap_compare):
    seed(store)
    assert snap_compare(RoutelabApp(db_path), terminal_size=SIZE, press=["o", "p", "a"], run_before=_settle)


def test_filter_picker(store, db_path, snap_compare):
    seed(store)
    assert snap_compare(RoutelabApp(db_path), terminal_size=SIZE, press=["v"], run_before=_settle)
