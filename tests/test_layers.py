"""Import hygiene: layers import downwards only, and only tui/ imports textual."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import routelab

SRC = Path(routelab.__file__).parent
# a module may import from its own layer and the ones listed (lower) only
ALLOWED = {
    "redaction": set(),  # the bottom: secrets are removed from text at any layer
    "domain": set(),
    "config": {"domain"},
    "pricing": {"domain", "config"},
    "store": {"domain", "config"},
    "providers": {"domain", "config", "pricing", "store", "providers"},
    "services": {"domain", "config", "pricing", "store", "providers", "services"},
    "cli": {"domain", "config", "pricing", "store", "providers", "services", "cli", "tui"},
    # the app talks to services only: no store, no provider, no settings of its own (a Workspace carries them)
    "tui": {"domain", "services", "tui"},
}
for _layer, _below in ALLOWED.items():
    if _layer != "redaction":
        _below.add("redaction")


def layer_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def modules():
    return [p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts and p.name != "__main__.py"
            and p.relative_to(SRC).parts[0] != "__init__.py"]


def test_only_tui_imports_textual():
    offenders = [str(p.relative_to(SRC)) for p in modules() if layer_of(p) != "tui"
                 and any(n == "textual" or n.startswith("textual.") for n in imports(p))]
    assert offenders == []


def test_layers_import_downwards_only():
    offenders = []
    for p in modules():
        layer = layer_of(p)
        if layer not in ALLOWED:
            offenders.append(f"{p.relative_to(SRC)}: unknown layer {layer!r}")
            continue
        for name in imports(p):
            if name.startswith("routelab."):
                target = name.split(".")[1]
                if target != layer and target not in ALLOWED[layer]:
                    offenders.append(f"{p.relative_to(SRC)} imports {name}")
    assert offenders == []


def test_cli_library_only_in_cli():
    offenders = [str(p.relative_to(SRC)) for p in modules() if layer_of(p) != "cli" and "argparse" in imports(p)]
    assert offenders == []


def test_no_tui_module_imports_the_store():
    """Panes and components reach the workspace through services (review session, Workspace), never a Store."""
    offenders = [f"{p.relative_to(SRC)} imports {n}" for p in modules() if layer_of(p) == "tui"
                 for n in imports(p) if n == "routelab.store" or n.startswith("routelab.store.")]
    assert offenders == []
    # nor from the package root (`from routelab import store`)
    roots = [str(p.relative_to(SRC)) for p in modules() if layer_of(p) == "tui"
             and any(isinstance(node, ast.ImportFrom) and node.module == "routelab"
                     and any(a.name == "store" for a in node.names) for node in ast.walk(ast.parse(p.read_text())))]
    assert roots == []


def test_no_sql_in_the_tui():
    """No pane or component runs SQL: the services own every query."""
    sql = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|PRAGMA)\s|\.execute\(|\.conn\b|\bsqlite3\b")
    offenders = [f"{p.relative_to(SRC)}: {m.group(0).strip()}" for p in modules() if layer_of(p) == "tui"
                 for m in sql.finditer(p.read_text())]
    assert offenders == []
