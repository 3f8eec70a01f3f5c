"""pipeline/interrupted.py: one run holds a pipeline root; what a killed run left RUNNING is
cleaned up by the next."""
import os

import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from twotower import config as config_lib
from pipeline import interrupted
from twotower.errors import TwoTowerError
from pipeline.pipeline import sqlite_metadata


@pytest.fixture(name="config")
def fixture_config(tmp_path):
    return config_lib.load(None, (f"orchestration.pipeline_root={tmp_path / 'root'}",))


def _execution(store, node, state, artifacts):
    """An execution of `node` in `state` with outputs [(uri, artifact state)]."""
    execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    artifact_type = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Model"))
    context_type = store.put_context_type(metadata_store_pb2.ContextType(name="node"))
    context = store.get_context_by_type_and_name("node", f"twotower.{node}")
    context_id = context.id if context else store.put_contexts([metadata_store_pb2.Context(
        type_id=context_type, name=f"twotower.{node}")])[0]
    [execution_id] = store.put_executions([metadata_store_pb2.Execution(
        type_id=execution_type, last_known_state=state)])
    ids = store.put_artifacts([metadata_store_pb2.Artifact(type_id=artifact_type, uri=uri,
                                                           state=artifact_state)
                               for uri, artifact_state in artifacts])
    store.put_events([metadata_store_pb2.Event(artifact_id=i, execution_id=execution_id,
                                               type=metadata_store_pb2.Event.PENDING_OUTPUT)
                      for i in ids])
    store.put_attributions_and_associations(
        [], [metadata_store_pb2.Association(context_id=context_id, execution_id=execution_id)])
    return execution_id, ids


def test_unfinished_outputs_are_removed_and_finished_ones_kept(config, tmp_path):
    """TFX 1.16 records a running execution's outputs only when it completes: its folders
    are found by TFX's layout <root>/<component>/<output>/<execution id>; outputs that are
    recorded (PENDING) are removed and marked ABANDONED too."""
    root = tmp_path / "root"
    recorded = tmp_path / "elsewhere" / "pending"
    (recorded / "variables").mkdir(parents=True)
    with metadata.Metadata(sqlite_metadata(config)) as handle:
        running, [pending_id] = _execution(handle.store, "Trainer",
                                           metadata_store_pb2.Execution.RUNNING,
                                           [(str(recorded), metadata_store_pb2.Artifact.PENDING)])
        done, [live_id] = _execution(handle.store, "Trainer",
                                     metadata_store_pb2.Execution.COMPLETE,
                                     [(str(root / "Trainer" / "model" / "x"),
                                       metadata_store_pb2.Artifact.LIVE)])
    layout = [root / "Trainer" / output / str(running) for output in ("model", "model_run")]
    kept = [root / "Trainer" / output / str(done) for output in ("model", "model_run")]
    for folder in layout + kept:
        (folder / "variables").mkdir(parents=True)
    with interrupted.hold(config) as unfinished:
        assert unfinished == [interrupted.Interrupted(
            "Trainer", running, tuple(sorted(map(str, layout + [recorded]))))]
    assert not any(folder.exists() for folder in layout + [recorded])
    assert all(folder.is_dir() for folder in kept)
    with metadata.Metadata(sqlite_metadata(config)) as handle:
        states = {e.id: e.last_known_state
                  for e in handle.store.get_executions_by_id([running, done])}
        artifacts = {a.id: a.state for a in handle.store.get_artifacts_by_id([pending_id, live_id])}
    assert states == {running: metadata_store_pb2.Execution.CANCELED,
                      done: metadata_store_pb2.Execution.COMPLETE}
    assert artifacts == {pending_id: metadata_store_pb2.Artifact.ABANDONED,
                         live_id: metadata_store_pb2.Artifact.LIVE}
    with interrupted.hold(config) as unfinished:  # reported once
        assert unfinished == []


def test_a_second_run_on_the_same_root_is_refused(config):
    with interrupted.hold(config):
        with pytest.raises(TwoTowerError, match=f"another `twotower run` \\(pid {os.getpid()}\\) "
                                                "is using .*root; wait for it"):
            with interrupted.hold(config):
                pass
    with interrupted.hold(config) as unfinished:  # released
        assert unfinished == []
