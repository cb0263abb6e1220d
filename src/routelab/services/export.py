"""Turn the reviewed workspace into OpenAI chat fine-tuning data: labelled, split, checked, priced.

    export = build_export(store, ExportOptions(...))   # files staged, nothing in place yet; raises BadInput
    result = write_export(store, export, out_dir)       # the export directory replaced as a whole

Rules (see the issue and the OpenAI cookbook's data-preparation notebook):
- label = the human label (imported, accepted, overridden) where there is one, else the
  teacher's valid proposal (unless reviewed_only). Skipped and flagged examples are out.
- the test split is never exported, and nothing whose normalised text (lowercase, no
  punctuation or whitespace) equals a test question's goes into train or validation.
- splits are the user's: examples in the validation split go to validation.jsonl and those in
  train to train.jsonl, as they are; unassigned ones are split stratified by action, seeded and
  deterministic, with every group of near-identical texts entirely on one side
  (services/export_split.py). Only a pool with no validation example takes its validation part
  from train too. Whatever an export moves into the validation split of the workspace (so the
  next export and every model keep them out of training) it says (`split_changes` in the
  report, the CLI's output) and records with the export itself (the `exports` table: digest,
  place, seed, the questions of each file, the ones moved).
- every line is built from checked domain values in the cookbook's format and passes the
  token limit before anything is put in place; `check_jsonl_file` checks the files again,
  line by line, before a trainer reads them.

It streams: one pass over the workspace in keyset pages (two id ranges at once on a big
workspace), fixed-size numbers per example in memory, lines spooled to disk
(services/export_scan.py); the files are assembled and hashed as they are written into a
hidden sibling directory, which replaces the export directory whole (services/export_write.py).
"""

from __future__ import annotations

import json
import os
import shutil
import weakref
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np

from routelab.domain import Action, BadInput
from routelab.providers.prompts import assistant_answer, router_system_prompt
from routelab.services.export_checks import (
    MIN_EXAMPLES,
    check_chat_lines,
    check_jsonl_file,
    count_tokens,
    default_epochs,
    describe_errors,
    token_limit_for,
)
from routelab.services.export_report import build_report, format_report, part_report
from routelab.services.export_scan import (
    HUMAN,
    KEY_BYTES,
    WAS_TRAIN,
    WAS_VALIDATION,
    ScanSpec,
    message_json,
    near_key,
    open_lean,
    scan_workspace,
)
from routelab.services.export_split import split_pool
from routelab.services.export_write import (
    check_target,
    move_beside,
    remove_empty,
    remove_file_temporaries,
    replace_file,
    same_files,
    sha256_file,
    staging_dir,
    swap_in,
    write_file,
    write_lines,
)
from routelab.store import Store
from routelab.store.exports import ExportRecord

__all__ = [  # what callers import from here (some of it lives in the export_* modules)
    "DEFAULT_BASE_MODEL", "Export", "ExportLine", "ExportOptions", "ExportResult", "MIN_EXAMPLES", "build_export",
    "check_chat_lines", "check_jsonl_file", "count_tokens", "default_epochs", "default_export_dir",
    "describe_errors", "export_dataset", "format_report", "near_key", "sha256_file", "token_limit_for",
    "write_export",
]

DEFAULT_BASE_MODEL = "gpt-4.1-mini-2025-04-14"
PARTS = ("train", "validation")
_CHUNK_LINES = 65_536  # lines whose places are looked up at a time while writing


