"""What the hf backend needs installed, checked without importing it (find_spec is cheap)."""

from __future__ import annotations

from importlib.util import find_spec

from routelab.domain import BadInput

INSTALL = "pip install 'routelab[hf]'"
CORE = ("torch", "transformers", "accelerate", "tokenizers")
FOR_METHOD = {"classifier": CORE, "lora": (*CORE, "peft")}


def missing(modules: tuple[str, ...] = CORE) -> list[str]:
    return [m for m in modules if find_spec(m) is None]


def require(what: str, method: str = "classifier") -> None:
    """One line saying what to install, when something `method` needs is missing."""
    gone = missing(FOR_METHOD.get(method, CORE))
    if gone:
        raise BadInput(f"{what} needs {', '.join(gone)}: {INSTALL}")
