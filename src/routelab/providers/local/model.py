"""The embedded router model: WordLlama static embeddings + a linear classifier.

No network and no key. Embeddings come from the weights shipped inside the wordllama
wheel; the classifier is scikit-learn's logistic regression, stored as plain arrays
(never a pickle: a workspace file someone sends you must not be able to run code).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from routelab.domain import Action, Example

EMBED_DIM = 256
CONTEXT_WEIGHT = 0.35  # how much the earlier turns of a conversation pull on its embedding
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _wordllama():
    # WordLlama.load() looks for its tokenizer under a folder that does not exist and
    # then tries to download it; pointing cache_dir at the package loads it offline.
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import wordllama
    from wordllama import WordLlama

    # wordllama calls logging.basicConfig(level=INFO) on import, which would print every
    # HTTP request (httpx) to stderr, over the CLI's output and the TUI: undo it.
    root.handlers[:] = handlers
    root.setLevel(level)
    return WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True, dim=EMBED_DIM)


def embed(texts: Sequence[str]) -> np.ndarray:
    """L2-normalised embeddings, shape (n, 256), float32."""
    if not texts:
        return np.zeros((0, EMBED_DIM), dtype=np.float32)
    with _lock:  # the tokenizer is not thread-safe
        vectors = np.asarray(_wordllama().embed(list(texts), norm=True), dtype=np.float32)
    return vectors


def embed_examples(examples: Sequence[Example]) -> np.ndarray:
    """The question's embedding, nudged towards its conversation's earlier user turns."""
    vectors = embed([e.text for e in examples])
    with_context = [i for i, e in enumerate(examples) if e.conversation]
    if with_context:
        history = [" ".join(m.content for m in examples[i].conversation or [] if m.role == "user")
                   for i in with_context]
        ctx = embed([h or examples[i].text for h, i in zip(history, with_context)])
        mixed = (1 - CONTEXT_WEIGHT) * vectors[with_context] + CONTEXT_WEIGHT * ctx
        vectors[with_context] = mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-9)
    return vectors


def action_text(action: Action) -> str:
    return f"{action.name.replace('_', ' ')}: {action.description}".strip()


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class LinearRouter:
    """softmax(X W^T + b) over embeddings: what training produces and routing runs."""

    def __init__(self, classes: list[str], coef: np.ndarray, intercept: np.ndarray):
        self.classes = list(classes)
        self.coef = np.asarray(coef, dtype=np.float32)
        self.intercept = np.asarray(intercept, dtype=np.float32)

    def predict_proba(self, vectors: np.ndarray) -> np.ndarray:
        return softmax(vectors @ self.coef.T + self.intercept)

    @classmethod
    def zero_shot(cls, actions: Sequence[Action], temperature: float = 0.05) -> LinearRouter:
        """Cosine similarity to each action's name and description, as a linear model."""
        vectors = embed([action_text(a) for a in actions])
        return cls([a.name for a in actions], vectors / temperature, np.zeros(len(actions)))

    @classmethod
    def fit(
        cls, vectors: np.ndarray, labels: Sequence[str], *, c: float = 10.0, max_iter: int = 300,
        on_iteration: Callable[[int], None] | None = None,
    ) -> LinearRouter:
        """Multinomial logistic regression (scikit-learn). Needs at least two classes."""
        from sklearn.linear_model import LogisticRegression

        classes = sorted(set(labels))
        if len(classes) == 1:  # one class: a router that always answers it
            return cls(classes, np.zeros((1, vectors.shape[1])), np.zeros(1))
        model = LogisticRegression(C=c, max_iter=max_iter)
        model.fit(vectors, list(labels))
        coef, intercept = model.coef_, model.intercept_
        if len(model.classes_) == 2:  # sklearn keeps one row for two classes
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        return cls([str(c_) for c_ in model.classes_], coef, intercept)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, classes=np.array(self.classes, dtype=str), coef=self.coef, intercept=self.intercept)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearRouter:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls([str(c_) for c_ in z["classes"]], z["coef"], z["intercept"])
