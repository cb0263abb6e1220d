"""The bundled HR demo: a workspace a new user can open offline in seconds."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from routelab.services.importing import import_file
from routelab.services.parsing import read_actions
from routelab.store import Store

DEMO_FILE = "hr-demo.db"


def demo_data_dir() -> Path:
    return Path(str(files("routelab") / "data" / "demo"))


def create_demo_workspace(path: Path) -> Store:
    """Create the demo workspace at `path` (actions + questions + local proposals) and return it open."""
    data = demo_data_dir()
    store = Store.open(path)
    store.upsert_actions(read_actions(data / "actions.json"))
    import_file(store, data / "questions.jsonl")
    store.set_setting("name", "HR demo")
    # offline teacher proposals, so the review pane has something to accept from the first minute
    from routelab.providers.local import LocalTeacher
    from routelab.services.labeling import label

    label(store, LocalTeacher.from_store(store))
    return store
