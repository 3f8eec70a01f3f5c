"""Warm start: initialise the towers from a previous model, keeping the rows of known ids.

Each export writes `warm_start/<tower>.npz`: the tower's weights in creation order and its
id vocabulary (row order of the id embedding table, OOV first). A new model built on a
grown vocabulary copies every other weight as is and, in the id table, the row of each id
the previous model knew; ids new to this run keep their fresh initialisation.
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
_VOCABULARY = "vocabulary"
_ID_TABLE = "id_table_index"


class WarmStartError(TwoTowerError):
    """The previous model cannot initialise this one (its towers have another shape)."""


@dataclasses.dataclass
class WarmStartStats:
    """What a restore did, per tower."""

    copied_weights: int
    known_ids: int
    new_ids: int


def _id_table(tower: towers.Tower) -> tf.Variable:
    return tower.id_embedding.embedding.embeddings


def build(tower: towers.Tower, names: tuple[str, ...]) -> None:
    """Creates a tower's weights by calling it on one row of default features."""
    tower({name: tf.constant([0], tf.int64) if name in features.INT_FEATURES
           else tf.constant([""]) for name in names})


def save(tower: towers.Tower, path: str) -> None:
    """Writes a built tower's weights and id vocabulary to `path` (.npz, any filesystem)."""
    table = _id_table(tower)
    index = next(i for i, weight in enumerate(tower.weights) if weight is table)
    arrays = {f"w{i}": weight.numpy() for i, weight in enumerate(tower.weights)}
    arrays[_VOCABULARY] = np.array(tower.id_embedding.lookup.get_vocabulary(), dtype=object)
    arrays[_ID_TABLE] = np.array(index)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(buffer.getvalue())


def restore(tower: towers.Tower, path: str) -> WarmStartStats:
    """Initialises a built tower from `save`'s file, remapping id rows by id.

    Raises:
      WarmStartError: if the file is missing or the towers differ in structure.
    """
    if not tf.io.gfile.exists(path):
        raise WarmStartError(f"no warm-start weights at {path}: the base model was exported "
                             "before warm start existed; set training.warm_start=false once")
    with tf.io.gfile.GFile(path, "rb") as f:
        saved = np.load(io.BytesIO(f.read()), allow_pickle=True)
    old_vocabulary = [str(token) for token in saved[_VOCABULARY]]
    old_table = int(saved[_ID_TABLE])
    weights = tower.weights
    table = _id_table(tower)
    count = sum(1 for name in saved.files if name.startswith("w"))
    if count != len(weights):
        raise WarmStartError(f"{tower.name}: the base model has {count} weights, this config "
                             f"builds {len(weights)}; the model section changed (set "
                             "training.warm_start=false to train from scratch)")
    copied = 0
    for i, weight in enumerate(weights):
        value = saved[f"w{i}"]
        if weight is table:
            continue
        if value.shape != tuple(weight.shape) or i == old_table:
            raise WarmStartError(f"{tower.name}: weight {weight.name} has shape "
                                 f"{tuple(weight.shape)}, the base model's {value.shape}; the "
                                 "model section changed (set training.warm_start=false)")
        weight.assign(value)
        copied += 1
    old_rows = saved[f"w{old_table}"]
    if old_rows.shape[1] != table.shape[1]:
        raise WarmStartError(f"{tower.name}: id embedding width {table.shape[1]} differs from "
                             f"the base model's {old_rows.shape[1]} (set "
                             "training.warm_start=false)")
    position = {token: row for row, token in enumerate(old_vocabulary)}
    new_vocabulary = tower.id_embedding.lookup.get_vocabulary()
    rows = table.numpy()
    known = [(row, position[token]) for row, token in enumerate(new_vocabulary)
             if token in position]
    for row, old_row in known:
        rows[row] = old_rows[old_row]
    table.assign(rows)
    stats = WarmStartStats(copied + 1, len(known) - 1, len(new_vocabulary) - len(known))
    logging.info("Warm start %s: %s", tower.name, stats)
    return stats
