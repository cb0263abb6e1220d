"""What an evaluation's figures must say beside them to be read honestly.

- **Test labels changed after a proposal**: how many test-split labels differ now from what they
  were before any model proposed for them (`Store.changed_test_labels`: derived exactly from the
  decisions and proposals logs). A reviewer who moved held-out labels toward a model's answer
  has moved that model's test score up.
- **In-sample**: a figure measured on examples the model was trained on (see services/in_sample.py).

Used by `routelab eval` (table lines and JSON keys) and the Evaluate pane.
"""

from __future__ import annotations

from typing import Any

from routelab.store import Store
from routelab.store.held_out import ChangedTestLabels


def changed_test_labels(store: Store) -> ChangedTestLabels:
    return store.changed_test_labels()


def changed_test_labels_line(changes: ChangedTestLabels) -> str:
    """The eval table's line on the test labels (printed whatever split was evaluated)."""
    if not changes.total:
        return "test labels changed after a model proposed for them: 0"
    shown = ", ".join(f"#{i}" for i in changes.example_ids[:8]) + (" …" if changes.total > 8 else "")
    return (f"test labels changed after a model proposed for them: {changes.total} "
            f"({changes.relabelled} relabelled, {changes.first_labelled} first labelled; {shown}): "
            "test scores lean toward the models whose answers were accepted there")


def changed_test_labels_json(changes: ChangedTestLabels) -> dict[str, Any]:
    """The keys `routelab eval --json` adds at its top level."""
    return {"test_labels_changed_after_proposal": changes.total, "test_label_changes": changes.as_dict()}


__all__ = ["ChangedTestLabels", "changed_test_labels", "changed_test_labels_json", "changed_test_labels_line"]
