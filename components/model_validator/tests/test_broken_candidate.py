"""A good model is blessed and pushed; a broken candidate (shuffled labels) after it is not
blessed, nothing new is pushed, and the good one stays the latest version."""
import json
import os

import pandas as pd
import pytest
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import path_utils, proto_utils

from benchmarks import example_files
from twotower import keys
from components.index_builder import executor as index_executor
from components.model_validator import executor as validator_executor
from components.pusher import executor as pusher_executor
from twotower import versions
from twotower.config import PoolConfig
from components.trainer.tests import small_world

pytestmark = pytest.mark.e2e

INDEX_PROPERTIES = {keys.INDEX_K_KEY: 10, keys.MAX_K_KEY: 50, keys.BRUTE_FORCE_BELOW_KEY: 20_000,
                    keys.NUM_LEAVES_KEY: None, keys.NUM_LEAVES_TO_SEARCH_KEY: None,
                    keys.ANISOTROPIC_THRESHOLD_KEY: 0.2, keys.REORDER_KEY: None,
                    keys.SERVING_MODEL_NAME_KEY: "twotower", keys.REPORT_QUERIES_KEY: 100,
                    keys.TARGET_RECALL_KEY: 0.95}
VALIDATION_PROPERTIES = {keys.VALIDATION_K_KEY: 10, keys.PROTOCOL_KEY: "filtered",
                         keys.MIN_RECALL_KEY: 0.0, keys.MAX_RELATIVE_REGRESSION_KEY: 0.05,
                         keys.MIN_SCANN_RECALL_KEY: 0.95, keys.MIN_LIFT_OVER_MOSTPOP_KEY: 0.0}


def _artifact(kind, uri, artifact_id):
    artifact = kind()
    artifact.uri = str(uri)
    artifact.id = artifact_id
    os.makedirs(artifact.uri, exist_ok=True)
    return artifact


def _shuffled_labels(root, broken):
    """The same interactions with item columns permuted across rows in train."""
    for split in ("train", "eval"):
        (broken / "inter" / f"Split-{split}").mkdir(parents=True)
    examples = list(_read(root / "inter" / "Split-train"))
    frame = pd.DataFrame(examples)
    items = frame[["item_id", "title", "genres", "release_year"]].sample(
        frac=1.0, random_state=0).reset_index(drop=True)
    frame[items.columns] = items
    example_files.write_split([frame], broken / "inter", "train")
    os.rmdir(broken / "inter" / "Split-eval")
    os.symlink(root / "inter" / "Split-eval", broken / "inter" / "Split-eval")
    os.symlink(root / "items", broken / "items")
    return example_files.build_pool_artifact(broken / "inter", broken / "items", broken / "pool",
                                             PoolConfig(seed=0), small_world.CONTRACT)


def _read(folder):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    for path in sorted(os.listdir(folder)):
        for record in tf.data.TFRecordDataset(str(folder / path), compression_type="GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            row = {}
            for name, feature in example.features.feature.items():
                kind = feature.WhichOneof("kind")
                value = getattr(feature, kind).value[0]
                row[name] = value.decode() if kind == "bytes_list" else value
            yield row


def _candidate(root, name, pool_uri, artifact_id, data_root):
    model = _artifact(standard_artifacts.Model, root / name / "trained", artifact_id)
    result = small_world.train(data_root, pool_uri, path_utils.serving_model_dir(model.uri))
    outputs = {key: [_artifact(standard_artifacts.Model, root / name / key, artifact_id + 100)]
               for key in (keys.SCANN_MODEL_KEY, keys.STOCK_MODEL_KEY)}
    examples = example_files.examples_artifact(root / "inter", ["train", "eval"])
    index_executor.Executor().Do({keys.MODEL_KEY: [model], keys.EXAMPLES_KEY: [examples]},
                                 outputs, INDEX_PROPERTIES)
    return model, outputs[keys.SCANN_MODEL_KEY][0], result


def _validate_and_push(root, name, model, index_model, baseline, base_path):
    blessing = _artifact(standard_artifacts.ModelBlessing, root / name / "blessing", 0)
    inputs = {keys.MODEL_KEY: [model], keys.INDEX_MODEL_KEY: [index_model],
              keys.EXAMPLES_KEY: [example_files.examples_artifact(root / "inter",
                                                                  ["train", "eval"])]}
    if baseline is not None:
        inputs[keys.BASELINE_MODEL_KEY] = [baseline]
    validator_executor.Executor().Do(inputs, {keys.BLESSING_KEY: [blessing]},
                                     VALIDATION_PROPERTIES)
    pushed = _artifact(standard_artifacts.PushedModel, root / name / "pushed", 0)
    destination = pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
        base_directory=base_path))
    pusher_executor.Executor().Do(
        {"model": [index_model], "model_blessing": [blessing]}, {"pushed_model": [pushed]},
        {"push_destination": proto_utils.proto_to_json(destination)})
    report = json.loads((root / name / "blessing" / keys.VALIDATION_METRICS_FILE).read_text())
    return blessing, pushed, report


