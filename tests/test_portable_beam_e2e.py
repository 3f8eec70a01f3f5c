"""Every Beam stage on Beam's portable path (the Runner API that Flink, Spark and Dataflow
take), with its outputs equal to the DirectRunner's.

The same small pipeline (Parquet input, hash split) runs twice: on the DirectRunner, and
on the PortableRunner with
Beam's embedded Python job service and EXTERNAL SDK workers, separate processes started by
Beam's worker pool (`apache_beam.runners.worker.worker_pool_main`), as a Flink or Spark job
server would start its SDK harnesses. ExampleGen's splits, StatisticsGen's statistics,
the NegativePoolBuilder's frequency table, vocabularies and stats must match, and the
portable run must push a model (docs/operations.md, "The portable path").
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2

from benchmarks import common
from components.negative_pool import artifact_io
from components.negative_pool.component import NegativePool
from pipeline import artifacts, cli
from pipeline.data import synthetic
from twotower import config as config_lib

pytestmark = pytest.mark.e2e
ROWS = 1_000
SPLITS = {"InteractionsExampleGen": ("train", "eval"), "ItemsExampleGen": ("catalog",)}
STATISTICS = {"InteractionsStatisticsGen": ("train", "eval"), "ItemsStatisticsGen": ("catalog",)}


@pytest.fixture(name="worker_pool")
def fixture_worker_pool(tmp_path):
    """Beam's SDK worker pool in its own process; each SDK worker it starts is a process
    too (`python` from this interpreter's folder). Stopped with SIGINT, which makes it stop
    its workers."""
    (port,) = common.free_ports(1)
    log = tmp_path / "worker_pool.log"
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
             f"--service_port={port}"], env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("localhost", port)) == 0:
                break
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"the worker pool did not listen on {port}: {log.read_text()[-2000:]}")
    yield f"localhost:{port}", log
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _run(root: pathlib.Path, data: pathlib.Path, beam_args: list[str]) -> config_lib.PipelineConfig:
    overrides = [f"data.interactions={data / 'interactions.parquet'}",
                 f"data.items={data / 'items.parquet'}", "data.input_format=parquet",
                 "data.split=hash", "data.eval_percent=30", f"orchestration.pipeline_root={root}",
                 f"serving.base_path={root / 'serving'}", "training.epochs=1",
                 "training.batch_size=128",
                 f"orchestration.beam_pipeline_args={json.dumps(beam_args)}"]
    args = ["run"]
    for override in overrides:
        args += ["--set", override]
    assert cli.main(args) == 0
    return config_lib.load(None, tuple(overrides))


def _records(uri: str, split: str) -> list[bytes]:
    files = tf.io.gfile.glob(os.path.join(uri, f"Split-{split}", "*"))
    return sorted(record.numpy() for record in tf.data.TFRecordDataset(files, "GZIP"))


def _statistics(uri: str, split: str) -> statistics_pb2.DatasetFeatureStatisticsList:
    with open(os.path.join(uri, f"Split-{split}", "FeatureStats.pb"), "rb") as f:
        return statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())


def test_the_portable_runner_gives_the_direct_runners_outputs(tmp_path, worker_pool, capsys):
    address, log = worker_pool
    data = tmp_path / "data"
    synthetic.generate(synthetic.SyntheticSpec(users=100, items=80, interactions=ROWS, seed=7),
                       data, progress=False)
    for table in ("interactions", "items"):
        pd.read_csv(data / f"{table}.csv", dtype={"user_id": str, "item_id": str, "zip": str}
                    ).to_parquet(data / f"{table}.parquet", index=False)
    direct = _run(tmp_path / "direct", data, [])
    sizes = re.search(r"interactions: train: (\d+) examples, eval: (\d+) examples",
                      capsys.readouterr().out)
    assert int(sizes.group(1)) + int(sizes.group(2)) == ROWS
    assert int(sizes.group(2)) == pytest.approx(0.3 * ROWS, abs=60)
    # The image flag is a dependency flag: TFX then stages no package of its own (the
    # EXTERNAL workers share this environment; on a cluster it names the SDK image).
    portable = _run(tmp_path / "portable", data, [
        "--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
        f"--environment_config={address}", "--sdk_worker_parallelism=2",
        "--sdk_container_image=twotower:latest"])
    # SDK worker processes were started for each Beam stage (two ExampleGens, two
    # StatisticsGens, the NegativePoolBuilder), none ran in this process.
    started = log.read_text().count("Starting worker with command")
    assert started >= 5, log.read_text()[-2000:]

    for node, splits in SPLITS.items():
        for split in splits:
            expected = _records(artifacts.latest_output_uri(direct, node, "Examples"), split)
            found = _records(artifacts.latest_output_uri(portable, node, "Examples"), split)
            assert expected and found == expected, (node, split)
    for node, splits in STATISTICS.items():
        for split in splits:
            expected = _statistics(
                artifacts.latest_output_uri(direct, node, "ExampleStatistics"), split)
            found = _statistics(
                artifacts.latest_output_uri(portable, node, "ExampleStatistics"), split)
            assert found == expected, (node, split)
    pools = [artifacts.latest_output_uri(config, "NegativePoolBuilder", NegativePool.TYPE_NAME)
             for config in (direct, portable)]
    tables = [artifact_io.read_frequencies(uri) for uri in pools]
    for column in ("item_ids", "counts", "probability", "pool_probability"):
        assert getattr(tables[1], column).tolist() == getattr(tables[0], column).tolist(), column
    for name in ("user_id", "item_id"):
        assert artifact_io.read_vocabulary(pools[1], name) == \
            artifact_io.read_vocabulary(pools[0], name), name
    assert artifact_io.read_stats(pools[1]) == artifact_io.read_stats(pools[0])
    assert artifacts.latest_output_uri(portable, "Pusher", "PushedModel")
