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
import io
import os

from absl import logging
import numpy as np
import tensorflow as tf

from components.trainer import features, towers
from pipeline.errors import TwoTowerError

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
    filesystem)."""
    tables = tower.vocabulary_tables()
    arrays = {f"w{i}": weight.numpy() for i, weight in enumerate(tower.weights)}
    arrays[_INPUTS] = np.array(tower.feature_names, dtype=object)
    arrays[_TABLE_NAMES] = np.array(list(tables), dtype=object)
    arrays[_TABLE_INDEX] = np.array([_weight_index(tower, table.embedding.embeddings)
                                     for table in tables.values()], np.int64)
    for j, table in enumerate(tables.values()):
        arrays[_VOCABULARY.format(j)] = np.array(table.vocabulary(), dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())


def _remap(rows: np.ndarray, new_vocabulary: list[str], old_rows: np.ndarray,
           old_vocabulary: list[str]) -> np.ndarray:
    """Copies old rows into `rows` by value (OOV rows included) and returns them."""
    def keyed(vocabulary: list[str]) -> list[tuple[str, int]]:
        # Several OOV rows all read "[UNK]": key each token by its occurrence number.
        seen: dict[str, int] = {}
        out = []
        for token in vocabulary:
            seen[token] = seen.get(token, -1) + 1
            out.append((token, seen[token]))
        return out
    position = {key: row for row, key in enumerate(keyed(old_vocabulary))}
    known = [(row, position[key]) for row, key in enumerate(keyed(new_vocabulary))
             if key in position]
    for row, old_row in known:
        rows[row] = old_rows[old_row]
    return rows


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
        saved = np.load(io.BytesIO(f.read()), allow_pickle=True)
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
    old_tables = {str(name): (int(index), [str(token) for token in saved[_VOCABULARY.format(j)]])
                  for j, (name, index) in enumerate(zip(saved[_TABLE_NAMES],
                                                        saved[_TABLE_INDEX]))}
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
            old_index, old_vocabulary = old_tables[name]
            vocabulary = table.vocabulary()
            rows = _remap(weight.numpy(), vocabulary, saved[f"w{old_index}"],
                                 old_vocabulary)
            weight.assign(rows)
            if name == tower.id_feature:
                old_values = set(old_vocabulary)
                ids = table.lookup.get_vocabulary(include_special_tokens=False)
                known_ids = sum(1 for token in ids if token in old_values)
                new_ids = len(ids) - known_ids
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
