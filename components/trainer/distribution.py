"""Which tf.distribute strategy the Trainer runs under, and which process writes.

One process: the default strategy. Several (a TFJob or a Vertex custom job with worker
replicas, or processes started by hand, docs/operations.md): each gets TF_CONFIG naming the
cluster and its own task, and trains under MultiWorkerMirroredStrategy; every replica then
scores its queries against the candidates of all workers (model.py gathers them), and only
the chief (task `chief`, or worker 0 when the cluster has no chief) evaluates and exports.
A worker that dies makes the others fail within MultiWorkerMirroredStrategy's health check
(about half a minute, HEALTH_CHECK) instead of waiting for it forever.
"""
from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Iterator

import tensorflow as tf

from twotower.errors import TrainingError

TRAINING_TASKS = ("chief", "worker")
# MultiWorkerMirroredStrategy's peer health check (TF's defaults: every 30 s, 10 s each, 3
# retries): how often, how long one may take and how many may fail before the others stop
# with UnavailableError. TF keeps them as attributes of the strategy's extended object.
HEALTH_CHECK = {"_check_health_interval": 5, "_check_health_timeout": 10,
                "_check_health_retry_limit": 2}


def cluster_tasks(tf_config: dict[str, Any]) -> int:
    """Training processes (chief + workers) a TF_CONFIG names."""
    cluster = tf_config.get("cluster", {})
    return sum(len(cluster.get(task, ())) for task in TRAINING_TASKS)


def strategy_from_environment() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG names more than one training process,
    else the default strategy. Create it before any other TensorFlow op of the process."""
    if cluster_tasks(json.loads(os.environ.get("TF_CONFIG") or "{}")) <= 1:
        return tf.distribute.get_strategy()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    for name, value in HEALTH_CHECK.items():
        setattr(strategy.extended, name, value)
    return strategy


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """True under a cluster of several training processes."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is not None and cluster_tasks(
        {"cluster": resolver.cluster_spec().as_dict()}) > 1


def chief_by_environment() -> bool:
    """is_chief from TF_CONFIG alone (before any strategy exists): True without a cluster
    of several training processes, for task `chief`, and for worker 0 when there is no
    chief."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    if cluster_tasks(tf_config) <= 1:
        return True
    task = tf_config.get("task", {})
    if task.get("type") == "chief":
        return True
    return (task.get("type") == "worker" and int(task.get("index", 0)) == 0
            and "chief" not in tf_config.get("cluster", {}))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one process that evaluates and exports (always, without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


# What a collective op raises when a peer is gone: the health check's UnavailableError, or
# the op cancelled or timed out while it waited.
LOST_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.CancelledError,
                    tf.errors.DeadlineExceededError, tf.errors.AbortedError)


@contextlib.contextmanager
def lost_workers_fail_clearly(strategy: tf.distribute.Strategy) -> Iterator[None]:
    """Turns a lost peer's error during multi-worker training into one TrainingError line.

    Raises:
      TrainingError: naming the task and what to do; nothing was evaluated or exported.
    """
    try:
        yield
    except LOST_PEER_ERRORS as e:
        if not is_multi_worker(strategy):
            raise
        resolver = strategy.cluster_resolver
        raise TrainingError(
            f"training stopped on {resolver.task_type} {resolver.task_id}: a worker of the "
            f"{cluster_tasks({'cluster': resolver.cluster_spec().as_dict()})}-process cluster "
            f"stopped answering ({type(e).__name__}); nothing was exported. Restart the "
            "Trainer with every worker running (its TFJob or custom job restarts them)") from e
