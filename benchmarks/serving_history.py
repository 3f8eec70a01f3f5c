"""`twotower bench serving --history-lengths 0 200 500`: what the request's history costs the
served model (components/index_builder/repeat.py merges its items with the index's top-k).

The latest version under --model_base_path must take a history (a [B, L] string input, a
contract feature of kind history). Every request is one of its warm-up rows (an eval
query) with the history replaced by exactly L item ids taken from the warm-up rows'
histories (cycled when they hold fewer; a shopper's history repeats items too); L = 0
sends the empty history [[""]]. Rows per length, batch 1:
- `in_process`: the signature called in this process, concurrency 1;
- gRPC to `twotower serve` in its own process (default front end), concurrency 1 without
  batching and concurrency 16 with batching (h2load, else the Python client).
Writes reports/serving_history.json; the notes give each length's p50 against L = 0.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import tempfile
from typing import Any, Optional, Sequence

import numpy as np

from benchmarks import common, h2load, serving
from benchmarks.server_process import ServerProcess
from benchmarks.serving_client import closed_loop
from serving import batching_params
from twotower.errors import TwoTowerError

REFERENCE_LENGTH = 0


def history_input(features: dict[str, np.ndarray]) -> str:
    """The name of the model's one [B, L] string input.

    Raises:
      TwoTowerError: if the model takes no history.
    """
    found = [name for name, value in features.items() if value.ndim == 2]
    if len(found) != 1:
        raise TwoTowerError(f"the model's inputs {sorted(features)} hold no history (a [B, L] "
                            "string input): benchmark a model whose contract declares a "
                            "feature of kind history, e.g. configs/completejourney.yaml")
    return found[0]


def with_history(features: dict[str, np.ndarray], name: str, length: int
                 ) -> dict[str, np.ndarray]:
    """The first row of `features` with a history of exactly `length` ids, cycled from the
    non-empty ids of every row's history (most recent last); [[""]] for 0.

    Raises:
      TwoTowerError: if a history is asked for and the rows' histories are all empty.
    """
    row = {key: value[:1] for key, value in features.items()}
    if length == 0:
        return {**row, name: np.array([[b""]], dtype=object)}
    items = [item for item in features[name].ravel() if item]
    if not items:
        raise TwoTowerError("the model's warm-up requests carry empty histories; push a model "
                            "trained on data where users have earlier events")
    picked = [items[index % len(items)] for index in range(length)]
    return {**row, name: np.array([picked], dtype=object)}


def run(model_base_path: pathlib.Path, lengths: Sequence[int], seconds: float,
        max_requests: int, batching_file: pathlib.Path, out: Optional[pathlib.Path]
        ) -> pathlib.Path:
    """Measures every length's rows; writes the report."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from twotower import scann_ops, versions  # pylint: disable=import-outside-toplevel
    if any(length < 0 for length in lengths):
        raise TwoTowerError(f"--history-lengths {list(lengths)}: a length is a count of item "
                            "ids, 0 or more")
    available = versions.versions(str(model_base_path))
    if not available:
        raise TwoTowerError(f"no model version under {model_base_path}: run `twotower run` "
                            "with a history contract first, or pass --model_base_path")
    lengths = sorted(set([REFERENCE_LENGTH, *lengths]))
    parameters = batching_params.parse(batching_file.read_text(), str(batching_file))
    commit = common.git_commit()
    source = model_base_path / str(available[-1])
    columns = serving.features(str(source), 64)
    name = history_input(columns)
    requests = {length: serving.Request(with_history(columns, name, length))
                for length in lengths}
    rows: list[dict[str, Any]] = []
    scann_ops.import_scann_ops()
    signature = tf.saved_model.load(str(source)).signatures["serving_default"]
    for length, request in requests.items():
        tensors = {key: tf.constant(value) for key, value in request.features.items()}
        signature(**tensors)
        rows.append(_with_length(serving.make_row("in_process", "in_process", "none", False, 1, 1,
                                              closed_loop(lambda t=tensors: signature(**t), 1,
                                                          seconds, max_requests)), length))
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "twotower")
        versions.publish(str(source), base, 1)
        for batching, concurrency in ((False, 1), (True, 16)):
            server = ServerProcess(base, str(batching_file) if batching else None)
            try:
                for length, request in requests.items():
                    rows.append(_with_length(_grpc_row(server, request, batching, concurrency,
                                                       seconds, max_requests, tmp), length))
            finally:
                server.stop()
    config = {"model": str(source), "history_input": name, "lengths": lengths,
              "seconds_per_point": seconds, "max_requests": max_requests, "batch": 1,
              "batching_parameters": dataclasses.asdict(parameters),
              "h2load": h2load.binary() is not None}
    return common.write_report("serving_history", config, rows, notes(rows), out, commit)


def _with_length(row: dict[str, Any], length: int) -> dict[str, Any]:
    return {**row, "history_length": length}


def _grpc_row(server: ServerProcess, request: serving.Request, batching: bool,
              concurrency: int, seconds: float, max_requests: int, tmp: str
              ) -> dict[str, Any]:
    """One gRPC operating point: h2load where installed, else the Python client."""
    if h2load.binary():
        serving.h2load_point(server, request, "grpc", 1, 0.0, max_requests=200)
        return serving.make_row("grpc", "h2load", "grpc", batching, concurrency, 1,
                            serving.h2load_point(server, request, "grpc", concurrency, seconds))
    request_file = os.path.join(tmp, "request.pb")
    pathlib.Path(request_file).write_bytes(request.serialized)
    return serving.make_row("grpc", "python", "grpc", batching, concurrency, 1,
                        serving.python_client_point(server, request_file, concurrency, seconds,
                                               max_requests))


def notes(rows: list[dict[str, Any]]) -> str:
    """Each length's p50 (and q/s under load) against the empty history, per row kind."""
    parts = ["Batch 1; every request one eval query with its history replaced by exactly L "
             "ids (L = 0: the empty history)."]
    kinds = sorted({(row["mode"], row["batching"], row["concurrency"]) for row in rows})
    for mode, batching, concurrency in kinds:
        same = [row for row in rows if (row["mode"], row["batching"], row["concurrency"]) ==
                (mode, batching, concurrency)]
        reference = next((row for row in same if row["history_length"] == REFERENCE_LENGTH),
                         None)
        if reference is None:
            continue
        figures = [f"L={row['history_length']}: p50 {row['p50_ms']:.2f} ms "
                   f"({row['p50_ms'] / reference['p50_ms']:.2f}x), {row['qps']:.0f} req/s"
                   for row in sorted(same, key=lambda row: row["history_length"])]
        parts.append(f"{mode}, concurrency {concurrency}, batching "
                     f"{'on' if batching else 'off'}: " + "; ".join(figures) + ".")
    return " ".join(parts)
