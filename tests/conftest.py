"""Shared fixtures: real workspaces on disk, the real CLI, and the fake OpenAI server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from routelab.cli import main as cli_main
from routelab.services.demo import create_demo_workspace, demo_data_dir
from routelab.store import Store

DATA = Path(__file__).parent / "data"
pytest_plugins = ["tests.hf_models"]  # the hf backend's tiny models (fixtures that skip without torch)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees a real key, a real endpoint or the user's data directory."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ROUTELAB_DB", "ROUTELAB_TEACHER", "ROUTELAB_SPEND_LIMIT",
                 "ROUTELAB_HF_BASE_MODEL", "ROUTELAB_HF_METHOD", "ROUTELAB_HF_DEVICE", "ROUTELAB_GPU_PRICE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROUTELAB_DATA_DIR", str(tmp_path / "userdata"))


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "ws.db"


@pytest.fixture
def store(db_path):
    """An empty workspace with the HR demo's four actions."""
    from routelab.services.parsing import read_actions

    s = Store.open(db_path)
    s.upsert_actions(read_actions(demo_data_dir() / "actions.json"))
    yield s
    s.close()


@pytest.fixture(scope="session")
def _demo_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    create_demo_workspace(path).close()
    return path


@pytest.fixture
def demo_store(_demo_template, tmp_path):
    """A copy of the full HR demo workspace (actions + 360 questions)."""
    path = tmp_path / "demo.db"
    shutil.copy(_demo_template, path)
    s = Store.open(path)
    yield s
    s.close()


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def run_cli(capsys):
    """Run `routelab ARGS...` in-process; returns code, stdout, stderr."""

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            code = cli_main([str(a) for a in args])
        except SystemExit as e:  # argparse usage errors
            code = e.code if isinstance(e.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def fake_openai(monkeypatch):
    """A fake OpenAI-compatible server on 127.0.0.1, with the environment pointing at it."""
    from tests.fake_openai import FakeOpenAI

    server = FakeOpenAI().start()
    monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    yield server
    server.stop()
