"""The embedded provider: offline routers over WordLlama embeddings.

`LocalTeacher` (model id "local") is the teacher you get without a key. It proposes
zero-shot (cosine similarity to each action's name and description) until the
workspace has enough reviewed labels, then a logistic regression trained on them.

When to switch: a linear classifier fitted on a handful of labels is worse than
zero-shot similarity, and cannot propose an action it has never seen. Measured on the
HR demo's test split (4 actions, 5 random draws each): zero-shot 0.68; trained on 8
labels 0.60, 20 labels 0.67, 40 labels 0.74, 80 labels 0.78, all 191 labels 0.83: the
classifier wins from about 5 labels per action. So we train once there are MIN_LABELS
reviewed labels in total and the catalog is covered: counting at most
MIN_LABELS_PER_ACTION labels per action, at least COVERAGE of the 5-per-action quota
is filled (20 labels of one action do not make a 4-action router). Every action's own
description is added as one extra training example, so an action with few or no
labels can still be proposed.
Examples in the `test` split are never trained on: they are the held-out check.

`LocalModelRouter` routes with a trained local model (the artifact of a local
fine-tune, `LinearRouter.to_bytes()`). The zero-shot baseline (`ZERO_SHOT`) is a teacher
that never trains: embedding similarity to the action names and descriptions.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from routelab.domain import Action, Example, Status
from routelab.providers.base import Route, Router

MIN_LABELS_PER_ACTION = 5
MIN_LABELS = 20
COVERAGE = 0.8
PROMPT_VERSION = "v1"
LOCAL_TEACHER = "local"
ZERO_SHOT = "local-zero-shot"  # the embedded zero-shot baseline: never trained, always runnable


def _routes(model, examples: Sequence[Example], mode: str) -> list[Route]:
    import time

    import numpy as np

    from routelab.providers.local.model import embed_examples

    if not examples:
        return []
    t0 = time.perf_counter()
    probs = model.predict_proba(embed_examples(examples))
    per_item_ms = (time.perf_counter() - t0) * 1000 / len(examples)
    best = np.argmax(probs, axis=1)
    raw = json.dumps({"mode": mode})
    return [
        Route(action=model.classes[int(j)], confidence=round(float(probs[i, j]), 6), raw=raw,
              latency_ms=round(per_item_ms, 4))
        for i, j in enumerate(best)
    ]


class LocalTeacher(Router):
    provider = "local"
    prompt_version = PROMPT_VERSION

    def __init__(self, actions: Sequence[Action], labelled: Sequence[Example] = (), store=None, *,
                 model: str = LOCAL_TEACHER):
        """`labelled`: reviewed examples (with a label) to learn from; test-split ones are dropped.
        With a `store`, the fitted model is cached in its `models` table (kind "teacher"),
        keyed by a fingerprint of the training set, so it is fitted once per set of labels."""
        self.model = model
        self.actions = list(actions)
        self.store = store
        names = {a.name for a in self.actions}
        self.training = [e for e in labelled if e.label in names and e.split != "test"]
        per_action = Counter(e.label for e in self.training)
        covered = sum(min(per_action[n], MIN_LABELS_PER_ACTION) for n in names)
        self.trained = (len(self.training) >= MIN_LABELS
                        and covered >= COVERAGE * MIN_LABELS_PER_ACTION * len(self.actions))
        self._model = None

    @classmethod
    def from_store(cls, store) -> LocalTeacher:
        from routelab.store import ExampleFilter

        actions = store.actions()
        labelled: list[Example] = []
        after = 0
        while True:  # keyset pages: a workspace may hold a million examples
            page = store.page(ExampleFilter(status=Status.REVIEWED), after=after, limit=5000)
            if not page:
                break
            labelled += [e for e in page if e.split != "test" and e.label]
            after = page[-1].id
        return cls(actions, labelled, store=store)

    @property
    def mode(self) -> str:
        return f"trained on {len(self.training)} labels" if self.trained else "zero-shot"

    def _router(self):
        if self._model is None:
            from routelab.providers.local.model import LinearRouter, action_text, embed, embed_examples

            if not self.actions:
                from routelab.domain import BadInput

                raise BadInput("the workspace has no actions yet: routelab actions add NAME --description D")
            if self.trained:
                self._model = self._cached()
                if self._model is None:
                    import numpy as np

                    vectors = np.vstack([embed_examples(self.training), embed([action_text(a) for a in self.actions])])
                    labels = [e.label for e in self.training] + [a.name for a in self.actions]
                    self._model = LinearRouter.fit(vectors, labels)
                    self._cache(self._model)
            else:
                self._model = LinearRouter.zero_shot(self.actions)
        return self._model

    def route_batch(self, examples: Sequence[Example], actions: Sequence[Action] | None = None) -> list[Route]:
        return _routes(self._router(), examples, "trained" if self.trained else "zero-shot")

    def prepare(self) -> None:
        """Fit (or load) the model and the embeddings now: the first route is then as fast as the rest."""
        from routelab.providers.local.model import embed

        self._router()
        embed(["hello"])

    def fingerprint(self) -> str:
        """What the trained model depends on: the catalog and every (example, label) it learns from."""
        import hashlib

        h = hashlib.sha256()
        for a in self.actions:
            h.update(f"{a.name}\x1f{a.description}\x1e".encode())
        for e in sorted(self.training, key=lambda e: e.id):
            h.update(f"{e.id}\x1f{e.label}\x1e".encode())
        return h.hexdigest()[:16]

    def _cached(self):
        if self.store is None:
            return None
        from routelab.providers.local.model import LinearRouter

        cached = self.store.trained_model(self.model)
        if cached is None or cached.kind != "teacher" or cached.params.get("fingerprint") != self.fingerprint():
            return None
        return LinearRouter.from_bytes(cached.artifact)

    def _cache(self, model) -> None:
        if self.store is None:
            return
        from routelab.domain import TrainedModel

        self.store.save_model(TrainedModel(
            id=self.model, provider="local", kind="teacher", artifact=model.to_bytes(),
            params={"fingerprint": self.fingerprint(), "labels": len(self.training)},
        ))


class LocalModelRouter(Router):
    """A router trained by a local fine-tune, loaded from its stored artifact."""

    provider = "local"
    prompt_version = PROMPT_VERSION

    def __init__(self, model_id: str, artifact: bytes):
        from routelab.providers.local.model import LinearRouter

        self.model = model_id
        self._model = LinearRouter.from_bytes(artifact)

    def route_batch(self, examples: Sequence[Example], actions: Sequence[Action] | None = None) -> list[Route]:
        return _routes(self._model, examples, "model")

    def prepare(self) -> None:
        from routelab.providers.local.model import embed

        embed(["hello"])
