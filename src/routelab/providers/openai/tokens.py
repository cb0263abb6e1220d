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


def count_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """Prompt tokens of a chat request: the cookbook's count with o200k_base."""
    enc = _encoding()
    n = 3  # every reply is primed with <|start|>assistant<|message|>
    for m in messages:
        n += 3
        for key, value in m.items():
            if isinstance(value, str):
                n += len(enc.encode(value))
            if key == "name":
                n += 1
    return n
