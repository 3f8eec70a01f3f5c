"""`twotower bench multi_worker`: the Trainer on one process and on N worker processes.

MovieLens-100K's temporal split (benchmarks/protocols.py) is written once with its
NegativePool; then the Trainer's run_fn trains the default model at the same global batch
in one process and in N processes given TF_CONFIG (components/trainer/distribution.py:
MultiWorkerMirroredStrategy, candidates gathered across workers, the chief evaluates). Each
row holds the export's metrics (filtered recall and NDCG over the same sampled eval events,
with their 95% intervals) and the wall time. All processes share this machine's cores, so
the wall time shows the cost of the collectives, not a speed-up. Writes
reports/multi_worker.json (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

from benchmarks import common
from twotower import config as config_lib
from twotower import contract as contract_lib
from twotower.errors import TwoTowerError

KEYS = ("filtered_recall_at_10", "filtered_recall_at_100", "filtered_ndcg_at_10",
        "tfrs_recall_at_100", "examples_per_sec", "train_seconds", "final_loss")
TRAIN = ("import json, sys\n"
         "from components.trainer import trainer_module\n"
         "trainer_module.train(*json.loads(sys.argv[1]))\n")


def train(workers: int, arguments: list[Any], serving_dir: pathlib.Path) -> dict[str, Any]:
    """Runs the Trainer's run_fn in `workers` processes (TF_CONFIG when more than one) and
    returns the chief's exported metrics plus the wall time.

    Raises:
      TwoTowerError: naming the process that failed, with the end of its output.
    """
    cluster = {"worker": [f"localhost:{port}" for port in common.free_ports(workers)]}
    started = time.time()
    processes = []
    for index in range(workers):
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
        if workers > 1:
            env["TF_CONFIG"] = json.dumps({"cluster": cluster,
                                           "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, "-c", TRAIN, json.dumps([*arguments[:5], str(serving_dir), None])],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for index, process in enumerate(processes):
        _, err = process.communicate()
        if process.returncode != 0:
            raise TwoTowerError(f"worker {index} of {workers} failed: {err[-2000:]}")
    metrics = json.loads((serving_dir / "metrics.json").read_text())
    row = {"name": f"{workers}_workers" if workers > 1 else "one_process", "workers": workers,
           "wall_s": round(time.time() - started, 1)}
    for key in KEYS:
        row[key] = metrics.get(key)
        if f"{key}_ci95" in metrics:
            row[f"{key}_ci95"] = metrics[f"{key}_ci95"]
    return row


def run(data_dir: pathlib.Path, workers: int, epochs: int, workdir: Optional[pathlib.Path],
        out: Optional[pathlib.Path]) -> pathlib.Path:
    from benchmarks import quality, quality_datasets  # pylint: disable=import-outside-toplevel
    commit = common.git_commit()
    dataset = quality_datasets.DATASETS["movielens"]
    contract = contract_lib.load(str(config_lib.SCHEMAS_ROOT / dataset.schema_dir))
    interactions, items = quality_datasets.load_tables(data_dir, contract, dataset.command)
    config = config_lib.load(None, (f"training.epochs={epochs}",))
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        prepared = quality.prepare("temporal", interactions, items, pathlib.Path(tmp), config,
                                   contract)
        arguments = [prepared.train_pattern, prepared.eval_pattern, prepared.catalog_pattern,
                     prepared.pool_uri, config.to_dict()]
        for count in (1, workers):
            row = train(count, arguments, pathlib.Path(tmp) / f"serving-{count}")
            print(f"[multi_worker] {row}", flush=True)
            rows.append(row)
    one, many = rows
    inside = {key: abs(many[key] - one[key]) <= one[f"{key}_ci95"]
              for key in KEYS if f"{key}_ci95" in one}
    notes = (f"MovieLens-100K temporal split, default model, {epochs} epochs, global batch "
             f"{config.training.batch_size}; one process vs {workers} worker processes on the "
             f"same {os.cpu_count()} cores. The {workers}-worker value lies within the "
             f"one-process 95% interval for: "
             + ", ".join(f"{key} {'yes' if ok else 'no'}" for key, ok in inside.items()) + ".")
    return common.write_report("multi_worker", {"data": str(data_dir), "workers": workers,
                                                "epochs": epochs}, rows, notes, out, commit)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=pathlib.Path, default=pathlib.Path("data/movielens"),
                        help="folder written by `twotower data movielens`")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (>= 2)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workdir", type=pathlib.Path,
                        help="where to put temporary data (default: system temp)")
    parser.add_argument("--out", type=pathlib.Path,
                        help="report path (default reports/multi_worker.json)")


def main_from_args(args: argparse.Namespace) -> None:
    if args.workers < 2:
        raise TwoTowerError(f"--workers {args.workers}: compare with at least 2")
    print(f"wrote {run(args.data, args.workers, args.epochs, args.workdir, args.out)}")
