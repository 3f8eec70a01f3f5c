"""Paths in the config: local paths (relative to the working directory) or URIs such as
gs://bucket/x, which every stage reads and writes through tf.io.gfile / TFX fileio."""
from __future__ import annotations

import dataclasses
import os

from twotower.config import PipelineConfig

PATH_FIELDS = (("data", "interactions"), ("data", "items"), ("data", "schema_dir"),
               ("orchestration", "pipeline_root"), ("orchestration", "metadata_path"),
               ("serving", "base_path"))


def is_uri(path: str) -> bool:
    """True for URIs such as gs://bucket/x (read through tf.io.gfile), False for local paths."""
    return "://" in path


def absolute(path: str) -> str:
    """Makes a local path absolute (against the working directory); leaves URIs unchanged."""
    return path if is_uri(path) else os.path.abspath(path)


def with_absolute_paths(config: PipelineConfig) -> PipelineConfig:
    """The config with every relative local path in PATH_FIELDS made absolute, so it means
    the same thing when another process (an Airflow worker) reads it from elsewhere."""
    sections = {}
    for section, field in PATH_FIELDS:
        value = getattr(getattr(config, section), field)
        if value:
            sections.setdefault(section, {})[field] = absolute(value)
    return dataclasses.replace(config, **{
        section: dataclasses.replace(getattr(config, section), **fields)
        for section, fields in sections.items()})
