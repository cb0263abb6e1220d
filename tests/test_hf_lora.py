"""hf LoRA, end to end on a tiny Llama made here (random weights, a byte-level BPE trained on the fly):
training on the exported chat JSONL with the loss on the answer only, events, cancel and resume,
routing by scoring every action (never free text), eval, and export-model's merged folder."""

from __future__ import annotations

import json
from pathlib import Path

from routelab.config import Settings
from routelab.domain import JobStatus
from routelab.providers import registry
from routelab.services.finetune import FinetuneOptions, plan_finetune, start_finetune
from routelab.services.jobs import JobService
from routelab.store import ExampleFilter, Store

FAST = {"method": "lora", "learning_rate": 5e-3, "batch_size": 8, "threads": 1, "lora_r": 4, "lora_alpha": 8}


def test_lora_from_the_cli_trains_routes_onto_the_catalog_and_exports(hf_causal_lm, hf_small_store, run_cli):
    store = hf_small_store
    db = store.path
    r = run_cli("--db", db, "finetune", "--provider", "hf", "--method", "lora", "--base-model", hf_causal_lm,
                "--epochs", "2", "--learning-rate", "5e-3", "--batch-size", "8", "--checkpoint-every", "4")
    assert r.code == 0, r
    assert "hf lora fine-tune of" in r.out
    [job] = store.jobs(kind="finetune")
    assert job.status == JobStatus.SUCCEEDED, job.error
    metrics = [e.data for e in store.job_events(job.id) if e.type == "metrics"]
    assert {"train_loss", "valid_loss", "valid_mean_token_accuracy"} <= {k for m in metrics for k in m}
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    model_id = job.result["fine_tuned_model"]
    trained = store.trained_model(model_id)
    folder = Path(trained.params["path"])
    assert trained.artifact is None and (folder / "adapter_config.json").exists()
    assert "valid_accuracy" in trained.metrics  # validation questions routed by scoring every action

    names = {a.name for a in store.actions()}
    test = store.page(ExampleFilter(split="test"), limit=100)
    routes = registry.router(store, model_id, Settings()).route_batch(test, store.actions())
    assert len(routes) == len(test) == 12
    assert all(r.valid and r.action in names and 0 < r.confidence <= 1 for r in routes)  # never free text

    r = run_cli("--db", db, "eval", "--models", f"local-zero-shot,{model_id}", "--json")
    assert r.code == 0, r
    rows = {m["model"]: m for m in json.loads(r.out)["models"]}
    assert rows[model_id]["n"] == 12 and rows[model_id]["invalid_rate"] == 0

    out = Path(db).parent / "served"
    r = run_cli("--db", db, "export-model", model_id, "--out", out)
    assert r.code == 0, r
    assert "vllm serve" in r.out and (out / "Modelfile").exists() and (out / "model.safetensors").exists()
    assert not (out / "adapter_config.json").exists()  # merged: plain weights a server loads
    _merged_scores_like_the_adapter(out, folder, store)


def _merged_scores_like_the_adapter(merged: Path, adapter: Path, store) -> None:
    """The merged folder, loaded as a plain causal LM, scores answers as the base + adapter did."""
    import pytest
    from peft import PeftModel

    from routelab.providers.hf.models import load_causal_lm, load_tokenizer, read_meta
    from routelab.providers.hf.scoring import ActionScorer

    meta = read_meta(adapter)
    names = [a.name for a in store.actions()]
    question = [{"role": "user", "content": "where is my payslip?"}]
    tok = load_tokenizer(str(merged))
    plain = ActionScorer(load_causal_lm(str(merged)).eval(), tok, meta["system_prompt"], names).score(question)
    peft = PeftModel.from_pretrained(load_causal_lm(meta["base"]), str(adapter)).eval()
    with_adapter = ActionScorer(peft, tok, meta["system_prompt"], names).score(question)
    assert plain.action == with_adapter.action
    for name in names:
        assert plain.scores[name] == pytest.approx(with_adapter.scores[name], abs=1e-3)


def test_lora_cancel_then_resume_from_the_checkpoint(hf_causal_lm, hf_small_store):
    store, settings = hf_small_store, Settings()
    options = FinetuneOptions(provider="hf", base_model=str(hf_causal_lm), epochs=2,
                              train_options={**FAST, "checkpoint_every": 2})
    other = Store.open(store.path)

    def cancel_at_step_3(ev) -> None:
        if ev.type == "metrics" and ev.data.get("step") == 3:
            JobService(other, settings).cancel(ev.job_id)

    job = start_finetune(store, plan_finetune(store, options, settings), settings, on_event=cancel_at_step_3)
    assert job.status == JobStatus.CANCELLED and not store.trained_models(provider="hf")
    again = start_finetune(store, plan_finetune(store, options, settings), settings)
    assert again.status == JobStatus.SUCCEEDED
    assert any(f"Resuming from the checkpoint at step 2 of job {job.id}" in e.message
               for e in store.job_events(again.id))
    steps = [e.data["step"] for e in store.job_events(again.id) if e.type == "metrics"]
    assert min(steps) == 3
    other.close()
