"""Under MirroredStrategy with 2 replicas, every replica scores against the global batch.

Runs in a subprocess because logical devices must be configured before TensorFlow starts.
With no pool negatives the mean of the two replicas' losses must equal the loss of one
device over the whole batch (same weights), which holds only if candidates are gathered.
"""
import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import json
    import os
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from components.trainer import features, model as model_lib, towers
    from components.trainer.tests.small_world import CONTRACT, preprocessing
    from twotower.config import LossConfig, ModelConfig

    items = ["a", "b", "c", "d", "e", "f"]
    pool = model_lib.PoolData(
        features={"item_id": tf.constant(items), "title": tf.constant([""] * 6),
                  "genres": tf.constant([""] * 6), "release_year": tf.zeros([6], tf.int64)},
        probabilities=tf.fill([6], 1 / 6), item_ids=np.array(items, dtype=object),
        in_batch=np.full(6, 1 / 6, np.float32), pool=np.full(6, 1 / 6, np.float32),
        floor=1 / 6)
    model_config = ModelConfig(embedding_dim=4, hidden_layers=(8,))
    loss_config = LossConfig(pool_ratio=0.0)
    batch = {"user_id": tf.constant(["u1", "u2", "u3", "u1"]),
             "age": tf.constant([20, 30, 40, 20], tf.int64),
             "gender": tf.constant(["M", "F", "M", "M"]),
             "occupation": tf.constant(["a", "b", "c", "a"]),
             "zip": tf.constant(["1", "2", "3", "1"]),
             "item_id": tf.constant(["a", "b", "a", "c"]),
             "title": tf.constant(["x", "y", "x", "z"]),
             "genres": tf.constant(["g", "h", "g", "i"]),
             "release_year": tf.constant([1990, 2000, 1990, 2010], tf.int64)}

    def build():
        tf.keras.utils.set_random_seed(0)
        statistics = preprocessing(["u1", "u2", "u3"], items)
        return model_lib.TwoTowerModel(
            towers.query_tower(CONTRACT, statistics, model_config),
            towers.candidate_tower(CONTRACT, statistics, model_config), pool, model_config,
            loss_config, 2, 0, CONTRACT)

    def build_and_call():
        model = build()
        model.query_tower(features.select(batch, CONTRACT.query_names))
        model.candidate_tower(features.select(batch, CONTRACT.candidate_names))
        return model

    single = build_and_call()
    single_loss = float(single.compute_loss(batch, training=False))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = build_and_call()
    mirrored.set_weights(single.get_weights())
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(4)
    distributed = next(iter(strategy.experimental_distribute_dataset(dataset)))
    per_replica = strategy.run(lambda b: mirrored.compute_loss(b, training=False), (distributed,))
    replica_losses = [float(x) for x in strategy.experimental_local_results(per_replica)]
    print("RESULT " + json.dumps({"single": single_loss, "replicas": replica_losses}))
''')


def test_replicas_score_against_the_global_batch():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            check=False, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
    assert lines, result.stderr[-3000:]
    found = json.loads(lines[0].split(" ", 1)[1])
    single, replicas = found["single"], found["replicas"]
    assert len(replicas) == 2
    assert abs(sum(replicas) / 2 - single) < 1e-5, (single, replicas)
    # Without the gather each replica would see only its 2 candidates: a different loss.
    assert abs(replicas[0] - replicas[1]) > 1e-6
