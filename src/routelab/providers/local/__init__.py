"""The embedded backend: no network, no key.

- model.py: WordLlama static embeddings + a linear classifier (stored as plain arrays);
- teacher.py: the local teacher (zero-shot, then trained on reviewed labels), the zero-shot
  baseline, and routers over locally trained models;
- trainer.py: a real training run on an export, reported step by step;
- backend.py: what the registry loads (the `local` entry point).

Importing this package is light: numpy, scikit-learn and wordllama load on first use.
"""

from routelab.providers.local.teacher import (
    LOCAL_TEACHER,
    MIN_LABELS,
    ZERO_SHOT,
    LocalModelRouter,
    LocalTeacher,
)

__all__ = ["LOCAL_TEACHER", "MIN_LABELS", "ZERO_SHOT", "LocalModelRouter", "LocalTeacher"]
