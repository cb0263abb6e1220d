"""Turn the reviewed workspace into OpenAI chat fine-tuning data: labelled, split, checked, priced.

    export = build_export(store, ExportOptions(...))   # nothing written yet; raises BadInput
    result = write_export(store, export, out_dir)       # atomic files + report.json

Rules (see the issue and the OpenAI cookbook's data-preparation notebook):
- label = the human label (imported, accepted, overridden) where there is one, else the
  teacher's valid proposal (unless reviewed_only). Skipped and flagged examples are out.
- the test split is never exported, and nothing whose normalised text (lowercase, no
  punctuation or whitespace) equals a test question's goes into train or validation.
- examples already in the validation split stay there; the rest of the pool is split
  stratified by action, seeded and deterministic, with every group of near-identical
  texts entirely on one side.
- every line passes the cookbook checks and the token limit before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from routelab.domain import Action, BadInput, Example, Status
from routelab.providers.openai.tokens import count_tokens
from routelab.providers.prompts import ROUTER_PROMPT_VERSION, assistant_answer, prompt_hash, router_system_prompt
from routelab.store import ExampleFilter, Store

DEFAULT_BASE_MODEL = "gpt-4.1-mini-2025-04-14"
MIN_EXAMPLES = 10  # OpenAI rejects smaller training files
# Per-example training context of the fine-tunable models (tokens); unknown models get the default.
TOKEN_LIMITS = {"gpt-4o-mini": 65_536, "gpt-4.1": 65_536, "gpt-4.1-mini": 65_536, "gpt-4.1-nano": 65_536}
DEFAULT_TOKEN_LIMIT = 65_536
# The cookbook's default-epochs rule.
TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES = 3, 100, 25_000
MIN_DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS = 1, 25
ROLES = {"system", "user", "assistant", "function", "tool"}
MESSAGE_KEYS = {"role", "content", "name", "function_call", "weight", "tool_calls", "tool_call_id"}


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
class Export:
    train: list[ExportLine]
    validation: list[ExportLine]
    new_validation_ids: list[int]  # pool examples this export puts into the validation split
    system_prompt: str
    report: dict[str, Any]

    def data(self, part: str) -> bytes:
        lines = self.train if part == "train" else self.validation
        return "".join(line.json() + "\n" for line in lines).encode("utf-8")

    @property
    def digest(self) -> str:
        """Identity of the data (both files): an identical export is reused, not rewritten."""
        h = hashlib.sha256(self.data("train"))
        h.update(b"\x00")
        h.update(self.data("validation"))
        return h.hexdigest()


@dataclass
class ExportResult:
    out_dir: Path
    train_path: Path
    validation_path: Path | None
    report: dict[str, Any]
    reused: bool = False
    files: dict[str, dict[str, Any]] = field(default_factory=dict)


# ------------------------------------------------------------------ text helpers


def near_key(text: str) -> str:
    """Near-identical texts share a key: lowercase, punctuation and whitespace removed."""
    key = re.sub(r"[\W_]+", "", text.lower(), flags=re.UNICODE)
    return key or text.strip().lower()


def token_limit_for(base_model: str) -> int:
    name = base_model.removeprefix("ft:").split(":")[0]
    for prefix in sorted(TOKEN_LIMITS, key=len, reverse=True):
        if name.startswith(prefix):
            return TOKEN_LIMITS[prefix]
    return DEFAULT_TOKEN_LIMIT


def default_epochs(n_train: int) -> int:
    """The cookbook rule: 3, raised for small sets, lowered for huge ones."""
    n_epochs = TARGET_EPOCHS
    if n_train and n_train * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        n_epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_train)
    elif n_train * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        n_epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_train)
    return n_epochs


def training_price_per_1m(base_model: str) -> float | None:
    """Price of training on 1M tokens from the project's dated price table (None: unknown model)."""
    try:
        from routelab.pricing import training_price_per_1m as price
    except ImportError:  # pragma: no cover - the table lives in routelab.pricing
        return None
    try:
        value = price(base_model)
    except (KeyError, ValueError):
        return None
    return None if value is None else float(value)


