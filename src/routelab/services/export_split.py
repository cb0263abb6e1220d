"""The train/validation split: the workspace's own splits kept, the rest stratified by action,
seeded, near-duplicate groups kept whole.

Splits are the user's. A question the workspace calls `validation` goes to validation.jsonl and
one it calls `train` to train.jsonl, as they are (CLINC150's train/val survive an export
unchanged). Only `unassigned` questions are split here, at `val_fraction` of them. The one
exception: when the pool has no validation question at all (BANKING77's train and test), the
validation part is taken from the train questions too, and the caller records and reports
which ones it moved (services/export.py: `Export.moved`).

Decided on fixed-size arrays (one 64-bit key hash, action and flags per example), never on
the examples themselves, so a million examples split in about a second in ~100 MB:

- examples with the same near-duplicate key form a group; a group belongs to its most
  common action (ties: the first name in alphabetical order);
- a group with a question that must stay in validation (or, failing that, in train) pins its
  free questions to that side; the other groups, per action in key-hash order, are shuffled
  with Random(f"{seed}:{action}") and taken while they fit the action's target,
  round(val_fraction x n) of its n free questions and at most n - 1;
- each side is then put in id order and shuffled with Random(f"{seed}:{side}").
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np


@dataclass
class Split:
    train: list[int]  # positions in the pool, in file order
    validation: list[int]
    new_validation: np.ndarray  # positions of the examples this split moves into validation (train or unassigned)


def _groups(keys: np.ndarray, actions: np.ndarray, pinned: np.ndarray):
    """Group the pool by key: (order, start of each group in it, size, top action, pinned)."""
    order = np.lexsort((actions, keys))  # by key, then action: a group's runs of one action are adjacent
    k, a = keys[order], actions[order]
    n = len(order)
    new_key = np.empty(n, dtype=bool)
    new_key[:1] = True
    new_key[1:] = k[1:] != k[:-1]
    starts = np.flatnonzero(new_key)
    new_run = new_key.copy()
    new_run[1:] |= a[1:] != a[:-1]
    runs = np.flatnonzero(new_run)
    run_len = np.diff(np.append(runs, n))
    run_group = np.cumsum(new_key)[runs] - 1
    most = np.maximum.reduceat(run_len, np.searchsorted(runs, starts))
    best = np.flatnonzero(run_len == most[run_group])  # runs as long as their group's longest...
    first = best[np.append(True, run_group[best][1:] != run_group[best][:-1])]  # ...the first (smallest action)
    top = a[runs[first]]
    sizes = np.diff(np.append(starts, n))
    group_pinned = np.logical_or.reduceat(pinned[order], starts)
    return order, starts, sizes, top, group_pinned


def _validation_groups(names: list[str], sizes: np.ndarray, top: np.ndarray, free: np.ndarray,
                       val_fraction: float, seed: int) -> np.ndarray:
    """Which free groups go to validation: per action, shuffled ones while they fit its target."""
    chosen = np.zeros(len(sizes), dtype=bool)
    size = sizes.tolist()
    by_action = np.argsort(top, kind="stable")  # groups of each action together, still in key order
    actions, starts = np.unique(top[by_action], return_index=True)
    for a, groups in zip(actions.tolist(), np.split(by_action, starts[1:])):
        rest = groups[free[groups]].tolist()
        n = int(sizes[rest].sum()) if rest else 0
        target = min(round(val_fraction * n), n - 1)
        random.Random(f"{seed}:{names[a]}").shuffle(rest)
        taken = 0
        for g in rest:
            if taken >= target:
                break
            if taken + size[g] <= target:
                chosen[g] = True
                taken += size[g]
    return chosen


def split_pool(names: list[str], keys: np.ndarray, actions: np.ndarray, was_validation: np.ndarray,
               was_train: np.ndarray, val_fraction: float, seed: int) -> Split:
    """Split a pool given in id order; `actions` index `names` (sorted). `was_validation` and `was_train`:
    the workspace's splits, kept (train is split too when no question of the pool is in validation)."""
    n = len(keys)
    in_val = was_validation.copy()
    if n:
        stay_train = was_train if was_validation.any() else np.zeros(n, dtype=bool)
        order, starts, sizes, top, pinned_val = _groups(keys, actions, was_validation)
        pinned_train = np.logical_or.reduceat(stay_train[order], starts) & ~pinned_val
        chosen = pinned_val | _validation_groups(names, sizes, top, ~pinned_val & ~pinned_train, val_fraction, seed)
        in_val[order] |= np.repeat(chosen, sizes) & ~stay_train[order]
    train = np.flatnonzero(~in_val).tolist()
    validation = np.flatnonzero(in_val).tolist()
    random.Random(f"{seed}:train").shuffle(train)
    random.Random(f"{seed}:validation").shuffle(validation)
    return Split(train, validation, np.flatnonzero(in_val & ~was_validation))
