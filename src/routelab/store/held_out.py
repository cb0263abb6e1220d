"""Test-split labels changed after a model proposed for them: derived from the two logs, exactly.

The test split is the held-out check; a label a reviewer changed there with a model's answer on
screen leans the test score toward that model. Derived rather than recorded on each decision:

- decisions are append-only (triggers refuse UPDATE and DELETE), and a question's label is the
  replay of its decisions (`decisions.replay`), so the label it had at any moment is known;
- a proposal is written once per (example, model, prompt version) and never changed, so the
  first proposal's `created_at` says when a model first answered for a question;
- nothing moves a question into or out of the test split (import sets a split once; export
  assigns validation only from train and unassigned questions), so a question in the test
  split now was in it then.

So the label before any model proposed is the replay of the decisions stamped before the first
proposal; a test label counts when the label now differs from it. This covers every decision a
workspace holds, made before this count existed too, and costs a keypress nothing. Both logs
are stamped by one clock (`now_iso`: UTC, milliseconds); a decision stamped in the same
millisecond as the first proposal counts as after it (a journalled decision carries the time of
its keypress, so a decision made before a proposal but written after it is not counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby

from routelab.store.connection import StoreBase
from routelab.store.decisions import replay


@dataclass(frozen=True)
class ChangedTestLabels:
    """Test questions whose label now differs from the one they had before any model proposed for them."""

    relabelled: int = 0  # had a label then, another one now
    first_labelled: int = 0  # had none then (labelled with a model's answer there to accept)
    example_ids: list[int] = field(default_factory=list)  # every one of them, in id order

    @property
    def total(self) -> int:
        return self.relabelled + self.first_labelled

    def as_dict(self, shown: int = 50) -> dict:
        return {"total": self.total, "relabelled": self.relabelled, "first_labelled": self.first_labelled,
                "example_ids": self.example_ids[:shown]}


class HeldOutQueries(StoreBase):
    def changed_test_labels(self) -> ChangedTestLabels:
        """See the module's doc: replays the decisions of each test question a model proposed for."""
        first = dict(self.conn.execute(
            "SELECT p.example_id, MIN(p.created_at) FROM proposals p JOIN examples e ON e.id = p.example_id "
            "WHERE e.split = 'test' GROUP BY p.example_id"
        ).fetchall())
        if not first:
            return ChangedTestLabels()
        rows = self.conn.execute(
            "SELECT d.example_id, d.id, d.kind, d.action, d.undoes, d.at FROM decisions d "
            "JOIN examples e ON e.id = d.example_id WHERE e.split = 'test' ORDER BY d.example_id, d.id"
        )
        relabelled = first_labelled = 0
        ids: list[int] = []
        for example_id, group in groupby(rows, key=lambda r: r[0]):
            proposed = first.get(example_id)
            if proposed is None:
                continue  # no model has answered for it: nothing could have leaned its label
            decisions = [r[1:] for r in group]
            now, _ = replay([d[:4] for d in decisions])
            then, _ = replay([d[:4] for d in decisions if d[4] < proposed])
            if now is None or now == then:
                continue
            ids.append(example_id)
            if then is None:
                first_labelled += 1
            else:
                relabelled += 1
        return ChangedTestLabels(relabelled, first_labelled, ids)
