"""Export records: which export was written (its data's digest, where, which seed), the questions
of its files, and the questions it moved into the validation split, written with those moves in
one transaction. Read by eval to tell whether a fine-tuned model trained on what it is scored on.

Ids are kept sorted, delta-encoded and zlib-compressed: ids are nearly dense, so the deltas are
mostly 1 and a million of them compress to a few kilobytes.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from routelab.domain import now_iso
from routelab.store.connection import StoreBase


def encode_ids(ids: Sequence[int]) -> bytes:
    import numpy as np

    a = np.sort(np.asarray(ids, dtype=np.int64))
    return zlib.compress(np.diff(a, prepend=np.int64(0)).astype("<i8").tobytes(), 6)


def decode_ids(data: bytes) -> list[int]:
    import numpy as np

    return np.cumsum(np.frombuffer(zlib.decompress(data), dtype="<i8")).tolist()


@dataclass
class ExportRecord:
    digest: str
    out_dir: str
    seed: int
    val_fraction: float
    train_ids: list[int]
    validation_ids: list[int]
    moved: dict[str, int] = field(default_factory=dict)  # split it came from -> questions moved into validation
    moved_ids: list[int] = field(default_factory=list)
    at: str = field(default_factory=now_iso)
    id: int | None = None


class ExportsTable(StoreBase):
    def record_export(self, record: ExportRecord) -> int | None:
        """Move the record's questions into the validation split and store the record, in one transaction.
        The same data written again to the same place, moving nothing, is not recorded twice (None)."""
        with self.transaction() as c:
            if not record.moved_ids and c.execute(
                "SELECT 1 FROM exports WHERE digest = ? AND out_dir = ?", (record.digest, record.out_dir)
            ).fetchone():
                return None
            c.executemany("UPDATE examples SET split = 'validation' WHERE id = ?", [(i,) for i in record.moved_ids])
            record.id = c.execute(
                "INSERT INTO exports (digest, out_dir, seed, val_fraction, train_ids, validation_ids, moved, moved_ids,"
                " at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.digest, record.out_dir, record.seed, record.val_fraction, encode_ids(record.train_ids),
                 encode_ids(record.validation_ids), json.dumps(record.moved), encode_ids(record.moved_ids), record.at),
            ).lastrowid
            return record.id

    def export_record(self, digest: str) -> ExportRecord | None:
        """The newest record of an export of this data (a fine-tune's job keeps the digest)."""
        rows = self._rows("SELECT * FROM exports WHERE digest = ? ORDER BY id DESC LIMIT 1", (digest,))
        return _record(rows[0]) if rows else None

    def export_records(self) -> list[ExportRecord]:
        """Every export written, the newest first."""
        return [_record(r) for r in self._rows("SELECT * FROM exports ORDER BY id DESC")]


def _record(r: dict) -> ExportRecord:
    return ExportRecord(
        digest=r["digest"], out_dir=r["out_dir"], seed=r["seed"], val_fraction=r["val_fraction"],
        train_ids=decode_ids(r["train_ids"]), validation_ids=decode_ids(r["validation_ids"]),
        moved=json.loads(r["moved"]), moved_ids=decode_ids(r["moved_ids"]), at=r["at"], id=r["id"],
    )
