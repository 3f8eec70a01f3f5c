"""The Trainer's scored eval events, kept in its export so the ModelValidator need not score
the same model on the same events again (docs/architecture.md).

`eval_events.npz` holds each event's ranks, filtered top-k and user, and the key of what was
scored: the train and eval files (the history filter and the events), the sample's rate and
hash key (so the same records) and the top-k width. A reader whose own key differs (another span's eval
split, another sample) scores the model itself.
"""
from __future__ import annotations

import io
import json
import os
from typing import Any, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from components.trainer import eval_sample, metrics

EVENTS_FILE = "eval_events.npz"


def key(train_pattern: Union[str, Sequence[str]], eval_pattern: Union[str, Sequence[str]],
        sample: Optional[int], top_width: int) -> dict[str, Any]:
    """What an Evaluation was scored on (module docstring)."""
    return {"train": [[name, size] for name, size, _ in eval_sample.split_files(train_pattern)],
            "eval": [[name, size] for name, size, _ in eval_sample.split_files(eval_pattern)],
            "rate": eval_sample.sample_rate(eval_pattern, sample),
            "hash_key": list(eval_sample.HASH_KEY), "top": top_width}


def save(evaluation: metrics.Evaluation, scored_on: dict[str, Any], serving_dir: str) -> None:
    """Writes the events and their key into an export."""
    arrays = {"tfrs": evaluation.ranks["tfrs"], "filtered": evaluation.ranks["filtered"],
              "top": evaluation.top.astype(np.int32),  # catalogue indices: half the bytes
              "key": np.array(json.dumps(scored_on, sort_keys=True))}
    if evaluation.users is not None:
        arrays["users"] = np.asarray(evaluation.users, dtype=bytes)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with tf.io.gfile.GFile(os.path.join(serving_dir, EVENTS_FILE), "wb") as f:
        f.write(buffer.getvalue())


def load(serving_dir: str, scored_on: dict[str, Any], train_counts: np.ndarray,
         ks: Sequence[int]) -> Optional[metrics.Evaluation]:
    """The export's events as an Evaluation with metrics at `ks`, or None when the export
    has none, or they were scored on other files, sample or a narrower top-k."""
    path = os.path.join(serving_dir, EVENTS_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        arrays = np.load(io.BytesIO(f.read()), allow_pickle=False)
        stored = json.loads(str(arrays["key"]))
        width = min(max(ks), len(train_counts))
        if {**stored, "top": None} != {**scored_on, "top": None} or stored["top"] < width:
            return None
        ranks = {"tfrs": arrays["tfrs"], "filtered": arrays["filtered"]}
        users = arrays["users"].astype(object) if "users" in arrays else None
        top = arrays["top"].astype(np.int64)
    return metrics.Evaluation(metrics.summarize(ranks, top, users, train_counts, ks), ranks,
                              users, top)
