"""The Trainer as a Vertex AI custom job of several replicas (compiled Kubeflow specs).

TFX's AI Platform Trainer executor submits the job and waits for it; each replica runs our
TrainerExecutor (`_GetExecutorClass`) on the image orchestration.image, Vertex AI gives every
replica its TF_CONFIG (one `chief`, the rest `worker`), and distribution.py turns that into
MultiWorkerMirroredStrategy: negatives gathered across replicas, the chief alone evaluating
and exporting, the other replicas training without an export of their own (executor.py).
"""
from __future__ import annotations

from typing import Any

from tfx.extensions.google_cloud_ai_platform import constants as vertex_constants
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor

from components.trainer.executor import TrainerExecutor
from twotower.config import OrchestrationConfig


def job_config(orchestration: OrchestrationConfig) -> dict[str, Any]:
    """The custom_config entries TFX's AI Platform Trainer executor reads: Vertex on, its
    region, and a CustomJob of one chief pool and one pool of trainer_workers - 1 workers
    (TFX sets each pool's container command to run the executor)."""
    def pool(replicas: int) -> dict[str, Any]:
        return {"machine_spec": {"machine_type": orchestration.trainer_machine_type},
                "replica_count": replicas,
                "container_spec": {"image_uri": orchestration.image}}
    pools = [pool(1)]
    if orchestration.trainer_workers > 1:
        pools.append(pool(orchestration.trainer_workers - 1))
    return {
        vertex_constants.ENABLE_VERTEX_KEY: True,
        vertex_constants.VERTEX_REGION_KEY: orchestration.vertex_region,
        vertex_executor.TRAINING_ARGS_KEY: {
            "project": orchestration.vertex_project,
            "job_spec": {"worker_pool_specs": pools}},
    }


class VertexTrainerExecutor(vertex_executor.GenericExecutor):
    """Submits the training to Vertex AI; every replica runs TrainerExecutor."""

    def _GetExecutorClass(self) -> type:
        return TrainerExecutor
