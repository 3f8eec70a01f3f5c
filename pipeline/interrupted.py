"""A local run's hold on its pipeline root, and what an interrupted run left behind.

TFX's LocalDagRunner registers each component's execution in ML Metadata as RUNNING and its
outputs as PENDING before it runs, and marks them COMPLETE and LIVE after. A run that is
killed (a scheduler's timeout, `kill -9`, the OOM killer) leaves that execution RUNNING and
its output folders (`<pipeline_root>/<component>/<output>/<execution id>`, made before the
component starts) on disk forever: the next run has a new run id, so TFX starts a fresh
execution beside it. Nothing reads those folders (every reader takes LIVE artifacts only),
but they can be large (a trained model). `hold` makes one `twotower run` at a time own the
pipeline root, so an execution still RUNNING when the next run starts can only be one an
interrupted run left; `hold` then removes its unfinished outputs, marks it CANCELED and
says so.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
from typing import Iterator

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.io import fileio
from tfx.orchestration import metadata

from twotower import paths
from pipeline.artifacts import NODE_CONTEXT_TYPE
from twotower.config import PipelineConfig
from twotower.errors import TwoTowerError
from pipeline.pipeline import sqlite_metadata

_ACTIVE = (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)
_OUTPUTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.PENDING_OUTPUT)


@dataclasses.dataclass(frozen=True)
class Interrupted:
    """One component execution an interrupted run left unfinished."""

    node: str
    execution_id: int
    removed: tuple[str, ...]  # the output folders deleted


@contextlib.contextmanager
def hold(config: PipelineConfig) -> Iterator[list[Interrupted]]:
    """Holds the pipeline root for one run; yields what earlier, interrupted runs left (now
    cleaned up).

    The hold is a lock on a file beside the metadata store, released by the kernel when the
    process ends however it ends.

    Raises:
      TwoTowerError: another run holds the pipeline root.
    """
    connection = sqlite_metadata(config)  # creates the folder
    path = os.path.join(os.path.dirname(connection.sqlite.filename_uri), "run.lock")
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            lock.seek(0)
            raise TwoTowerError(
                f"another `twotower run` (pid {lock.read().strip() or '?'}) is using "
                f"{config.orchestration.pipeline_root}; wait for it to finish, or give this "
                "run its own orchestration.pipeline_root") from e
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        try:
            root = paths.absolute(config.orchestration.pipeline_root)
            yield abandon_unfinished(connection, root)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def abandon_unfinished(connection: metadata.ConnectionConfigType, pipeline_root: str
                       ) -> list[Interrupted]:
    """Removes the output folders of every execution still NEW or RUNNING, marks its
    recorded outputs ABANDONED and the execution CANCELED. Only call while no run is
    active."""
    found = []
    with metadata.Metadata(connection) as handle:
        store: metadata_store.MetadataStore = handle.store
        executions = [execution for execution in store.get_executions()
                      if execution.last_known_state in _ACTIVE]
        for execution in executions:
            nodes = [context.name for context in store.get_contexts_by_execution(execution.id)
                     if store.get_context_types_by_id([context.type_id])[0].name
                     == NODE_CONTEXT_TYPE]
            node = nodes[0].rsplit(".", 1)[-1] if nodes else ""
            events = [event for event in store.get_events_by_execution_ids([execution.id])
                      if event.type in _OUTPUTS]
            recorded = [artifact for artifact in store.get_artifacts_by_id(
                [event.artifact_id for event in events])
                        if artifact.state != metadata_store_pb2.Artifact.LIVE]
            folders = set(fileio.glob(os.path.join(pipeline_root, node, "*",
                                                   str(execution.id)))) if node else set()
            folders |= {artifact.uri for artifact in recorded
                        if artifact.uri and fileio.exists(artifact.uri)}
            for folder in sorted(folders):
                if fileio.isdir(folder):
                    fileio.rmtree(folder)
                else:
                    fileio.remove(folder)
            for artifact in recorded:
                artifact.state = metadata_store_pb2.Artifact.ABANDONED
            if recorded:
                store.put_artifacts(recorded)
            execution.last_known_state = metadata_store_pb2.Execution.CANCELED
            store.put_executions([execution])
            found.append(Interrupted(node or f"execution {execution.id}", execution.id,
                                     tuple(sorted(folders))))
    return found
