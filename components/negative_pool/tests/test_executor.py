"""The executor end to end on Examples artifacts written to disk, and its errors."""
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx import types
from tfx.types import artifact_utils, standard_artifacts

from components.negative_pool import artifact_io, executor
from components.negative_pool.component import (NegativePool, NegativePoolBuilder,
                                                NegativePoolBuilderSpec)
from components.negative_pool.tests.test_pool import CATALOG, CONTRACT, TRAIN
from twotower import keys
from twotower.config import PoolConfig
from twotower.errors import ConfigError, NegativePoolError

# x (in TRAIN, not in CATALOG) is 1 of 6 train rows: allowed here, refused in its own test.
PROPERTIES = executor.properties_from_config(
    PoolConfig(max_pool_size=1000, max_unknown_item_share=1.0), CONTRACT)


def _examples(root, splits):
    artifact = standard_artifacts.Examples()
    artifact.uri = str(root)
    artifact.split_names = artifact_utils.encode_split_names(list(splits))
    for split, rows in splits.items():
        folder = os.path.join(str(root), f"Split-{split}")
        os.makedirs(folder)
        with tf.io.TFRecordWriter(os.path.join(folder, "data_tfrecord-00000-of-00001.gz"),
                                  options="GZIP") as writer:
            for row in rows:
                writer.write(row)
    return artifact


def _run(tmp_path, train, catalog, catalog_split=keys.CATALOG_SPLIT, separate_process=1,
         **properties):
    output = NegativePool()
    output.uri = str(tmp_path / "pool")
    os.makedirs(output.uri)
    inputs = {keys.INTERACTIONS_KEY: [_examples(tmp_path / "inter", {"train": train,
                                                                     "eval": TRAIN[:1]})],
              keys.ITEMS_KEY: [_examples(tmp_path / "items", {catalog_split: catalog})]}
    executor.Executor().Do(inputs, {keys.NEGATIVE_POOL_KEY: [output]},
                           {**PROPERTIES, keys.SEPARATE_PROCESS_KEY: separate_process,
                            **properties})
    return output.uri


@pytest.mark.parametrize("separate_process", [1, 0])
def test_writes_every_documented_file(tmp_path, separate_process):
    uri = _run(tmp_path, TRAIN, CATALOG, separate_process=separate_process)
    stats = artifact_io.read_stats(uri)
    assert (stats["catalog_size"], stats["train_interactions"], stats["pool_size"]) == (4, 6, 4)
    assert stats["settings"]["sampler"] == "uniform"
    assert artifact_io.read_vocabulary(uri, "item_id") == [("a", 3), ("b", 1), ("x", 1)]
    assert artifact_io.read_vocabulary(uri, "user_id") == [("u1", 2), ("u2", 2), ("u3", 2)]
    table = artifact_io.read_frequencies(uri)
    assert table.item_ids.tolist() == ["a", "b", "c", "d", "x"]
    # a: 3 of 6 train rows; x is interacted with but not in the catalogue.
    assert table.counts.tolist() == [3, 1, 0, 0, 1]
    assert table.in_catalog.tolist() == [True, True, True, True, False]
    assert table.positions(["x", "a", "zz"]).tolist() == [4, 0, -1]
    assert table.probability.sum() == pytest.approx(1.0)
    assert table.pool_probability.sum() == pytest.approx(1.0)
    spec = {"item_id": tf.io.FixedLenFeature([], tf.string),
            "title": tf.io.FixedLenFeature([], tf.string)}
    pool_rows = artifact_io.read_pool(uri, spec)
    assert sorted(pool_rows["item_id"].tolist()) == [b"a", b"b", b"c", b"d"]
    assert all(pool_rows["title"])
    # Text tokens of the catalogue rows (lower-cased), and the feature set the pool was built for.
    assert artifact_io.read_vocabulary(uri, "title") == [("a", 1), ("b", 1), ("c", 1), ("d1", 1),
                                                          ("d2", 1)]
    assert artifact_io.read_contract(uri) == CONTRACT


def test_same_inputs_same_outputs(tmp_path):
    first = _run(tmp_path / "1", TRAIN, CATALOG)
    second = _run(tmp_path / "2", TRAIN, CATALOG)
    tables = artifact_io.read_frequencies(first), artifact_io.read_frequencies(second)
    for column in ("item_ids", "counts", "in_catalog", "probability", "pool_probability"):
        np.testing.assert_array_equal(getattr(tables[0], column), getattr(tables[1], column))
    assert artifact_io.read_vocabulary(first, "item_id") == artifact_io.read_vocabulary(
        second, "item_id")


def test_empty_catalogue_fails_clearly(tmp_path):
    with pytest.raises(NegativePoolError, match="the item catalogue is empty"):
        _run(tmp_path, TRAIN, [])


def test_empty_train_split_fails_clearly(tmp_path):
    with pytest.raises(NegativePoolError, match="train split has no rows"):
        _run(tmp_path, [], CATALOG)


def test_too_many_interactions_with_items_missing_from_the_catalogue_fail(tmp_path):
    # One of the 6 train rows names x, which the catalogue lacks.
    with pytest.raises(NegativePoolError, match=r"^1 of 6 train interactions \(16.7%\) name one "
                                                r"of 1 items missing from the catalogue, above "
                                                r"pool.max_unknown_item_share \(10%\): check"):
        _run(tmp_path / "strict", TRAIN, CATALOG, max_unknown_item_share=0.1)
    assert _run(tmp_path / "loose", TRAIN, CATALOG, max_unknown_item_share=0.2)


def test_wrong_split_names_the_expected_one(tmp_path):
    with pytest.raises(NegativePoolError, match="not 'catalog'"):
        _run(tmp_path, TRAIN, CATALOG, catalog_split="train")


def test_properties_round_trip():
    settings = PoolConfig(sampler="popularity", alpha=0.5, pool_size=10, seed=3,
                          max_unknown_item_share=0.2)
    properties = executor.properties_from_config(settings, CONTRACT)
    assert executor.config_from_properties(properties) == settings
    assert executor.contract_from_properties(properties) == CONTRACT


def test_every_pool_config_field_is_one_execution_property():
    """A field added to PoolConfig reaches the component's spec and TFX's cache key."""
    fields = {field.name for field in dataclasses.fields(PoolConfig)}
    assert set(executor.POOL_PARAMETERS) == fields
    assert fields <= set(NegativePoolBuilderSpec.PARAMETERS)


def test_properties_written_by_hand_are_checked_like_the_config():
    properties = executor.properties_from_config(PoolConfig(), CONTRACT)
    with pytest.raises(ConfigError, match=r"^pool.alpha: got -1.0; expected a number from 0"):
        executor.config_from_properties({**properties, "alpha": -1.0})


def test_component_checks_combinations_at_build_time():
    examples = standard_artifacts.Examples
    with pytest.raises(ConfigError, match="^pool.alpha: got 0.5; expected 0 unless "
                                          "pool.sampler is popularity$"):
        NegativePoolBuilder(interactions=types.Channel(type=examples),
                            items=types.Channel(type=examples), contract=CONTRACT,
                            pool=PoolConfig(alpha=0.5))
