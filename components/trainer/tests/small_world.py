"""Small planted-cluster data on disk, its NegativePool, and a model trained on it; shared
by the trainer, index and validator tests."""
from __future__ import annotations

import pathlib
from typing import Iterator, Optional

import numpy as np
import tensorflow as tf

from benchmarks import example_files
from components.negative_pool import artifact_io
from components.trainer import features, training, towers
from components.trainer import model as model_lib
from twotower import config as config_lib
from twotower import contract as contract_lib
from pipeline.data import synthetic

USERS, ITEMS = 200, 120
# The synthetic generator's default feature set has MovieLens's columns.
CONTRACT = contract_lib.load(config_lib.DEFAULT_SCHEMA_DIR)


def preprocessing(users: list[str], items: list[str]) -> towers.Preprocessing:
    """Hand-made statistics of CONTRACT's features, for towers built without a pool."""
    return towers.Preprocessing(
        vocabularies={"user_id": users, "item_id": items, "gender": ["M", "F"],
                      "occupation": ["writer", "a", "b"], "zip": ["85", "T8"],
                      "title": ["toy", "story"], "genres": ["Animation", "Comedy", "Drama"]},
        numeric={"age": towers.NumericStats((18.0, 25.0, 35.0), 30.0, 10.0),
                 "release_year": towers.NumericStats((1990.0, 2000.0), 1995.0, 5.0)})


def tiny_model() -> tuple[model_lib.TwoTowerModel, dict[str, tf.Tensor]]:
    """A small model over 6 items (no pool negatives, seeded: the same weights in every
    process that builds it) and a 4-row batch, the towers called once on it. Build it
    inside a strategy's scope to have its variables mirrored."""
    items = ["a", "b", "c", "d", "e", "f"]
    pool = model_lib.PoolData(
        features={"item_id": tf.constant(items), "title": tf.constant([""] * 6),
                  "genres": tf.constant([""] * 6), "release_year": tf.zeros([6], tf.int64)},
        probabilities=tf.fill([6], 1 / 6), item_ids=np.array(items, dtype=object),
        in_batch=np.full(6, 1 / 6, np.float32), pool=np.full(6, 1 / 6, np.float32),
        floor=1 / 6)
    model_config = config_lib.ModelConfig(embedding_dim=4, hidden_layers=(8,))
    batch = {"user_id": tf.constant(["u1", "u2", "u3", "u1"]),
             "age": tf.constant([20, 30, 40, 20], tf.int64),
             "gender": tf.constant(["M", "F", "M", "M"]),
             "occupation": tf.constant(["a", "b", "c", "a"]),
             "zip": tf.constant(["1", "2", "3", "1"]),
             "item_id": tf.constant(["a", "b", "a", "c"]),
             "title": tf.constant(["x", "y", "x", "z"]),
             "genres": tf.constant(["g", "h", "g", "i"]),
             "release_year": tf.constant([1990, 2000, 1990, 2010], tf.int64)}
    tf.keras.utils.set_random_seed(0)
    statistics = preprocessing(["u1", "u2", "u3"], items)
    model = model_lib.TwoTowerModel(
        towers.query_tower(CONTRACT, statistics, model_config),
        towers.candidate_tower(CONTRACT, statistics, model_config), pool, model_config,
        config_lib.LossConfig(pool_ratio=0.0), 2, 0, CONTRACT)
    model.query_tower(features.select(batch, CONTRACT.query_names))
    model.candidate_tower(features.select(batch, CONTRACT.candidate_names))
    return model, batch


def write_data(root: pathlib.Path, seed: int = 3) -> str:
    """Interactions (train/eval), catalogue and pool under `root`; returns the pool URI."""
    spec = synthetic.SyntheticSpec(users=USERS, items=ITEMS, interactions=12_000, seed=seed,
                                   clusters=6, affinity=0.9)
    world, rng, users, items = synthetic.build(spec)
    frame = next(synthetic.interaction_chunks(world, spec, rng, users, items, spec.interactions))
    cut = int(len(frame) * 0.8)
    frame, items = (example_files.typed_frame(table, CONTRACT) for table in (frame, items))
    example_files.write_split([frame.iloc[:cut]], root / "inter", "train")
    example_files.write_split([frame.iloc[cut:]], root / "inter", "eval")
    example_files.write_split([items], root / "items", "catalog")
    return example_files.build_pool_artifact(root / "inter", root / "items", root / "pool",
                                             config_lib.PoolConfig(seed=0), CONTRACT)


def patterns(root: pathlib.Path) -> tuple[str, str, str]:
    """(train, eval, catalogue) file patterns."""
    return (str(root / "inter" / "Split-train" / "*"), str(root / "inter" / "Split-eval" / "*"),
            str(root / "items" / "Split-catalog" / "*"))


def train_batches(root: pathlib.Path, pool_uri: str, batch_size: int
                  ) -> Iterator[dict[str, tf.Tensor]]:
    """Shuffled training batches as the Trainer feeds them (catalogue features joined)."""
    train_pattern, _, catalog_pattern = patterns(root)
    return iter(training.train_dataset(train_pattern, catalog_pattern,
                                       artifact_io.read_contract(pool_uri), batch_size, 0))


def config(*overrides: str) -> config_lib.PipelineConfig:
    """A small model's config: 5 epochs, batch 128, dim 16, then `overrides`."""
    return config_lib.load(None, ("training.epochs=5", "training.batch_size=128",
                                  "model.embedding_dim=16", *overrides))


def train(root: pathlib.Path, pool_uri: str, serving_dir: Optional[str], *overrides: str
          ) -> training.TrainResult:
    """Trains the small model and exports it to serving_dir (None: no export)."""
    return training.train_and_evaluate(*patterns(root), pool_uri, config(*overrides),
                                       serving_dir)


def write_records(path: pathlib.Path, count: int) -> str:
    """`count` gzipped TFRecords b"record-<i>" at `path` (a split's files, for tests that
    only count or sample records); returns the path."""
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for i in range(count):
            writer.write(f"record-{i}".encode())
    return str(path)
