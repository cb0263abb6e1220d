"""Several GPUs: routelab runs `accelerate launch` and the job follows it.

The job's spec goes to `<job folder>/run.json`; the launched processes (worker.py) train
with DDP, and the main one writes what it would report as JSON lines to
`<job folder>/events.jsonl`. This process relays those lines to the job's reporter as they
come, and turns a cancel of the job (from any process) into a `cancel` file the workers
look for between steps. The command is printed (an event), so it can be run by hand too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from routelab.domain import JobStatus, TrainedModel
from routelab.providers.base import Cancelled, JobReporter, ProviderError

EVENTS, CANCEL, SPEC = "events.jsonl", "cancel", "run.json"


def launch_command(spec_path: Path, gpus: int) -> list[str]:
    # tests: several CPU processes (torchrun + gloo) stand in for the GPUs, the workers find no CUDA
    cpu = os.environ.get("ROUTELAB_HF_LAUNCH_CPU") == "1"
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(gpus),
            "--num_machines", "1", "--mixed_precision", "no" if cpu else "bf16", "-m", "routelab.providers.hf.worker",
            str(spec_path)]


def run_launched(spec, reporter: JobReporter, gpus: int, poll: float = 0.5) -> None:
    run_dir: Path = spec.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (EVENTS, CANCEL):
        (run_dir / name).unlink(missing_ok=True)
    spec.write(run_dir / SPEC)
    command = launch_command(run_dir / SPEC, gpus)
    reporter.event("Launching: " + " ".join(command))
    log = (run_dir / "launch.log").open("w", encoding="utf-8")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    relay = Relay(run_dir / EVENTS, reporter)
    try:
        while proc.poll() is None:
            relay.pump()
            if reporter.cancelled():
                (run_dir / CANCEL).touch()
            time.sleep(poll)
    except BaseException:
        (run_dir / CANCEL).touch()  # Ctrl-C here: the workers stop at their next step
        proc.wait(timeout=120)
        raise
    finally:
        log.close()
    relay.pump()
    if relay.cancelled:
        raise Cancelled("cancelled")
    if proc.returncode != 0 or not relay.succeeded:
        tail = " ".join((run_dir / "launch.log").read_text(errors="replace").split()[-40:])
        raise ProviderError(relay.error or f"accelerate launch exited with {proc.returncode}: ...{tail[-400:]}")


class Relay:
    """Replays the workers' reports (events.jsonl) on the job's reporter, each line once."""

    def __init__(self, path: Path, reporter: JobReporter):
        self.path, self.reporter, self.offset = path, reporter, 0
        self.succeeded = self.cancelled = False
        self.error: str | None = None

    def pump(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next pump
        self.offset += end
        for line in data[:end].decode("utf-8").splitlines():
            if line.strip():
                self._apply(json.loads(line))

    def _apply(self, rec: dict[str, Any]) -> None:
        call, args, kwargs = rec["call"], rec.get("args", []), rec.get("kwargs", {})
        if call == "status":
            status = JobStatus(args[0])
            self.succeeded = status == JobStatus.SUCCEEDED
            args = [status, *args[1:]]
        elif call == "produced":
            args = [TrainedModel(**args[0])]
        elif call == "raised":
            self.cancelled = args[0] == "Cancelled"
            self.error = args[1]
            return
        getattr(self.reporter, call)(*args, **kwargs)


class FileReporter:
    """What a launched main process reports to: JSON lines for the parent's Relay; cancelled() is
    the parent's cancel file."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.out = (run_dir / EVENTS).open("a", encoding="utf-8")

    def _write(self, call: str, *args: Any, **kwargs: Any) -> None:
        self.out.write(json.dumps({"call": call, "args": list(args), "kwargs": kwargs}, default=str) + "\n")
        self.out.flush()

    def event(self, message, level="info", type="message", data=None, **kw):
        self._write("event", message, level, type, data)

    def progress(self, done, total=None):
        self._write("progress", done, total)

    def status(self, status, error=None):
        self._write("status", str(status.value if hasattr(status, "value") else status), error)

    def result(self, **fields):
        self._write("result", **fields)

    def produced(self, model: TrainedModel):
        self._write("produced", model.model_dump(exclude={"artifact"}))

    def raised(self, error: BaseException) -> None:
        self._write("raised", type(error).__name__, " ".join(str(error).split()) or type(error).__name__)

    def cancelled(self) -> bool:
        return (self.run_dir / CANCEL).exists()

    def cost(self, usd):
        self._write("cost", usd)

    def remote(self, remote_id, **params):
        self._write("remote", remote_id, **params)

    def seen(self, remote_id):
        return False
