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
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from components.trainer.tests.small_world import tiny_model

    single, batch = tiny_model()
    single_loss = float(single.compute_loss(batch, training=False))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored, _ = tiny_model()
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
