"""Runs the pipeline with TFX's LocalDagRunner and SQLite ML Metadata."""
from __future__ import annotations

from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from twotower.config import PipelineConfig
from pipeline.pipeline import create_pipeline, sqlite_metadata


def run(config: PipelineConfig) -> None:
    """Runs every component in order; cached components are skipped when inputs are unchanged.

    Raises:
      Exception: the first component failure (the run stops there; nothing downstream runs).
    """
    LocalDagRunner().run(create_pipeline(config, sqlite_metadata(config)))
