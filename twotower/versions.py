"""TF Serving's model base path: numeric version folders, published atomically.

A version is copied into a hidden staging folder beside the versions and renamed into
place, so a server polling the base path sees either nothing or a complete SavedModel
(TF Serving ignores non-numeric folder names). Versions grow monotonically: the Unix time,
or the latest version + 1 if that is not larger.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Optional

import tensorflow as tf

SOURCE_FILE = os.path.join("assets.extra", "twotower_source.json")
STAGING_PREFIX = ".incoming-"


def versions(base_path: str) -> list[int]:
    """Complete versions under a model base path (numeric folders with saved_model.pb)."""
    if not tf.io.gfile.isdir(base_path):
        return []
    found = []
    for name in tf.io.gfile.listdir(base_path):
        name = name.rstrip("/")
        if name.isdigit() and tf.io.gfile.exists(os.path.join(base_path, name, "saved_model.pb")):
            found.append(int(name))
    return sorted(found)


def next_version(base_path: str, now: Optional[float] = None) -> int:
    """max(Unix time, latest + 1)."""
    existing = versions(base_path)
    stamp = int(now if now is not None else time.time())
    return max(stamp, existing[-1] + 1) if existing else stamp


def write_source(saved_model_dir: str, source: dict[str, Any]) -> None:
    """Records where a SavedModel came from (compared by `same_source`)."""
    path = os.path.join(saved_model_dir, SOURCE_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(source, sort_keys=True))


def read_source(saved_model_dir: str) -> Optional[dict[str, Any]]:
    path = os.path.join(saved_model_dir, SOURCE_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.loads(f.read())


def already_published(model_dir: str, base_path: str) -> Optional[int]:
    """The latest version if it holds the same model as model_dir (same source), else None."""
    existing = versions(base_path)
    source = read_source(model_dir)
    if not existing or source is None:
        return None
    latest = existing[-1]
    return latest if read_source(os.path.join(base_path, str(latest))) == source else None


def _copy_tree(source: str, destination: str) -> None:
    """Copies a folder recursively with tf.io.gfile (any filesystem TensorFlow reads)."""
    for folder, _, files in tf.io.gfile.walk(source):
        relative = os.path.relpath(folder, source)
        target = os.path.normpath(os.path.join(destination, relative))
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), os.path.join(target, name), overwrite=True)


def publish(model_dir: str, base_path: str, version: int) -> str:
    """Copies model_dir to <base_path>/<version> through a staging folder and a rename."""
    final = os.path.join(base_path, str(version))
    if tf.io.gfile.exists(final):
        raise FileExistsError(f"version {final} already exists")
    staging = os.path.join(base_path, f"{STAGING_PREFIX}{version}")
    if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
    _copy_tree(model_dir, staging)
    tf.io.gfile.rename(staging, final)
    return final