def test_broken_candidate_is_not_blessed_and_not_pushed(tmp_path):
    pool_uri = small_world.write_data(tmp_path)
    base_path = str(tmp_path / "serving" / "twotower")
    good, good_index, _ = _candidate(tmp_path, "good", pool_uri, 1, tmp_path)
    blessing, pushed, report = _validate_and_push(tmp_path, "good", good, good_index, None,
                                                  base_path)
    assert blessing.get_int_custom_property(keys.BLESSED_PROPERTY) == 1, report["checks"]
    assert blessing.get_int_custom_property(keys.CURRENT_MODEL_ID_PROPERTY) == 1
    assert os.path.exists(tmp_path / "good" / "blessing" / "BLESSED")
    assert os.path.exists(tmp_path / "good" / "blessing" / keys.VALIDATION_PLOT_FILE)
    assert pushed.get_int_custom_property("pushed") == 1
    good_version = versions.versions(base_path)
    assert len(good_version) == 1

    broken_root = tmp_path / "broken_data"
    broken_pool = _shuffled_labels(tmp_path, broken_root)
    broken, broken_index, _ = _candidate(tmp_path, "broken", broken_pool, 2, broken_root)
    blessing, pushed, report = _validate_and_push(tmp_path, "broken", broken, broken_index, good,
                                                  base_path)
    failed = [check["name"] for check in report["checks"] if not check["passed"]]
    assert failed == ["beats_mostpop", "max_relative_regression"], report["checks"]
    assert report["candidate"]["filtered_recall_at_10"] < report["mostpop"]["filtered_recall_at_10"]
    assert report["candidate"]["filtered_recall_at_10"] < report["baseline"]["filtered_recall_at_10"]
    assert blessing.get_int_custom_property(keys.BLESSED_PROPERTY) == 0
    assert os.path.exists(tmp_path / "broken" / "blessing" / "NOT_BLESSED")
    assert pushed.get_int_custom_property("pushed") == 0
    assert versions.versions(base_path) == good_version
    source = versions.read_source(os.path.join(base_path, str(good_version[-1])))
    assert source["trained_model"] == path_utils.serving_model_path(good.uri)

    # Below MostPop, a first model is not blessed either: there is no baseline to regress from.
    blessing, pushed, report = _validate_and_push(tmp_path, "broken_first", broken, broken_index,
                                                  None, base_path)
    assert [check["name"] for check in report["checks"] if not check["passed"]] == [
        "beats_mostpop"], report["checks"]
    assert pushed.get_int_custom_property("pushed") == 0
    assert versions.versions(base_path) == good_version

    # Re-validating the good model against itself blesses it, and nothing is pushed twice.
    _, pushed, _ = _validate_and_push(tmp_path, "again", good, good_index, good, base_path)
    assert pushed.get_int_custom_property("pushed") == 1
    assert versions.versions(base_path) == good_version
