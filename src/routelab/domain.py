"""The nouns of routelab as pydantic models, shared by every layer.

Nothing here touches the disk, the network or a UI.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field, field_validator

SPLITS = ("train", "validation", "test", "unassigned")
Split = Literal["train", "validation", "test", "unassigned"]
# Action names are identifiers downstream, so no spaces or control characters; anything
# else real catalogs use is allowed (BANKING77 has "reverted_card_payment?").
ACTION_NAME_RE = re.compile(r"^[^\s\x00-\x1f\x7f-\x9f]{1,80}$")
MAX_TEXT_CHARS = 20_000  # a routed message longer than this is a paste accident, not a question


class RoutelabError(Exception):
    """An error with a one-line message for the user; `exit_code` follows the CLI contract."""

    exit_code = 1


class BadInput(RoutelabError):
    """The user gave us something we cannot use (exit 2). Nothing was changed."""

    exit_code = 2


class Interrupted(RoutelabError):
    """The user stopped an all-or-nothing command (Ctrl-C): nothing was changed."""

    exit_code = 130


class DecisionKind(StrEnum):
    ACCEPT = "accept"
    OVERRIDE = "override"
    SKIP = "skip"
    FLAG = "flag"
    UNDO = "undo"
    IMPORT = "import"


class Status(StrEnum):
    """Review status of an example, derived from its decisions."""

    UNREVIEWED = "unreviewed"
    REVIEWED = "reviewed"  # has a human label (accept, override or import)
    SKIPPED = "skipped"
    FLAGGED = "flagged"


class JobStatus(StrEnum):
    QUEUED = "queued"
    VALIDATING = "validating"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "function"]
    content: str


class Action(BaseModel):
    name: str
    description: str = ""
    code: int | None = None
    active: bool = True
    # The action a router answers when no other fits (out of scope); at most one per catalog.
    fallback: bool = False

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        v = v.strip()
        if not ACTION_NAME_RE.match(v):
            raise ValueError(
                f"action name {v!r} must be 1-80 characters without spaces or control characters"
            )
        return v


def normalize_text(text: str) -> str:
    """Whitespace-collapsed, NFC text: the folded form the content hash compares, never stored.

    (Workspaces made before text was stored as given hold this form, so their hashes stay valid.)
    """
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def content_hash(text: str, conversation: list[Message] | None = None) -> str:
    """Identity of an example: same question with the same history is the same example.

    Compared folded (`normalize_text`): "Help!  Now" and "Help! Now" are one example.
    """
    if not conversation:
        return hashlib.sha1(normalize_text(text).encode("utf-8")).hexdigest()
    payload = [[m.role, normalize_text(m.content)] for m in conversation] + [normalize_text(text)]
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha1(raw.encode("utf-8")).hexdigest()


def clean_text(text: str) -> str:
    """Text as given, less C0/C1 control characters other than newline and tab (CR LF and a
    lone CR become a newline); ValueError for a lone surrogate, which no file can store."""
    if text.isprintable():  # the common case, at C speed
        return text
    if (lone := _SURROGATE.search(text)) is not None:
        raise ValueError(f"a lone surrogate ({lone.group()!r}) is not text")
    return _CONTROL.sub("", _CR.sub("\n", text))


def clean_message(m: Message | dict[str, Any]) -> Message:
    """A conversation message with its content cleaned like a question's (`clean_text`)."""
    m = m if isinstance(m, Message) else Message.model_validate(m)
    content = clean_text(m.content)
    return m if content == m.content else m.model_copy(update={"content": content})


def check_text(text: str) -> str:
    """Question text as stored (`clean_text`), or ValueError saying what is wrong with it."""
    text = clean_text(text)
    if not text.strip():
        raise ValueError("empty text")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"text longer than {MAX_TEXT_CHARS} characters")
    return text


@dataclass(slots=True)
class NewExample:
    """An example as read from a file, before it has an id. Checked and cleaned on creation.

    A plain dataclass, not a pydantic model: imports build a million of these.
    """

    text: str
    conversation: list[Message] | None = None  # earlier turns; `text` is the last user message
    source: str = "user"
    split: Split = "unassigned"
    label: str | None = None  # a human label from the file

    def __post_init__(self) -> None:
        self.text = check_text(self.text)
        if self.conversation:
            self.conversation = [clean_message(m) for m in self.conversation]
        else:
            self.conversation = None
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}")

    @property
    def hash(self) -> str:
        return content_hash(self.text, self.conversation)

    def row(self) -> ExampleRow:
        """The example as the store inserts it; plain tuples travel cheaply between processes."""
        conversation = conversation_json(self.conversation) if self.conversation else None
        return (self.text, conversation, self.source, self.split, self.hash, self.label)


# (text, conversation JSON or None, source, split, content hash, file label or None)
ExampleRow = tuple[str, str | None, str, str, str, str | None]