@dataclass(frozen=True)
class ExportOptions:
    val_fraction: float = 0.2
    seed: int = 0
    teacher: str | None = None  # None: the most-used model in proposals
    reviewed_only: bool = False
    base_model: str = DEFAULT_BASE_MODEL
    epochs: int | None = None  # None: the cookbook rule
    token_limit: int | None = None  # None: the base model's

    def check(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise BadInput(f"--val-fraction must be at least 0 and below 1 (got {self.val_fraction})")
        if self.epochs is not None and not 1 <= self.epochs <= 50:
            raise BadInput(f"--epochs must be between 1 and 50 (got {self.epochs})")


@dataclass
class ExportLine:
    example_id: int
    action: str
    origin: str  # human | teacher
    messages: list[dict[str, str]]
    tokens: int = 0

    def json(self) -> str:
        return json.dumps({"messages": self.messages}, ensure_ascii=False)


@dataclass
class _Lines:
    """Who is on each line of one file, in file order (the lines themselves are on disk)."""

    ids: np.ndarray
    actions: np.ndarray  # indexes names
    names: list[str]
    human: np.ndarray
    tokens: np.ndarray


@dataclass
class Export:
    """A built export: its files (staged until written), digest, report and what it decided."""

    dir: Path  # where train.jsonl and validation.jsonl are: a staging directory until write_export
    digest: str  # identity of the data (both files): an identical export is reused, not rewritten
    files: dict[str, dict[str, Any]]  # per part: sha256, lines, bytes
    new_validation_ids: list[int]  # pool examples this export puts into the validation split
    moved: dict[str, int]  # how many of them, by the split they come from (train, unassigned)
    system_prompt: str
    report: dict[str, Any]
    lines: dict[str, _Lines] = field(repr=False, default_factory=dict)
    made: list[Path] = field(repr=False, default_factory=list)  # folders made for the staging directory
    _staged: list[Path | None] = field(repr=False, default_factory=list)

    def __post_init__(self) -> None:
        self._staged = [self.dir]
        weakref.finalize(self, _discard, self._staged, self.made)  # one never written leaves nothing behind

    def data(self, part: str) -> bytes:
        path = self.dir / f"{part}.jsonl"
        return path.read_bytes() if path.is_file() else b""

    def _read(self, part: str) -> list[ExportLine]:
        """The lines of one file, read back (for inspection and tests: it holds them all)."""
        meta = self.lines[part]
        rows = self.data(part).split(b"\n")[:-1]  # not splitlines(): a text may hold U+2028
        return [ExportLine(int(i), meta.names[a], "human" if h else "teacher", json.loads(r)["messages"], int(t))
                for i, a, h, t, r in zip(meta.ids, meta.actions, meta.human, meta.tokens, rows)]

    @property
    def train(self) -> list[ExportLine]:
        return self._read("train")

    @property
    def validation(self) -> list[ExportLine]:
        return self._read("validation")

    def discard(self) -> None:
        """Remove the staged files of an export that will not be written."""
        _discard(self._staged, self.made)


def _discard(staged: list[Path | None], made: list[Path]) -> None:
    if staged[0] is not None:
        shutil.rmtree(staged[0], ignore_errors=True)
        staged[0] = None
    remove_empty(made)


@dataclass
class ExportResult:
    out_dir: Path
    train_path: Path
    validation_path: Path | None
    report: dict[str, Any]
    reused: bool = False
    files: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Pool:
    """The exportable examples in id order, as arrays (see ScanPage), and where their lines are."""

    ids: np.ndarray
    keys: np.ndarray
    actions: np.ndarray
    flags: np.ndarray
    tokens: np.ndarray
    spool: np.ndarray  # which spool file holds the line
    offset: np.ndarray
    length: np.ndarray
    left_out: dict[str, int]


# ------------------------------------------------------------------ building the export


def exports_root(db_path: Path) -> Path:
    """The folder beside the workspace that holds `finetune`'s exports."""
    return db_path.parent / f"{db_path.stem}-exports"


def _spec(store: Store, opts: ExportOptions, actions: list[Action]) -> ScanSpec:
    """What the scan needs: the catalog, the teacher, the fixed parts of every line and their tokens."""
    names = sorted(a.name for a in actions)
    models = store.proposal_models()
    if opts.teacher and opts.teacher not in models:
        raise BadInput(f"no proposals from teacher {opts.teacher!r} in this workspace")
    teacher = None if opts.reviewed_only else (opts.teacher or (models[0] if models else None))
    answers = [{"role": "assistant", "content": assistant_answer(a)} for a in names]
    system = router_system_prompt(actions)
    return ScanSpec(
        db_path=str(store.path), spool="", actions=tuple(names),
        answers=tuple(message_json(m["role"], m["content"]) for m in answers),
        fixed_tokens=count_tokens([{"role": "system", "content": system}]),
        answer_tokens=tuple(count_tokens([m]) - 3 for m in answers), teacher=teacher,
    )


def _arrays(values: list, dtype) -> np.ndarray:
    """One array of a field of every range (arrays or bytes), in range order."""
    return np.concatenate([np.frombuffer(v, dtype=dtype) if len(v) else np.empty(0, dtype) for v in values])


def _scan(reader: Store, spec: ScanSpec, staged: Path) -> _Pool:
    """Scan the workspace into a pool; drop what is near-identical to a test question."""
    ranges, _spools = scan_workspace(reader, spec, staged)
    lengths = [np.frombuffer(r.lengths, dtype=np.int32) if len(r.lengths) else np.empty(0, np.int32) for r in ranges]
    offsets = np.concatenate([np.cumsum(x, dtype=np.int64) - x for x in lengths])
    spool = np.concatenate([np.full(len(x), i, dtype=np.int8) for i, x in enumerate(lengths)])
    left_out: dict[str, int] = {"test_split": sum(len(r.test_keys) // KEY_BYTES for r in ranges)}
    for r in ranges:
        for k, v in r.left_out.items():
            left_out[k] = left_out.get(k, 0) + v
    keys = _arrays([r.keys for r in ranges], "<u8")
    near_test = np.isin(keys, _arrays([r.test_keys for r in ranges], "<u8"))
    if near_test.any():
        left_out["same_as_a_test_question"] = int(near_test.sum())
    keep = ~near_test
    return _Pool(
        ids=_arrays([r.ids for r in ranges], np.int64)[keep], keys=keys[keep],
        actions=_arrays([r.actions for r in ranges], np.uint16)[keep],
        flags=_arrays([r.flags for r in ranges], np.uint8)[keep],
        tokens=_arrays([r.tokens for r in ranges], np.int32)[keep],
        spool=spool[keep], offset=offsets[keep], length=np.concatenate(lengths)[keep], left_out=left_out,
    )


def _check(pool: _Pool, train: list[int], validation: list[int], actions: list[Action], names: list[str],
           opts: ExportOptions, limit: int) -> None:
    """Bad input, found before anything is put in place."""
    if len(train) < MIN_EXAMPLES:
        raise BadInput(
            f"only {len(train)} training examples; fine-tuning needs at least {MIN_EXAMPLES} "
            "(label or review more, or lower --val-fraction)"
        )
    counts = dict(zip(names, np.bincount(pool.actions[train], minlength=len(names)).tolist()))
    missing = [a.name for a in actions if counts.get(a.name, 0) == 0]
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise BadInput(f"no training examples for action(s) {shown}: label some, or deactivate the action")
    if (pool.tokens > limit).any():
        too_long = [i for i in train + validation if pool.tokens[i] > limit]
        ids = ", ".join(f"#{pool.ids[i]}" for i in too_long[:5])
        raise BadInput(
            f"{len(too_long)} example(s) over the {limit}-token limit of {opts.base_model} ({ids}); "
            "shorten their conversation or skip them"
        )


def _places(pool: _Pool, order: list[int]):
    """(spool, offset, length) of each line in file order, looked up a chunk at a time."""
    for start in range(0, len(order), _CHUNK_LINES):
        idx = np.array(order[start:start + _CHUNK_LINES], dtype=np.int64)
        yield from zip(pool.spool[idx].tolist(), pool.offset[idx].tolist(), pool.length[idx].tolist())


def _write_parts(staged: Path, spools: list[Path], pool: _Pool, parts: dict[str, list[int]], head: bytes):
    """train.jsonl and validation.jsonl (if it has lines) into `staged`; returns (files, digest)."""
    digest = sha256()
    files: dict[str, dict[str, Any]] = {}
    fds = [os.open(p, os.O_RDONLY) for p in spools]
    try:
        for name, order in parts.items():
            if name == "validation":
                digest.update(b"\x00")
            if not order:
                continue
            own = sha256()
            n, size = write_lines(staged / f"{name}.jsonl", head, _places(pool, order), fds, [own, digest])
            files[name] = {"sha256": own.hexdigest(), "lines": n, "bytes": size}
    finally:
        for fd in fds:
            os.close(fd)
    return files, digest.hexdigest()


def build_export(store: Store, opts: ExportOptions = ExportOptions(), *, beside: Path | str | None = None) -> Export:
    """Label, split, check and stage the files. Raises BadInput; puts nothing in place.

    `beside`: the directory the export will be written to, so its files are staged next to
    it (default: the exports folder beside the workspace, where `finetune` writes).
    """
    opts.check()
    actions: list[Action] = store.actions()
    if not actions:
        raise BadInput("the workspace has no actions: add some with `routelab actions add` first")
    with open_lean(str(store.path)) as reader:  # the caller's connection (the app's) stays as it was
        spec = _spec(reader, opts, actions)
        target = Path(beside) if beside is not None else exports_root(Path(store.path)) / "staging"
        staged, made = staging_dir(target.parent, target.name)
        try:
            pool = _scan(reader, spec, staged)
        except BaseException:
            _discard([staged], made)
            raise
    names, limit = list(spec.actions), opts.token_limit or token_limit_for(opts.base_model)
    try:
        split = split_pool(names, pool.keys, pool.actions, (pool.flags & WAS_VALIDATION) > 0,
                           (pool.flags & WAS_TRAIN) > 0, opts.val_fraction, opts.seed)
        _check(pool, split.train, split.validation, actions, names, opts, limit)
        system = router_system_prompt(actions)
        head = ('{"messages": [' + message_json("system", system) + ", ").encode("utf-8")
        spools = sorted(staged.glob("spool-*.bin"))
        parts = {"train": split.train, "validation": split.validation}
        files, digest = _write_parts(staged, spools, pool, parts, head)
        for p in spools:
            p.unlink()
    except BaseException:
        _discard([staged], made)
        raise
    lines = {name: _lines(pool, order, names) for name, order in parts.items()}
    reports = {name: part_report(actions, names, pool.actions[order], pool.tokens[order],
                                 (pool.flags[order] & HUMAN) > 0) for name, order in parts.items()}
    billable = int(np.minimum(pool.tokens[split.train], limit).sum())
    moved = _moved(pool, split.new_validation)
    report = build_report(opts, reports["train"], reports["validation"], pool.left_out, spec.teacher, system,
                          limit, billable, moved)
    return Export(staged, digest, files, pool.ids[split.new_validation].tolist(), moved, system, report, lines, made)


def _moved(pool: _Pool, positions: np.ndarray) -> dict[str, int]:
    """The questions the split moves into validation, counted by the split they come from."""
    from_train = int(((pool.flags[positions] & WAS_TRAIN) > 0).sum())
    moved = {"train": from_train, "unassigned": len(positions) - from_train}
    return {k: v for k, v in moved.items() if v}


def _lines(pool: _Pool, order: list[int], names: list[str]) -> _Lines:
    idx = np.array(order, dtype=np.int64)
    return _Lines(pool.ids[idx], pool.actions[idx], names, (pool.flags[idx] & HUMAN) > 0, pool.tokens[idx])


# ------------------------------------------------------------------ writing


def write_export(store: Store, export: Export, out_dir: Path | str, *, save_split: bool = True) -> ExportResult:
    """Put train.jsonl, validation.jsonl and report.json in place as a whole (an identical export is reused).

    The examples this export put into validation are moved into the workspace's validation split,
    so the next export keeps them there and a later model is never trained on them; the export is
    recorded (`exports`: digest, place, seed, the questions of each file, the ones moved) in the
    same transaction. `save_split=False` writes the files only (nothing moved, nothing recorded).
    """
    out = Path(out_dir)
    real = out.resolve() if out.is_symlink() else out
    if export._staged[0] is None and export.dir != real:
        raise ValueError(f"this export was already written to {export.dir}")
    check_target(real)
    files = {part: {"path": str(out / f"{part}.jsonl"), **export.files[part]} for part in PARTS if part in export.files}
    report = {**export.report, "files": files, "digest": export.digest}
    text = (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    reused = real.is_dir() and same_files(export.dir, real, ("train.jsonl", "validation.jsonl"))
    if reused:
        remove_file_temporaries(real)
        replace_file(real / "report.json", text)
        if export.dir != real:
            export.discard()
    else:
        write_file(export.dir / "report.json", text)
        swap_in(move_beside(export.dir, real), real)
    export.dir, export._staged[0] = real, None
    remove_empty(export.made)  # e.g. the exports folder, when the export went to another file system
    if save_split:
        with open_lean(str(store.path)) as lean:  # touches pages all over the table: not the caller's cache
            lean.record_export(ExportRecord(
                digest=export.digest, out_dir=str(real), seed=report["seed"], val_fraction=report["val_fraction"],
                train_ids=export.lines["train"].ids.tolist(), validation_ids=export.lines["validation"].ids.tolist(),
                moved=export.moved, moved_ids=export.new_validation_ids))
    val = out / "validation.jsonl" if "validation" in files else None
    return ExportResult(out, out / "train.jsonl", val, report, reused, files)


def export_dataset(store: Store, out_dir: Path | str, opts: ExportOptions = ExportOptions()) -> ExportResult:
    out = Path(out_dir)
    check_target(out.resolve() if out.is_symlink() else out)  # before the work, not after it
    return write_export(store, build_export(store, opts, beside=out), out)


def default_export_dir(db_path: Path, export: Export) -> Path:
    """Where `finetune` keeps its exports: beside the workspace, one folder per distinct data set."""
    return exports_root(db_path) / export.digest[:12]
