"""Labeling throughput against the fake OpenAI server, and nothing lost under 429s.

Run 1: N questions, server latency L, concurrency C: throughput vs the bound C / L
(target >= 90%). Run 2: the same with 20% of calls answered 429 (retry-after 10 ms):
every example must end with exactly one proposal. Prints one JSON line.

The fake server runs in its own process, as a real endpoint would: in-process, its
threads would compete with the client for the GIL and the figure would measure both.

    python bench/bench_label.py [--n 1280] [--concurrency 32] [--latency 0.2] [--fault-rate 0.2]

1280 requests = 40 rounds of 32: the first round (32 connections opened) and the last
(workers idle while the stragglers finish) cost about half a round each, ~2.5% here,
~5% with 640. The figure is CPU-sensitive: on a 2-core machine busy with other work
it drops (load_avg_1m is printed with it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from routelab.config import Settings  # noqa: E402
from routelab.domain import NewExample  # noqa: E402
from routelab.providers import registry  # noqa: E402
from routelab.services.demo import demo_data_dir  # noqa: E402
from routelab.services.labeling import label  # noqa: E402
from routelab.services.parsing import read_actions  # noqa: E402
from routelab.store import Store  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

TOPICS = ["payslip", "holiday", "policy", "escalate", "tax code", "sick day", "grievance", "expenses"]


def serve(latency: float, fault_rate: float) -> None:
    """Child process: run the fake server until stdin closes."""
    fake = FakeOpenAI(latency=latency, seed=7).start()
    fake.fault_rate = fault_rate
    print(json.dumps({"base_url": fake.base_url, "api_key": fake.api_key}), flush=True)
    sys.stdin.read()
    answered = len(fake.chat_requests())
    print(json.dumps({"requests": len(fake.requests), "answered": answered}), flush=True)
    fake.stop()


def run(n: int, concurrency: int, latency: float, fault_rate: float, workdir: Path) -> dict:
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(latency), str(fault_rate)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    info = json.loads(server.stdout.readline())
    os.environ["OPENAI_API_KEY"] = info["api_key"]
    os.environ["OPENAI_BASE_URL"] = info["base_url"]
    path = workdir / f"bench-{fault_rate}.db"
    store = Store.open(path)
    try:
        store.upsert_actions(read_actions(demo_data_dir() / "actions.json"))
        store.add_examples([NewExample(text=f"bench question {i} about my {TOPICS[i % len(TOPICS)]}")
                            for i in range(n)])
        router = registry.router(store, "gpt-4.1", Settings(), timeout=30.0)
        t0 = time.perf_counter()
        result = label(store, router, concurrency=concurrency, spend_limit=1e9)
        wall = time.perf_counter() - t0
        per_example = store.conn.execute(
            "SELECT COUNT(*), MIN(c), MAX(c) FROM (SELECT COUNT(*) c FROM proposals GROUP BY example_id)"
        ).fetchone()
        server.stdin.close()
        seen = json.loads(server.stdout.readline())
        bound = concurrency / latency if latency > 0 else None
        rate = result.labelled / result.elapsed
        return {
            "n": n, "concurrency": concurrency, "latency_s": latency, "fault_rate": fault_rate,
            "labelled": result.labelled, "failed": result.failed, "invalid": result.invalid,
            "elapsed_s": round(result.elapsed, 3), "wall_s": round(wall, 3),
            "throughput_per_s": round(rate, 1), "bound_per_s": bound,
            "fraction_of_bound": round(rate / bound, 3) if bound else None,
            "http_requests": seen["requests"], "answered_200": seen["answered"], "retries": result.retries,
            "examples_with_proposal": per_example[0],
            "exactly_one_each": per_example[0] == n and per_example[1] == 1 and per_example[2] == 1,
            "cost_usd": round(result.cost, 4),
        }
    finally:
        store.close()
        if server.poll() is None:
            server.kill()
        server.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1280)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--fault-rate", type=float, default=0.2)
    ap.add_argument("--serve", nargs=2, type=float, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        serve(*a.serve)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        clean = run(a.n, a.concurrency, a.latency, 0.0, Path(tmp))
        faulty = run(a.n, a.concurrency, a.latency, a.fault_rate, Path(tmp))
    out = {
        "bench": "label",
        "throughput_per_s": clean["throughput_per_s"],
        "bound_per_s": clean["bound_per_s"],
        "fraction_of_bound": clean["fraction_of_bound"],
        "target": 0.9,
        "ok": bool(clean["fraction_of_bound"] and clean["fraction_of_bound"] >= 0.9
                   and clean["exactly_one_each"] and faulty["exactly_one_each"] and faulty["failed"] == 0),
        "clean": clean,
        "with_429": faulty,
    }
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)  # other work on the machine lowers the figure
    out["cpus"] = os.cpu_count()
    print(json.dumps(out))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
