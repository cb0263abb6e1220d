"""One dated, overridable price table (USD per 1M tokens).

Every API call records its tokens and the cost computed here, so the figures a user
sees are reproducible. Prices change: the table says when it was checked, and
`ROUTELAB_PRICES=/path/prices.json` (same shape as `table()`) overrides or extends it
without a release: `{"chat": {"my-model": [0.5, 1.5]}, "finetuned": {...}, "training": {...}}`.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

PRICES_AS_OF = "2025-06-01"  # the OpenAI pricing page, standard tier

# model -> (input, output) per 1M tokens
CHAT: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
}
# inference on a fine-tuned model (ft:BASE:org:suffix:id), priced by its base
FINETUNED: dict[str, tuple[float, float]] = {
    "gpt-4.1": (3.00, 12.00),
    "gpt-4.1-mini": (0.80, 3.20),
    "gpt-4.1-nano": (0.20, 0.80),
    "gpt-4o-mini": (0.30, 1.20),
}
# supervised fine-tuning, per 1M trained tokens (epochs x tokens)
TRAINING: dict[str, float] = {
    "gpt-4.1": 25.00,
    "gpt-4.1-mini": 5.00,
    "gpt-4.1-nano": 1.50,
    "gpt-4o-mini": 3.00,
}
BATCH_DISCOUNT = 0.5  # the Batch API bills half

_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def base_model(model: str) -> str:
    """`gpt-4.1-mini-2025-04-14` -> `gpt-4.1-mini`; `ft:gpt-4.1-nano-2025-04-14:org::id` -> `gpt-4.1-nano`."""
    name = model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 1 else model
    return _DATED.sub("", name)


@lru_cache(maxsize=1)
def table() -> dict[str, dict[str, Any]]:
    """The effective table: built-in prices, overridden by $ROUTELAB_PRICES if set."""
    out: dict[str, dict[str, Any]] = {
        "chat": dict(CHAT), "finetuned": dict(FINETUNED), "training": dict(TRAINING),
    }
    path = os.environ.get("ROUTELAB_PRICES")
    if path:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            for section in out:
                for model, price in (data.get(section) or {}).items():
                    out[section][model] = float(price) if section == "training" else (float(price[0]), float(price[1]))
        except (OSError, ValueError, TypeError, IndexError, AttributeError) as e:
            from routelab.domain import BadInput

            raise BadInput(f"ROUTELAB_PRICES={path}: cannot read a price table ({e})") from None
    return out


def reload() -> None:
    table.cache_clear()


def chat_price(model: str) -> tuple[float, float] | None:
    """(input, output) USD per 1M tokens, or None when the model is not in the table."""
    t = table()
    if model in t["chat"]:
        return t["chat"][model]
    base = base_model(model)
    if model.startswith("ft:"):
        return t["finetuned"].get(base)
    return t["chat"].get(base)


def known(model: str) -> bool:
    return chat_price(model) is not None


def chat_cost(model: str, tokens_in: int, tokens_out: int, batch: bool = False) -> float:
    """USD for one call; 0.0 for a model we have no price for (e.g. a self-hosted one)."""
    price = chat_price(model)
    if price is None:
        return 0.0
    cost = (tokens_in * price[0] + tokens_out * price[1]) / 1_000_000
    return cost * BATCH_DISCOUNT if batch else cost


def training_price_per_1m(base: str) -> float | None:
    """USD per 1M trained tokens for fine-tuning `base` (dated names accepted), or None."""
    t = table()["training"]
    return t.get(base, t.get(base_model(base)))


def training_cost(base: str, trained_tokens: int) -> float | None:
    price = training_price_per_1m(base)
    return None if price is None else trained_tokens * price / 1_000_000
