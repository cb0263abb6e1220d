"""The OpenAI cookbook's chat fine-tuning checks, token counting and the epochs rule.

`check_jsonl_file` re-checks a file on disk line by line before a trainer uses it, so a
million-line export is checked in constant memory.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from routelab.domain import BadInput
from routelab.providers.openai.tokens import count_tokens

MIN_EXAMPLES = 10  # OpenAI rejects smaller training files
# Per-example training context of the fine-tunable models (tokens); unknown models get the default.
TOKEN_LIMITS = {"gpt-4o-mini": 65_536, "gpt-4.1": 65_536, "gpt-4.1-mini": 65_536, "gpt-4.1-nano": 65_536}
DEFAULT_TOKEN_LIMIT = 65_536
# The cookbook's default-epochs rule.
TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES = 3, 100, 25_000
MIN_DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS = 1, 25
ROLES = {"system", "user", "assistant", "function", "tool"}
MESSAGE_KEYS = {"role", "content", "name", "function_call", "weight", "tool_calls", "tool_call_id"}
SHOWN = 5  # line numbers or ids quoted in an error


class TokenCounter:
    """count_tokens for many lines that repeat messages (the system prompt on every line).

    The count is a sum over messages (3 for the reply's priming, plus each message's own),
    so a repeated system or assistant message is counted once and remembered.
    """

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], int] = {}

    def message(self, m: dict[str, Any]) -> int:
        """Tokens of one message, without the reply's priming."""
        if m.keys() != {"role", "content"} or m["role"] == "user" or not isinstance(m["content"], str):
            return count_tokens([m]) - 3
        key = (m["role"], m["content"])
        n = self._known.get(key)
        if n is None:
            if len(self._known) > 10_000:  # many distinct answers: stay small
                self._known.clear()
            n = self._known[key] = count_tokens([m]) - 3
        return n

    def __call__(self, messages: Iterable[dict[str, Any]]) -> int:
        return 3 + sum(self.message(m) for m in messages)


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


def _message_errors(messages: list[Any]) -> list[str]:
    """The cookbook's per-message checks; a message without role or content stops the scan."""
    found: list[str] = []
    for m in messages:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            return [*found, "message_missing_key"]
        if any(k not in MESSAGE_KEYS for k in m):
            found.append("message_unrecognized_key")
        if m.get("role") not in ROLES:
            found.append("unrecognized_role")
        content = m.get("content")
        if (content is None and not m.get("function_call") and not m.get("tool_calls")) or (
            content is not None and not isinstance(content, str)
        ):
            found.append("missing_content")
    return found


def row_errors(row: Any, token_limit: int | None = None, counter: TokenCounter | None = None) -> list[str]:
    """The cookbook's format errors of one chat fine-tuning row (empty: the row is fine)."""
    if not isinstance(row, dict):
        return ["data_type"]
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return ["missing_messages_list"]
    found = _message_errors(messages)
    if found:
        return found
    if not any(m.get("role") == "assistant" for m in messages):
        return ["example_missing_assistant_message"]
    if token_limit is not None and (counter or count_tokens)(messages) > token_limit:
        return ["over_token_limit"]
    return []


def check_chat_lines(rows: list[Any], token_limit: int | None = None) -> dict[str, list[int]]:
    """Format errors of chat fine-tuning rows (the cookbook's checks), as {error: [line numbers]}."""
    errors: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows, start=1):
        for kind in row_errors(row, token_limit):
            errors[kind].append(i)
    return {k: sorted(set(v)) for k, v in errors.items()}


def describe_errors(errors: dict[str, list[int]], what: str) -> str:
    parts = []
    for kind, lines in errors.items():
        shown = ", ".join(str(n) for n in lines[:SHOWN]) + (" ..." if len(lines) > SHOWN else "")
        parts.append(f"{kind.replace('_', ' ')} on {len(lines)} line(s) ({shown})")
    return f"{what}: " + "; ".join(parts)


class _Errors:
    """Counts per error kind and the first few line numbers: a bad million-line file stays small."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.lines: dict[str, list[int]] = {}

    def add(self, kind: str, line: int) -> None:
        self.count[kind] = self.count.get(kind, 0) + 1
        shown = self.lines.setdefault(kind, [])
        if len(shown) < SHOWN:
            shown.append(line)

    def describe(self, what: str) -> str:
        parts = []
        for kind, n in self.count.items():
            lines = self.lines[kind]
            shown = ", ".join(str(x) for x in lines[:SHOWN]) + (" ..." if n > SHOWN else "")
            parts.append(f"{kind.replace('_', ' ')} on {n} line(s) ({shown})")
        return f"{what}: " + "; ".join(parts)


def check_jsonl_file(path: Path, token_limit: int | None = None) -> int:
    """Re-check a file on disk before it is uploaded. Returns its line count; raises BadInput.

    Lines are read as bytes (only "\n" ends one). A line of at most `token_limit` bytes is
    within the limit without counting: each token is at least one byte, and the JSON around
    every message is longer than the tokens the count adds for it.
    """
    bad_json, errors, counter, n = _Errors(), _Errors(), TokenCounter(), 0
    try:
        with Path(path).open("rb") as f:
            for i, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                n += 1
                try:
                    row = json.loads(line)
                except ValueError:  # UnicodeDecodeError too
                    bad_json.add("invalid_json", i)
                    continue
                limit = token_limit if token_limit is not None and len(line) > token_limit else None
                for kind in dict.fromkeys(row_errors(row, limit, counter)):
                    errors.add(kind, i)
    except OSError as e:
        raise BadInput(f"{path}: cannot read ({e})") from None
    if bad_json.count or errors.count:
        for kind in errors.count:  # invalid JSON first, as the file reads
            bad_json.count[kind], bad_json.lines[kind] = errors.count[kind], errors.lines[kind]
        raise BadInput(bad_json.describe(f"{Path(path).name} is not valid fine-tuning data"))
    return n