def price_table_date() -> str | None:
    try:
        import routelab.pricing as pricing
    except ImportError:  # pragma: no cover
        return None
    for name in ("PRICES_AS_OF", "PRICE_DATE", "AS_OF"):
        if hasattr(pricing, name):
            return str(getattr(pricing, name))
    return None


# ------------------------------------------------------------------ the cookbook checks


def check_chat_lines(rows: list[Any], token_limit: int | None = None) -> dict[str, list[int]]:
    """Format errors of chat fine-tuning rows (the cookbook's checks), as {error: [line numbers]}."""
    errors: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(rows, start=1):
        if not isinstance(ex, dict):
            errors["data_type"].append(i)
            continue
        messages = ex.get("messages")
        if not isinstance(messages, list) or not messages:
            errors["missing_messages_list"].append(i)
            continue
        bad = False
        for m in messages:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                errors["message_missing_key"].append(i)
                bad = True
                break
            if any(k not in MESSAGE_KEYS for k in m):
                errors["message_unrecognized_key"].append(i)
                bad = True
            if m.get("role") not in ROLES:
                errors["unrecognized_role"].append(i)
                bad = True
            content = m.get("content")
            if (content is None and not m.get("function_call") and not m.get("tool_calls")) or (
                content is not None and not isinstance(content, str)
            ):
                errors["missing_content"].append(i)
                bad = True
        if bad:
            continue
        if not any(m.get("role") == "assistant" for m in messages):
            errors["example_missing_assistant_message"].append(i)
            continue
        if token_limit is not None and count_tokens(messages) > token_limit:
            errors["over_token_limit"].append(i)
    return {k: sorted(set(v)) for k, v in errors.items()}


def describe_errors(errors: dict[str, list[int]], what: str) -> str:
    parts = []
    for kind, lines in errors.items():
        shown = ", ".join(str(n) for n in lines[:5]) + (" ..." if len(lines) > 5 else "")
        parts.append(f"{kind.replace('_', ' ')} on {len(lines)} line(s) ({shown})")
    return f"{what}: " + "; ".join(parts)


def check_jsonl_file(path: Path, token_limit: int | None = None) -> int:
    """Re-check a file on disk before it is uploaded. Returns its line count; raises BadInput."""
    rows: list[Any] = []
    bad_json: list[int] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: cannot read ({e})") from None
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            bad_json.append(i)
            rows.append(None)
    errors = check_chat_lines(rows, token_limit)
    if bad_json:
        errors = {"invalid_json": bad_json, **{k: v for k, v in errors.items() if k != "data_type"}}
    if errors:
        raise BadInput(describe_errors(errors, f"{path.name} is not valid fine-tuning data"))
    return len(rows)


# ------------------------------------------------------------------ building the export


def default_teacher(store: Store) -> str | None:
    models = store.proposal_models()
    return models[0] if models else None


def _all_examples(store: Store, flt: ExampleFilter) -> list[Example]:
    out: list[Example] = []
    after = 0
    while True:
        page = store.page(flt, after=after, limit=5000)
        if not page:
            return out
        out += page
        after = page[-1].id


