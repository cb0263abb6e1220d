"""The hf backend's seams: what it says when its extra is missing, bad options, the answer-only loss
mask, length-grouped batches, exact action scoring, and a run over two processes (accelerate launch)."""

from __future__ import annotations

import os

import pytest

from routelab.config import Settings
from routelab.domain import BadInput, JobStatus
from routelab.providers.hf import deps
from routelab.providers.hf.data import IGNORE, length_batches
from routelab.providers.hf.options import parse_options


def test_without_torch_every_use_says_how_to_install_it(demo_store, run_cli, monkeypatch):
    real = deps.find_spec
    monkeypatch.setattr(deps, "find_spec", lambda name: None if name == "torch" else real(name))
    before = len(demo_store.jobs())
    r = run_cli("--db", demo_store.path, "finetune", "--provider", "hf", "--method", "lora")
    assert r.code == 2 and r.err.count("\n") == 1 and "pip install 'routelab[hf]'" in r.err, r
    assert len(demo_store.jobs()) == before  # nothing started
    r = run_cli("--db", demo_store.path, "route", "where is my payslip", "--model", "hf-zero-shot")
    assert r.code == 1 and "pip install 'routelab[hf]'" in r.err, r  # route: each model's failure on its row
    from routelab.services.workspace import Workspace  # the Jobs pane's path to a fine-tune

    with pytest.raises(BadInput, match=r"pip install 'routelab\[hf\]'"):
        Workspace(demo_store.path, Settings()).plan_finetune("hf")


def test_hf_options_are_refused_by_other_trainers_and_checked(demo_store, run_cli):
    r = run_cli("--db", demo_store.path, "finetune", "--provider", "local", "--method", "lora")
    assert r.code == 2 and "the local trainer takes no method option" in r.err, r
    r = run_cli("--db", demo_store.path, "finetune", "--provider", "hf", "--batch-size", "0")
    assert r.code == 2 and "--batch-size must be a positive whole number" in r.err, r
    with pytest.raises(BadInput, match="has no option warp"):
        parse_options({"warp": 9})
    assert parse_options({"method": "lora"}).lr == 2e-4 and parse_options({}).head_learning_rate == 1e-3


def test_batches_cover_every_example_once_grouped_by_length_and_replay_by_seed():
    lengths = [(i * 37) % 50 + 1 for i in range(500)]
    batches = length_batches(lengths, 16, seed=3)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500)) and batches == length_batches(lengths, 16, seed=3)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 10  # sorted within chunks: little padding (random batches would spread ~45)


def test_lora_labels_are_the_answer_and_the_end_of_turn_only(hf_causal_lm):
    from routelab.providers.hf.data import encode_lora, ensure_chat_template
    from routelab.providers.hf.models import load_tokenizer

    tok = load_tokenizer(str(hf_causal_lm))
    ensure_chat_template(tok)
    chat = [{"role": "system", "content": "You are an intent router."},
            {"role": "user", "content": "my payslip is wrong"}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "where is my payslip?"},
            {"role": "assistant", "content": '{"action": "get_payslip"}'}]
    [item] = encode_lora(tok, [chat], 1024).items
    learnt = [t for t in item["labels"] if t != IGNORE]
    assert learnt[-1] == tok.eos_token_id
    assert tok.decode(learnt[:-1]).strip() == '{"action": "get_payslip"}'
    assert item["input_ids"][-len(learnt):] == learnt  # the labels are the sequence's own last tokens


def test_action_scores_are_exact_log_probabilities(hf_causal_lm):
    import torch

    from routelab.providers.hf.data import answer_ids, ensure_chat_template, prompt_ids
    from routelab.providers.hf.models import load_causal_lm, load_tokenizer
    from routelab.providers.hf.scoring import ActionScorer
    from routelab.providers.prompts import assistant_answer

    model, tok = load_causal_lm(str(hf_causal_lm)).eval(), load_tokenizer(str(hf_causal_lm))
    ensure_chat_template(tok)
    actions = ["get_payslip", "book_holiday", "get_policy", "escalate", "x"]
    system, question = "Route it.", [{"role": "user", "content": "book me a holiday"}]
    scored = ActionScorer(model, tok, system, actions, chunk=2).score(question)  # cached prefix, chunks of 2
    for a in actions:  # the same number from one plain forward pass over prompt + answer
        p = prompt_ids(tok, [{"role": "system", "content": system}, *question])
        ans = answer_ids(tok, assistant_answer(a))
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=torch.tensor([p + ans])).logits[0].float(), -1)
        assert scored.scores[a] == pytest.approx(sum(float(logp[len(p) - 1 + j, t]) for j, t in enumerate(ans)),
                                                 abs=1e-4)
    assert scored.action == max(scored.scores, key=scored.scores.get) and 0 < scored.confidence <= 1


def test_two_processes_through_accelerate_launch(hf_encoder, hf_small_store, monkeypatch):
    """`--gpus 2`: routelab launches the workers and the job follows them (here two CPU processes)."""
    from routelab.services.finetune import FinetuneOptions, plan_finetune, start_finetune

    monkeypatch.setenv("ROUTELAB_HF_LAUNCH_CPU", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])))
    store, settings = hf_small_store, Settings()
    plan = plan_finetune(store, FinetuneOptions(provider="hf", base_model=str(hf_encoder), epochs=2, train_options={
        "gpus": 2, "batch_size": 8, "threads": 1, "learning_rate": 3e-3}), settings)
    assert "accelerate.commands.launch --multi_gpu --num_processes 2" in plan.summary
    job = start_finetune(store, plan, settings)
    assert job.status == JobStatus.SUCCEEDED, job.error
    messages = [e.message for e in store.job_events(job.id)]
    assert any(m.startswith("Launching: ") for m in messages) and any("2 processes" in m for m in messages)
    metrics = [e.data for e in store.job_events(job.id) if e.type == "metrics"]
    assert metrics[-1]["total_steps"] == 40 // 8 // 2 * 2  # each process takes every other batch
    assert store.trained_model(job.result["fine_tuned_model"]).provider == "hf"
