"""One process of an `accelerate launch`ed hf run: `python -m routelab.providers.hf.worker RUN.json`.

Every process trains its share; the main one reports through a FileReporter (launch.py)."""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import os

    from routelab.providers.hf.launch import FileReporter
    from routelab.providers.hf.run import RunSpec, run_training

    spec = RunSpec.read(Path(argv[0]))
    # RANK is torchrun's (under accelerate launch); asking accelerate here would fix its state before the run
    # chooses CPU or GPU
    main_process = int(os.environ.get("RANK", "0")) == 0
    reporter = FileReporter(spec.run_dir) if main_process else None
    try:
        run_training(spec, reporter)
    except BaseException as e:
        if reporter is not None:
            reporter.raised(e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
