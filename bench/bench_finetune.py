"""Local fine-tune: export + training time and accuracy, on the HR demo and on a large synthetic set.

Run 1: the bundled HR demo (240 train / 60 validation after export): export seconds,
training seconds, validation accuracy, and accuracy of the new model on the demo's
hand-labelled test split. Run 2: N synthetic questions over K actions (default 10,000 x
77, BANKING77's shape) to show how training time scales. Prints one JSON line.

    python bench/bench_finetune.py [--n 10000] [--classes 77]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from routelab.config import Settings  # noqa: E402
from routelab.domain import Action, NewExample  # noqa: E402
from routelab.providers import registry  # noqa: E402
from routelab.services.demo import create_demo_workspace  # noqa: E402
from routelab.services.finetune import FinetuneOptions, plan_finetune, start_finetune  # noqa: E402
from routelab.store import ExampleFilter, Store  # noqa: E402


def run(store: Store, settings: Settings) -> dict:
    t0 = time.perf_counter()
    plan = plan_finetune(store, FinetuneOptions(provider="local"), settings)
    t1 = time.perf_counter()
    job = start_finetune(store, plan, settings)
    t2 = time.perf_counter()
    model_id = job.result["fine_tuned_model"]
    metrics = store.trained_model(model_id, with_artifact=False).metrics
    out = {"train": plan.report["train"]["examples"], "validation": plan.report["validation"]["examples"],
           "export_s": round(t1 - t0, 2), "train_s": round(t2 - t1, 2),
           "valid_accuracy": metrics.get("valid_accuracy"), "model": model_id}
    test = store.page(ExampleFilter(split="test"), limit=100_000)
    test = [e for e in test if e.label]
    if test:
        routes = registry.router(store, model_id, settings).route_batch(test, store.actions())
        out["test_accuracy"] = round(sum(r.action == e.label for r, e in zip(routes, test)) / len(test), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--classes", type=int, default=77)
    args = ap.parse_args()
    settings = Settings(_env_file=None)
    with tempfile.TemporaryDirectory() as tmp:
        demo = create_demo_workspace(Path(tmp) / "demo.db")
        result = {"bench": "finetune_local", "demo": run(demo, settings)}
        demo.close()
        rng = random.Random(0)
        vocab = sorted({w.strip(".,?!'").lower() for line in (ROOT / "data" / "demo" / "questions.jsonl").read_text().splitlines()
                        for w in json.loads(line)["text"].split() if w.isalpha()})
        store = Store.open(Path(tmp) / "synthetic.db")
        store.upsert_actions([Action(name=f"intent_{i}", description=f"intent {i}") for i in range(args.classes)])
        keys = {i: rng.sample(vocab, 3) for i in range(args.classes)}
        examples = []
        for n in range(args.n):
            i = rng.randrange(args.classes)
            words = rng.sample(keys[i], 2) + rng.sample(vocab, 5)
            examples.append(NewExample(text=" ".join(words) + f" {n}", split="train", label=f"intent_{i}"))
        store.add_examples(examples)
        result["synthetic"] = {"n": args.n, "classes": args.classes, **run(store, settings)}
        store.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
