"""The price table and the cost estimate a run shows before it spends."""

from __future__ import annotations

import json

import pytest

from routelab import pricing
from routelab.domain import BadInput, NewExample
from routelab.providers.openai.tokens import count_tokens
from routelab.services.labeling import estimate_label_cost
from tests.test_labeling import add_questions, teacher


def test_chat_prices_dated_names_finetuned_and_batch():
    assert pricing.chat_cost("gpt-4.1", 1_000_000, 0) == pytest.approx(2.0)
    assert pricing.chat_cost("gpt-4.1", 0, 1_000_000) == pytest.approx(8.0)
    assert pricing.chat_cost("gpt-4.1-mini-2025-04-14", 1_000_000, 1_000_000) == pytest.approx(2.0)
    assert pricing.chat_cost("gpt-4o-mini", 1_000_000, 0, batch=True) == pytest.approx(0.075)
    ft = "ft:gpt-4.1-nano-2025-04-14:acme::AbC123"
    assert pricing.base_model(ft) == "gpt-4.1-nano"
    assert pricing.chat_price(ft) == (0.20, 0.80)
    assert pricing.chat_cost("llama3-local", 10**6, 10**6) == 0.0 and not pricing.known("llama3-local")


def test_training_prices():
    assert pricing.training_price_per_1m("gpt-4.1") == 25.0
    assert pricing.training_price_per_1m("gpt-4.1-mini-2025-04-14") == 5.0
    assert pricing.training_price_per_1m("gpt-4.1-nano") == 1.5
    assert pricing.training_price_per_1m("gpt-4o-mini-2024-07-18") == 3.0
    assert pricing.training_price_per_1m("gpt-3.5-turbo") is None
    assert pricing.training_cost("gpt-4.1-mini", 2_000_000) == pytest.approx(10.0)
    assert pricing.PRICES_AS_OF


def test_prices_are_overridable_from_a_file(tmp_path, monkeypatch):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"chat": {"my-vllm-model": [1.0, 2.0], "gpt-4.1": [1.5, 6.0]},
                                "training": {"gpt-4.1": 20}}))
    monkeypatch.setenv("ROUTELAB_PRICES", str(path))
    pricing.reload()
    try:
        assert pricing.chat_cost("my-vllm-model", 10**6, 10**6) == pytest.approx(3.0)
        assert pricing.chat_price("gpt-4.1") == (1.5, 6.0)
        assert pricing.training_price_per_1m("gpt-4.1") == 20.0
        path.write_text("{not json")
        pricing.reload()
        with pytest.raises(BadInput, match="ROUTELAB_PRICES"):
            pricing.table()
    finally:
        monkeypatch.delenv("ROUTELAB_PRICES")
        pricing.reload()
    assert pricing.chat_price("gpt-4.1") == (2.0, 8.0)


def test_estimate_counts_prompt_tokens_offline(store, fake_openai):
    add_questions(store, 30)
    router = teacher()
    est = estimate_label_cost(store, router, store.actions(), 30)
    assert est.n == 30 and est.priced and est.tokens_in > 30 * 100
    assert est.cost == pytest.approx(pricing.chat_cost("gpt-4.1", est.tokens_in, est.tokens_out))
    batch = estimate_label_cost(store, router, store.actions(), 30, batch=True)
    assert batch.cost == pytest.approx(est.cost / 2) and "half price" in batch.line()
    assert fake_openai.requests == []  # estimating sends nothing
    assert count_tokens([{"role": "user", "content": "hello world"}]) == 3 + 4 + 2
    store.add_examples([NewExample(text="x " * 500)])
    assert estimate_label_cost(store, router, store.actions(), 31).tokens_in > est.tokens_in