def build_export(store: Store, opts: ExportOptions = ExportOptions()) -> Export:
    """Label, split and check everything in memory. Raises BadInput; writes nothing."""
    opts.check()
    actions: list[Action] = store.actions()
    if not actions:
        raise BadInput("the workspace has no actions: add some with `routelab actions add` first")
    names = {a.name for a in actions}
    teacher = None if opts.reviewed_only else (opts.teacher or default_teacher(store))
    if opts.teacher and opts.teacher not in store.proposal_models():
        raise BadInput(f"no proposals from teacher {opts.teacher!r} in this workspace")
    system = router_system_prompt(actions)
    limit = opts.token_limit or token_limit_for(opts.base_model)

    test_keys = {near_key(e.text) for e in _all_examples(store, ExampleFilter(split="test"))}
    left_out: Counter[str] = Counter()
    left_out["test_split"] = store.count(ExampleFilter(split="test"))
    pool: list[tuple[Example, str, str]] = []  # (example, action, origin)
    candidates = [e for e in _all_examples(store, ExampleFilter()) if e.split != "test"]
    proposals = store.proposals_for(teacher) if teacher else {}
    for e in candidates:
        if e.status == Status.SKIPPED:
            left_out["skipped"] += 1
            continue
        if e.status == Status.FLAGGED:
            left_out["flagged"] += 1
            continue
        if e.label is not None:
            action, origin = e.label, "human"
        else:
            p = proposals.get(e.id)
            if p is None or not p.valid or p.action is None:
                left_out["invalid_teacher_answer" if p is not None else "unlabelled"] += 1
                continue
            action, origin = p.action, "teacher"
        if action not in names:
            left_out["inactive_action"] += 1
            continue
        if near_key(e.text) in test_keys:
            left_out["same_as_a_test_question"] += 1
            continue
        pool.append((e, action, origin))

    # Group near-identical texts; each group goes wholly to one side.
    groups: dict[str, list[tuple[Example, str, str]]] = defaultdict(list)
    for item in pool:
        groups[near_key(item[0].text)].append(item)
    by_action: dict[str, list[str]] = defaultdict(list)
    for key, items in groups.items():
        counts = Counter(a for _, a, _ in items)
        top = max(sorted(counts), key=lambda a: counts[a])
        by_action[top].append(key)
    val_keys: set[str] = set()
    for action in sorted(by_action):
        keys = sorted(by_action[action])
        n = sum(len(groups[k]) for k in keys)
        target = min(round(opts.val_fraction * n), n - 1)
        pinned = [k for k in keys if any(e.split == "validation" for e, _, _ in groups[k])]
        val_keys.update(pinned)
        taken = sum(len(groups[k]) for k in pinned)
        rest = [k for k in keys if k not in val_keys]
        random.Random(f"{opts.seed}:{action}").shuffle(rest)
        for k in rest:
            if taken >= target:
                break
            if taken + len(groups[k]) <= target:
                val_keys.add(k)
                taken += len(groups[k])

    train: list[ExportLine] = []
    validation: list[ExportLine] = []
    new_val: list[int] = []
    for key in sorted(groups):
        for e, action, origin in groups[key]:
            messages = [{"role": "system", "content": system}]
            messages += [{"role": m.role, "content": m.content} for m in e.conversation or []]
            messages += [{"role": "user", "content": e.text}, {"role": "assistant", "content": assistant_answer(action)}]
            line = ExportLine(e.id, action, origin, messages)
            if key in val_keys:
                validation.append(line)
                if e.split != "validation":
                    new_val.append(e.id)
            else:
                train.append(line)
    for lines, salt in ((train, "train"), (validation, "validation")):
        lines.sort(key=lambda ln: ln.example_id)
        random.Random(f"{opts.seed}:{salt}").shuffle(lines)

    # Bad input, checked before anything is written.
    if len(train) < MIN_EXAMPLES:
        raise BadInput(
            f"only {len(train)} training examples; fine-tuning needs at least {MIN_EXAMPLES} "
            "(label or review more, or lower --val-fraction)"
        )
    train_counts = Counter(ln.action for ln in train)
    missing = [a.name for a in actions if train_counts[a.name] == 0]
    if missing:
        shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise BadInput(f"no training examples for action(s) {shown}: label some, or deactivate the action")
    rows = [{"messages": ln.messages} for ln in train + validation]
    errors = check_chat_lines(rows, None)
    if errors:  # our own lines: a bug rather than bad input, but never upload them
        raise BadInput(describe_errors(errors, "the export failed the format checks"))
    for ln in train + validation:
        ln.tokens = count_tokens(ln.messages)
    too_long = [ln for ln in train + validation if ln.tokens > limit]
    if too_long:
        ids = ", ".join(f"#{ln.example_id}" for ln in too_long[:5])
        raise BadInput(
            f"{len(too_long)} example(s) over the {limit}-token limit of {opts.base_model} ({ids}); "
            "shorten their conversation or skip them"
        )

    report = _report(opts, train, validation, left_out, teacher, system, limit, actions)
    return Export(train, validation, new_val, system, report)


