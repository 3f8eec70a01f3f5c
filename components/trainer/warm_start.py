"""Warm start: initialise the towers from a previous model, keeping the rows of known values.

Each export writes `warm_start/<tower>.npz`: the tower's weights in creation order, its
input names, and for every vocabulary-backed table (ids, categorical, multi_categorical,
text) the vocabulary in row order. A new model copies every other weight as is and, in each
vocabulary table, the row of each value the previous model knew; values new to this run
(a new user, item or category) keep their fresh initialisation, and so does a numeric
feature's bucket embedding whose bucket count changed with the data. A changed feature set
(inputs added, removed or renamed) or model section is refused, naming what changed.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile

from absl import logging
import numpy as np
import tensorflow as tf

from components.trainer import features, towers
from twotower.errors import TwoTowerError

WARM_START_DIR = "warm_start"
_INPUTS = "inputs"
_TABLE_NAMES = "table_names"
_TABLE_INDEX = "table_index"
_VOCABULARY = "vocabulary_{}"


class WarmStartError(TwoTowerError):
    """The previous model cannot initialise this one (its towers have another shape)."""


@dataclasses.dataclass
class WarmStartStats:
    """What a restore did, per tower: weights copied, and rows of the id table kept / new."""

    copied_weights: int
    known_ids: int
    new_ids: int


def build(tower: towers.Tower) -> None:
    """Creates a tower's weights by calling it on one row of missing values."""
    tower(features.default_inputs(tower.serving_specs))


def _weight_index(tower: towers.Tower, variable: tf.Variable) -> int:
    return next(i for i, weight in enumerate(tower.weights) if weight is variable)


def save(tower: towers.Tower, path: str) -> None:
    """Writes a built tower's weights, inputs and vocabularies to `path` (.npz, any
    filesystem): no pickled objects, no copy of the file in memory."""
    tables = tower.vocabulary_tables()
    arrays = {f"w{i}": weight.numpy() for i, weight in enumerate(tower.weights)}
    arrays[_INPUTS] = np.array(tower.feature_names, dtype=np.str_)
    arrays[_TABLE_NAMES] = np.array(list(tables), dtype=np.str_)
    arrays[_TABLE_INDEX] = np.array([_weight_index(tower, table.embedding.embeddings)
                                     for table in tables.values()], np.int64)
    for j, table in enumerate(tables.values()):
        arrays[_VOCABULARY.format(j)] = table.vocabulary()
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tempfile.TemporaryDirectory() as local:  # GFile cannot seek while writing
        written = os.path.join(local, os.path.basename(path))
        np.savez(written, **arrays)
        tf.io.gfile.copy(written, path, overwrite=True)


def _as_bytes(vocabulary: np.ndarray) -> np.ndarray:
    """A saved vocabulary as UTF-8 bytes ([size] S); files written before this format
    hold Python strings (object arrays)."""
    if vocabulary.dtype.kind == "S":
        return vocabulary
    return np.char.encode(vocabulary.astype(np.str_), "utf-8")


def matching_rows(new: np.ndarray, old: np.ndarray, oov: bytes) -> tuple[np.ndarray,
                                                                          np.ndarray]:
    """Rows of two vocabularies that hold the same value, by sorting (no per-token objects).

    Args:
      new: [N] tokens (bytes) of the new table in row order, OOV rows as `oov`.
      old: [M] tokens of the previous table, the same way.
      oov: The OOV token: the k-th OOV row of `new` matches the k-th of `old`.

    Returns:
      (new_rows, old_rows), [K] each: new[new_rows[i]] holds what old[old_rows[i]] held.
    """
    new_oov, old_oov = np.flatnonzero(new == oov), np.flatnonzero(old == oov)
    shared_oov = min(len(new_oov), len(old_oov))
    new_known, old_known = np.flatnonzero(new != oov), np.flatnonzero(old != oov)
    order = old_known[np.argsort(old[old_known], kind="stable")]
    position = np.minimum(np.searchsorted(old[order], new[new_known]), max(len(order) - 1, 0))
    hit = (old[order][position] == new[new_known]) if len(order) else np.zeros(
        len(new_known), bool)
    return (np.concatenate([new_oov[:shared_oov], new_known[hit]]),
            np.concatenate([old_oov[:shared_oov], order[position[hit]]]))