class RowChunk(NamedTuple):
    """A run of parsed examples, and how far through its file they reach (0..1)."""

    rows: list[ExampleRow]
    fraction: float
    # the label the file itself calls out of scope (CLINC150's "oos"): an import that creates
    # that action makes it the catalog's fallback
    fallback: str | None = None


def conversation_json(conversation: list[Message] | None) -> str | None:
    """How a conversation is stored in examples.conversation."""
    if not conversation:
        return None
    return json.dumps([m.model_dump() for m in conversation], ensure_ascii=False)


@dataclass(frozen=True)
class ExampleFilter:
    """What the review pane (or a service) wants to see. Every field narrows the set;
    the store turns it into SQL (`routelab.store.filter_sql`)."""

    status: Status | None = None
    source: str | None = None
    split: str | None = None
    action: str | None = None  # current label, or proposed by any model when unlabelled
    query: str | None = None  # full-text search
    disagreement: bool = False  # at least two valid proposals that differ
    max_confidence: float | None = None  # some proposal below this confidence
    model: str | None = None  # restricts disagreement/confidence/action to one model's proposals
    ids: tuple[int, ...] | None = None  # an explicit set (e.g. one cell of a confusion matrix)
    conflict: bool = False  # has a human label and a valid proposal that disagrees with it
    hide_test: bool = False  # leave the test split out unless `split` names it (see `guarded`)

    def guarded(self) -> ExampleFilter:
        """The filter as review and bulk accept use it: test-split questions only when `split` names
        the test split. Held-out labels reviewed toward a model's answer would inflate its test score."""
        return self if self.hide_test or self.split is not None else replace(self, hide_test=True)


class Example(BaseModel):
    id: int
    text: str
    conversation: list[Message] | None = None
    source: str
    split: Split
    hash: str
    created_at: str
    label: str | None = None  # current human label, derived from decisions
    status: Status = Status.UNREVIEWED

    def messages(self) -> list[Message]:
        """The whole exchange as the router sees it: history, then the question."""
        return [*(self.conversation or []), Message(role="user", content=self.text)]


class Proposal(BaseModel):
    id: int | None = None
    example_id: int
    model: str
    prompt_version: str = "v1"
    action: str | None  # None when the answer was invalid (refusal, unparsable, unknown)
    valid: bool = True
    confidence: float | None = None
    raw: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    latency_ms: float | None = None
    created_at: str = Field(default_factory=now_iso)


class Decision(BaseModel):
    id: int | None = None
    example_id: int
    kind: DecisionKind
    action: str | None = None
    model: str | None = None  # whose proposal was accepted
    undoes: int | None = None  # for kind=undo: the decision it cancels
    at: str = Field(default_factory=now_iso)


class Job(BaseModel):
    id: int | None = None
    kind: Literal["label", "generate", "finetune", "batch", "eval", "export"]
    provider: str = "local"
    status: JobStatus = JobStatus.QUEUED
    model: str | None = None
    remote_id: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    progress_done: int = 0
    progress_total: int | None = None
    cost: float = 0.0
    created_at: str = Field(default_factory=now_iso)
    updated_at: str = Field(default_factory=now_iso)
    finished_at: str | None = None


class JobEvent(BaseModel):
    id: int | None = None
    job_id: int
    remote_id: str | None = None  # the provider's event id, so polling stores each event once
    at: str = Field(default_factory=now_iso)
    level: Literal["info", "warn", "error"] = "info"
    type: Literal["message", "metrics"] = "message"
    message: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class TrainedModel(BaseModel):
    """A router that training produced: a local artifact, or a remote fine-tuned model id."""

    id: str  # what `routelab route --model ID` takes (for OpenAI: the fine-tuned model name)
    provider: str  # local | openai
    kind: Literal["teacher", "finetune"] = "finetune"
    base: str | None = None
    job_id: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    artifact: bytes | None = None  # local models: the serialized classifier
    created_at: str = Field(default_factory=now_iso)


class Evaluation(BaseModel):
    id: int | None = None
    job_id: int | None = None
    model: str
    split: str | None = None
    source: str | None = None
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    macro_f1: float | None = None
    invalid_rate: float = 0.0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    cost_per_1k: float | None = None
    details: dict[str, Any] = Field(default_factory=dict)  # per-class metrics, confusion, by-source
    created_at: str = Field(default_factory=now_iso)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0/C1 less tab and newline
_CR = re.compile(r"\r\n?")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


# Bidirectional overrides and isolates reorder what a reader sees ("Trojan Source"):
# they are shown as a visible code instead of being applied.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """Untrusted text made safe to show: C0/C1 control characters (ESC included) removed,
    bidi controls made visible as <U+202E>."""
    return _BIDI.sub(lambda m: f"<U+{ord(m.group()):04X}>", _CONTROL.sub("", text))
