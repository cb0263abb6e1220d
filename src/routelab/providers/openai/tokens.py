"""Tokens of chat messages, counted offline with o200k_base (`bpe-openai` ships the encoding).

One formula for every estimate and limit: the OpenAI cookbook's num_tokens_from_messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _encoding():
    import bpe_openai

    return bpe_openai.get_encoding("o200k_base")


@lru_cache(maxsize=64)
def _role_tokens(role: str) -> int:
    return len(_encoding().encode_ordinary(role))


def count_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """The cookbook's num_tokens_from_messages with o200k_base (offline).

    Text that spells a special token (`<|endoftext|>`) is counted as the ordinary text it is
    in a question or a fine-tuning file, rather than refused (the cookbook's `encode` raises on it).
    """
    enc = _encoding()
    n = 3  # every reply is primed with <|start|>assistant<|message|>
    for m in messages:
        n += 3
        for key, value in m.items():
            if isinstance(value, str):
                n += _role_tokens(value) if key == "role" else len(enc.encode_ordinary(value))
            if key == "name":
                n += 1
    return n
