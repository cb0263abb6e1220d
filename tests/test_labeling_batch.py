"""`routelab label --batch`: the Batch API path end to end against the fake server."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from routelab import pricing
from routelab.services.batch_labeling import label_batch
from routelab.services.labeling import label
from tests.fake_openai import REFUSE, default_answer
from tests.test_labeling import add_questions, per_example_counts, teacher


def test_batch_end_to_end_half_price(store, fake_openai):
    add_questions(store, 25)
    fake_openai.answer = lambda m, e: REFUSE if m[-1]["content"].startswith("question 3:") else default_answer(m, e)
    seen = []
    result = label_batch(store, teacher(), poll_interval=0, progress=seen.append)
    assert result.status == "succeeded" and result.labelled == 25 and result.invalid == 1 and result.remaining == 0
    counts = per_example_counts(store, "gpt-4.1")
    assert len(counts) == 25 and set(counts.values()) == {1}
    proposals = list(store.proposals_for("gpt-4.1").values())
    for p in proposals:
        assert p.cost == pytest.approx(pricing.chat_cost("gpt-4.1", p.tokens_in, p.tokens_out) / 2)
    assert result.cost == pytest.approx(sum(p.cost for p in proposals))
    # one upload with purpose batch, one batch, no chat completions over HTTP
    assert [f["purpose"] for f in fake_openai.files.values()].count("batch") == 1
    assert len(fake_openai.batches) == 1 and fake_openai.chat_requests() == []
    job = store.jobs(kind="batch")[0]
    assert job.status == "succeeded" and job.remote_id in fake_openai.batches
    assert job.progress_total == 25 and job.result["stored"] == 25
    assert job.cost == pytest.approx(result.cost, abs=1e-6)
    assert any("completed" in e.message for e in store.job_events(job.id))
    assert seen and seen[-1].done == 25
    # the batch lines carry the same shuffled, schema-forced request as the live path
    line = json.loads(next(iter(v for k, v in fake_openai.file_bytes.items()
                                 if fake_openai.files[k]["purpose"] == "batch")).splitlines()[0])
    assert line["url"] == "/v1/chat/completions" and line["custom_id"].startswith("ex-")
    assert line["body"]["response_format"]["json_schema"]["strict"] is True
    again = label_batch(store, teacher(), poll_interval=0)
    assert again.status == "nothing to do" and len(fake_openai.batches) == 1


def test_unfinished_batch_is_resumed_not_resubmitted(store, fake_openai):
    add_questions(store, 12)
    first = label_batch(store, teacher(), wait=False, limit=8)
    assert first.status in ("validating", "in_progress", "finalizing")
    assert store.jobs(kind="batch", active_only=True)[0].remote_id == first.remote_id
    add_questions(store, 3, prefix="later")  # arrives meanwhile: not part of the running batch
    second = label_batch(store, teacher(), poll_interval=0)
    assert second.remote_id == first.remote_id and len(fake_openai.batches) == 1
    assert second.labelled == 8 and second.remaining == 7
    # the live path finishes the rest, sending nothing the batch answered
    live = label(store, teacher())
    assert live.labelled == 7
    assert Counter(per_example_counts(store, "gpt-4.1").values()) == {1: 15}


def test_cli_batch_no_wait_then_collect(store, fake_openai, db_path, run_cli):
    add_questions(store, 6)
    r = run_cli("label", "--db", db_path, "--batch", "--no-wait")
    assert r.code == 0 and "run `routelab label --batch` again" in r.out
    r = run_cli("label", "--db", db_path, "--batch", "--poll-interval", "0", "--json")
    assert r.code == 0, r
    doc = json.loads(r.out)
    assert doc["labelled"] == 6 and doc["status"] == "succeeded" and len(fake_openai.batches) == 1