def _rebucketed(weight: tf.Variable, value: np.ndarray) -> bool:
    """Whether a weight is a bucket embedding whose bucket count changed: the boundaries of
    numeric features come from each run's data, so their rows do not carry over."""
    return (weight.name.endswith("embeddings:0") and len(weight.shape) == 2
            and value.ndim == 2 and value.shape[1] == weight.shape[1])


def restore(tower: towers.Tower, path: str) -> WarmStartStats:
    """Initialises a built tower from `save`'s file, remapping vocabulary rows by value.

    Raises:
      WarmStartError: if the file is missing, the inputs differ, or the towers differ in
        structure.
    """
    if not tf.io.gfile.exists(path):
        raise WarmStartError(f"no warm-start weights at {path}: the base model was exported "
                             "before warm start existed; set training.warm_start=false once")
    with tf.io.gfile.GFile(path, "rb") as f:
        return _restore(tower, path, np.load(f, allow_pickle=True))


def _restore(tower: towers.Tower, path: str, saved: np.lib.npyio.NpzFile) -> WarmStartStats:
    """restore() on an opened file: each array is read when used, the file never whole."""
    if _INPUTS not in saved.files:
        raise WarmStartError(f"{path} predates declared feature sets; set "
                             "training.warm_start=false once")
    old_inputs = [str(name) for name in saved[_INPUTS]]
    if old_inputs != list(tower.feature_names):
        added = sorted(set(tower.feature_names) - set(old_inputs))
        removed = sorted(set(old_inputs) - set(tower.feature_names))
        raise WarmStartError(
            f"{tower.name}: the feature set changed since the base model (added {added}, "
            f"removed {removed}{', reordered' if not added and not removed else ''}); its "
            "weights cannot initialise this tower. Set training.warm_start=false for one run "
            "to train from scratch (later runs can warm-start again)")
    weights = tower.weights
    count = sum(1 for name in saved.files if name.startswith("w"))
    if count != len(weights):
        raise WarmStartError(f"{tower.name}: the base model has {count} weights, this config "
                             f"builds {len(weights)}; the model section changed (set "
                             "training.warm_start=false to train from scratch)")
    old_tables = {str(name): (int(index), j) for j, (name, index) in enumerate(
        zip(saved[_TABLE_NAMES], saved[_TABLE_INDEX]))}
    tables = {_weight_index(tower, table.embedding.embeddings): (name, table)
              for name, table in tower.vocabulary_tables().items()}
    copied, known_ids, new_ids = 0, 0, 0
    for i, weight in enumerate(weights):
        value = saved[f"w{i}"]
        if i in tables:
            name, table = tables[i]
            if name not in old_tables or value.shape[1:] != tuple(weight.shape[1:]):
                raise WarmStartError(f"{tower.name}: the table of {name} differs from the base "
                                     "model's (hashing vs vocabulary, or its width); set "
                                     "training.warm_start=false")
            old_index, old_j = old_tables[name]
            vocabulary = table.vocabulary()
            oov = table.lookup.oov_token.encode()
            new_rows, old_rows = matching_rows(
                vocabulary, _as_bytes(saved[_VOCABULARY.format(old_j)]), oov)
            old_table = value if old_index == i else saved[f"w{old_index}"]
            rows = weight.numpy()
            rows[new_rows] = old_table[old_rows]
            weight.assign(rows)
            if name == tower.id_feature:
                ids = int(np.count_nonzero(vocabulary != oov))
                known_ids = int(np.count_nonzero(vocabulary[new_rows] != oov))
                new_ids = ids - known_ids
        elif value.shape != tuple(weight.shape) and _rebucketed(weight, value):
            logging.info("Warm start %s: %s has %d rows, the base model's %d (numeric buckets "
                         "re-computed from the new data); it starts fresh", tower.name,
                         weight.name, weight.shape[0], value.shape[0])
            continue
        elif value.shape != tuple(weight.shape):
            raise WarmStartError(f"{tower.name}: weight {weight.name} has shape "
                                 f"{tuple(weight.shape)}, the base model's {value.shape}; the "
                                 "model section changed (set training.warm_start=false)")
        else:
            weight.assign(value)
        copied += 1
    stats = WarmStartStats(copied, known_ids, new_ids)
    logging.info("Warm start %s: %s", tower.name, stats)
    return stats