def _report(
    opts: ExportOptions, train: list[ExportLine], validation: list[ExportLine], left_out: Counter[str],
    teacher: str | None, system: str, limit: int, actions: list[Action],
) -> dict[str, Any]:
    train_tokens = sum(ln.tokens for ln in train)
    epochs = opts.epochs or default_epochs(len(train))
    billed = epochs * sum(min(limit, ln.tokens) for ln in train)
    price = training_price_per_1m(opts.base_model)
    origins = Counter(ln.origin for ln in train + validation)

    def part(lines: list[ExportLine]) -> dict[str, Any]:
        counts = Counter(ln.action for ln in lines)
        tokens = [ln.tokens for ln in lines]
        return {
            "examples": len(lines),
            "by_action": {a.name: counts.get(a.name, 0) for a in actions},
            "tokens": sum(tokens),
            "max_example_tokens": max(tokens, default=0),
            "human_labels": sum(1 for ln in lines if ln.origin == "human"),
            "teacher_labels": sum(1 for ln in lines if ln.origin == "teacher"),
        }

    return {
        "format": "openai-chat-jsonl",
        "prompt_version": ROUTER_PROMPT_VERSION,
        "prompt_sha": prompt_hash(system),
        "base_model": opts.base_model,
        "seed": opts.seed,
        "val_fraction": opts.val_fraction,
        "reviewed_only": opts.reviewed_only,
        "teacher": teacher,
        "labels": {"human": origins.get("human", 0), "teacher": origins.get("teacher", 0)},
        "train": part(train),
        "validation": part(validation),
        "left_out": dict(sorted(left_out.items())),
        "token_limit": limit,
        "train_tokens": train_tokens,
        "epochs": epochs,
        "epochs_rule": "given" if opts.epochs else "cookbook default",
        "billed_tokens": billed,
        "price_per_1m": price,
        "price_table": price_table_date(),
        "estimated_cost": None if price is None else round(billed * price / 1e6, 4),
    }


# ------------------------------------------------------------------ writing


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; an export is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_export(store: Store, export: Export, out_dir: Path | str, *, save_split: bool = True) -> ExportResult:
    """Write train.jsonl, validation.jsonl and report.json atomically (an identical export is reused).

    The examples this export put into validation are recorded in the workspace (split =
    validation), so the next export keeps them there and a later model is never trained on them.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BadInput(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    train_data, val_data = export.data("train"), export.data("validation")
    train_path, val_path = out / "train.jsonl", out / "validation.jsonl"
    reused = (
        train_path.is_file() and train_path.read_bytes() == train_data
        and ((not val_data and not val_path.exists()) or (val_path.is_file() and val_path.read_bytes() == val_data))
    )
    files = {"train": {"path": str(train_path), "sha256": hashlib.sha256(train_data).hexdigest(),
                       "lines": len(export.train), "bytes": len(train_data)}}
    if val_data:
        files["validation"] = {"path": str(val_path), "sha256": hashlib.sha256(val_data).hexdigest(),
                               "lines": len(export.validation), "bytes": len(val_data)}
    report = {**export.report, "files": files, "digest": export.digest}
    if not reused:
        _atomic_write(train_path, train_data)
        if val_data:
            _atomic_write(val_path, val_data)
        else:
            val_path.unlink(missing_ok=True)
    _atomic_write(out / "report.json", (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    if save_split and export.new_validation_ids:
        store.set_split(export.new_validation_ids, "validation")
    return ExportResult(out, train_path, val_path if val_data else None, report, reused, files)


def export_dataset(store: Store, out_dir: Path | str, opts: ExportOptions = ExportOptions()) -> ExportResult:
    return write_export(store, build_export(store, opts), out_dir)


def default_export_dir(db_path: Path, export: Export) -> Path:
    """Where `finetune` keeps its exports: beside the workspace, one folder per distinct data set."""
    return db_path.parent / f"{db_path.stem}-exports" / export.digest[:12]


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
    if report["left_out"]:
        lines.append("left out: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report["left_out"].items()))
    lines.append(
        f"tokens: {tr['tokens']:,} train, {va['tokens']:,} validation (longest example {max(tr['max_example_tokens'], va['max_example_tokens']):,}, "
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
