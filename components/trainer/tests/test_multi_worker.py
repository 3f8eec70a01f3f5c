"""The Trainer on two worker processes (TF_CONFIG, MultiWorkerMirroredStrategy).

Each test starts two Python processes on this machine with a TF_CONFIG naming both, as a
TFJob or a Vertex custom job would (components/trainer/distribution.py). They show that
each worker's queries are scored against the other worker's candidates, that the chief
alone evaluates and exports, and that a killed worker stops the chief with one clear error
and nothing exported.
"""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
from typing import Sequence

import pytest

from benchmarks import common
from components.trainer.tests import small_world

REPO = str(pathlib.Path(__file__).resolve().parents[3])

LOSS_SCRIPT = textwrap.dedent('''
    import json
    import tensorflow as tf
    from components.trainer import distribution
    strategy = distribution.strategy_from_environment()
    from components.trainer.tests.small_world import tiny_model

    with strategy.scope():
        model, batch = tiny_model()
    whole = float(model.compute_loss(batch))  # one process's view of the whole batch
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(4).with_options(options)
    shard = next(iter(strategy.experimental_distribute_dataset(dataset)))
    local = strategy.run(lambda b: model.compute_loss(b), (shard,))
    print("RESULT " + json.dumps({"whole": whole, "replicas": strategy.num_replicas_in_sync,
                                  "chief": distribution.is_chief(strategy),
                                  "local": [float(x) for x in
                                            strategy.experimental_local_results(local)]}))
''')

TRAIN_SCRIPT = textwrap.dedent('''
    import json
    import sys
    from absl import logging
    from components.trainer import trainer_module
    logging.set_verbosity(logging.INFO)
    args = json.loads(sys.argv[1])
    trainer_module.train(*args)
''')


def _start_workers(script: str, *argv: str, logs: Sequence[pathlib.Path] = ()
                   ) -> list[subprocess.Popen]:
    """Two processes with TF_CONFIG naming both; stderr to `logs` when given."""
    cluster = {"worker": [f"localhost:{port}" for port in common.free_ports(2)]}
    workers = []
    for index in range(2):
        env = {**os.environ, "PYTHONPATH": REPO, "TF_USE_LEGACY_KERAS": "1",
               "TF_CONFIG": json.dumps({"cluster": cluster,
                                        "task": {"type": "worker", "index": index}})}
        stderr = open(logs[index], "w") if logs else subprocess.PIPE  # pylint: disable=consider-using-with
        workers.append(subprocess.Popen([sys.executable, "-c", script, *argv], env=env,
                                        stdout=subprocess.PIPE, stderr=stderr, text=True))
        if logs:
            stderr.close()
    return workers


def _finish(workers: list[subprocess.Popen], timeout: float = 600) -> list[tuple[int, str, str]]:
    results = []
    for worker in workers:
        try:
            out, err = worker.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            worker.kill()
            out, err = worker.communicate()
        results.append((worker.returncode, out, err))
    return results


def test_each_worker_scores_against_both_workers_candidates():
    """Worker i gets rows [2i, 2i + 1] of the 4-row global batch; with the candidates
    gathered across processes, the mean of the two workers' losses is one process's loss
    over the whole batch (same weights: MultiWorkerMirroredStrategy syncs them)."""
    results = _finish(_start_workers(LOSS_SCRIPT))
    found = []
    for code, out, err in results:
        assert code == 0, err[-3000:]
        found.append(json.loads(next(line for line in out.splitlines()
                                     if line.startswith("RESULT")).split(" ", 1)[1]))
    assert [result["replicas"] for result in found] == [2, 2]
    assert [result["chief"] for result in found] == [True, False]
    (chief_loss,), (worker_loss,) = found[0]["local"], found[1]["local"]
    assert (chief_loss + worker_loss) / 2 == pytest.approx(found[0]["whole"], rel=1e-5)
    # Without the gather each worker would score 2 rows against its own 2 candidates.
    assert chief_loss != pytest.approx(worker_loss, rel=1e-3)


@pytest.fixture(name="world", scope="module")
def fixture_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    return root, small_world.write_data(root)


def _train_args(world, serving_dir: pathlib.Path, epochs: int) -> str:
    root, pool_uri = world
    config = small_world.config(f"training.epochs={epochs}").to_dict()
    return json.dumps([*small_world.patterns(root), pool_uri, config, str(serving_dir), None])


def test_the_chief_alone_evaluates_and_exports(world, tmp_path):
    serving = tmp_path / "serving"
    results = _finish(_start_workers(TRAIN_SCRIPT, _train_args(world, serving, 2)))
    for code, _, err in results:
        assert code == 0, err[-3000:]
    assert (serving / "query_tower" / "saved_model.pb").exists()
    assert "Eval metrics" in results[0][2]
    assert "Not the chief: the chief evaluates and exports" in results[1][2]
    assert "Eval metrics" not in results[1][2]


def test_a_killed_worker_stops_the_chief_with_one_clear_error(world, tmp_path):
    serving = tmp_path / "serving"
    logs = [tmp_path / f"worker-{index}.log" for index in range(2)]
    workers = _start_workers(TRAIN_SCRIPT, _train_args(world, serving, 200), logs=logs)
    deadline = time.monotonic() + 120
    while not all("Embedding tables" in log.read_text() for log in logs):
        assert time.monotonic() < deadline and workers[0].poll() is None, logs[0].read_text()
        time.sleep(0.5)
    time.sleep(5)  # both in model.fit (200 epochs take minutes)
    assert workers[1].poll() is None and workers[0].poll() is None
    workers[1].send_signal(signal.SIGKILL)
    _finish(workers, timeout=300)
    code, err = workers[0].returncode, logs[0].read_text()
    assert code != 0
    assert "TrainingError: training stopped on worker 0: a worker of the 2-process cluster " \
           "stopped answering" in err, err[-3000:]
    assert not (serving / "query_tower").exists()
