"""Finds the artifacts a pipeline run produced, through ML Metadata."""
from __future__ import annotations

from typing import Any, Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import types
from tfx.orchestration import metadata
from tfx.types import artifact_utils

from twotower.config import PipelineConfig
from pipeline.pipeline import sqlite_metadata

NODE_CONTEXT_TYPE = "node"


def latest_output_uri(config: PipelineConfig, node_id: str, artifact_type: str) -> Optional[str]:
    """URI of the newest live artifact of `artifact_type` that node `node_id` produced.

    Returns:
      The URI, or None when the node has not produced one yet.
    """
    artifact = latest_output(config, node_id, artifact_type)
    return artifact.uri if artifact is not None else None


def custom_property(artifact: metadata_store_pb2.Artifact, name: str) -> Any:
    """An MLMD artifact's custom property (int or string), or None."""
    if name not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[name]
    return value.int_value if value.HasField("int_value") else value.string_value


def latest_output(config: PipelineConfig, node_id: str, artifact_type: str
                  ) -> Optional[metadata_store_pb2.Artifact]:
    """The newest live artifact of `artifact_type` that node `node_id` produced, or None."""
    with metadata.Metadata(sqlite_metadata(config)) as handle:
        store: metadata_store.MetadataStore = handle.store
        context = store.get_context_by_type_and_name(
            NODE_CONTEXT_TYPE, f"{config.orchestration.pipeline_name}.{node_id}")
        if context is None:
            return None
        artifacts = [artifact for artifact in store.get_artifacts_by_context(context.id)
                     if artifact.state == metadata_store_pb2.Artifact.LIVE]
        types = {t.id: t.name for t in store.get_artifact_types_by_id(
            list({artifact.type_id for artifact in artifacts}))}
        produced = [artifact for artifact in artifacts if types[artifact.type_id] == artifact_type]
        return max(produced, key=lambda artifact: artifact.id) if produced else None


def latest_inputs(config: PipelineConfig, node_id: str) -> dict[str, list[types.Artifact]]:
    """The input artifacts of node `node_id`'s newest finished execution, by input key.

    Returns:
      {input key: artifacts in input order}; empty when the node has not run yet.
    """
    finished = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
    with metadata.Metadata(sqlite_metadata(config)) as handle:
        store: metadata_store.MetadataStore = handle.store
        context = store.get_context_by_type_and_name(
            NODE_CONTEXT_TYPE, f"{config.orchestration.pipeline_name}.{node_id}")
        executions = [execution for execution in (
            store.get_executions_by_context(context.id) if context is not None else [])
            if execution.last_known_state in finished]
        if not executions:
            return {}
        newest = max(executions, key=lambda execution: execution.id)
        events = [event for event in store.get_events_by_execution_ids([newest.id])
                  if event.type == metadata_store_pb2.Event.INPUT]
        found = {artifact.id: artifact
                 for artifact in store.get_artifacts_by_id([e.artifact_id for e in events])}
        kinds = {kind.id: kind for kind in store.get_artifact_types_by_id(
            list({artifact.type_id for artifact in found.values()}))}
        inputs: dict[str, list[tuple[int, types.Artifact]]] = {}
        for event in events:
            key, index = event.path.steps[0].key, event.path.steps[1].index
            artifact = found[event.artifact_id]
            inputs.setdefault(key, []).append((index, artifact_utils.deserialize_artifact(
                kinds[artifact.type_id], artifact)))
        return {key: [artifact for _, artifact in sorted(pairs, key=lambda pair: pair[0])]
                for key, pairs in inputs.items()}
