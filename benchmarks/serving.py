"""`twotower bench serving`: the model server measured from outside its process.

The latest version under --model_base_path (default: what `make demo` pushed) is copied to
a temporary base path. Rows, at concurrency 1, 4 and 16 for requests of 1 and 32 rows:
- `in_process`: the SavedModel's signature called in this process (the floor any server
  adds to);
- `h2load`: `twotower serve` in its own process, loaded by h2load (nghttp2's C client, see
  benchmarks/h2load.py) over gRPC (a pre-framed PredictRequest) and REST (JSON over
  HTTP/1.1); per-request durations from its log give p50/p95/p99;
- `python`: the same server loaded by tensorflow-serving-api's stub from a separate
  process (benchmarks/serving_client.py), the figure a Python caller sees.
Each server row is measured with batching off and on (configs/batching_parameters.pbtxt or
--batching_parameters_file) and with each gRPC front end (`frontend`: `--grpc_frontend`
grpcio or asyncio; REST rows are measured beside either, its server does not change). Errors are h2load's non-2xx answers plus the server's own count
of non-OK Predict answers (a gRPC error is an HTTP 200 with a grpc-status trailer). Then,
under h2load load at concurrency 16 with batching on, a new version is published and
swapped in, then a corrupt one is published (it must fail to load while the old keeps
serving); every failed request is counted. Writes reports/serving.json (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Optional

import numpy as np

from benchmarks import common, h2load
from benchmarks.server_process import ServerProcess
from benchmarks.serving_client import closed_loop
from serving import batching_params
from serving.flags import GRPC_FRONTENDS, ServerOptions
from twotower import scann_ops
from twotower.errors import TwoTowerError

CONCURRENCY = (1, 4, 16)
BATCHES = (1, 32)
PREDICT_PATH = "/tensorflow.serving.PredictionService/Predict"
DEFAULT_BATCHING_FILE = pathlib.Path("configs/batching_parameters.pbtxt")
DEFAULT_FRONTEND = ServerOptions.grpc_frontend


def features(model_dir: str, batch: int) -> dict[str, np.ndarray]:
    """`batch` rows of raw query features, cycled from the model's warm-up requests (eval
    rows of the data it was trained on, so any feature set works)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from twotower import warmup  # pylint: disable=import-outside-toplevel
    requests = warmup.read(model_dir)
    if not requests:
        raise TwoTowerError(f"{model_dir} has no warm-up requests to take query rows from; "
                            "benchmark a model pushed by `twotower run`")
    columns = {name: np.concatenate([tf.make_ndarray(request.inputs[name])
                                     for request in requests])
               for name in requests[0].inputs}
    rows = np.arange(batch) % len(next(iter(columns.values())))
    return {name: values[rows] for name, values in columns.items()}


class Request:
    """One request in every form the rows send: tensors (in process), a serialized
    PredictRequest (Python client), its gRPC frame (h2load) and a REST JSON body."""

    def __init__(self, features: dict[str, np.ndarray], model_name: str = "twotower") -> None:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        for name, value in features.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        self.features = features
        self.serialized = request.SerializeToString()
        self.grpc_frame = h2load.grpc_frame(self.serialized)
        self.rest_body = json.dumps({"inputs": {name: _json_value(value.tolist())
                                                 for name, value in features.items()}}).encode()


def _json_value(value: Any) -> Any:
    """A tensor's nested list with its bytes decoded (a history input is [B, L] strings)."""
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    return value.decode() if isinstance(value, bytes) else value


def run(model_base_path: pathlib.Path, seconds: float, max_requests: int,
        batching_file: pathlib.Path, out: Optional[pathlib.Path]) -> pathlib.Path:
    """Measures every row, then the swap; writes the report."""
    from twotower import versions  # pylint: disable=import-outside-toplevel

    available = versions.versions(str(model_base_path))
    if not available:
        raise TwoTowerError(f"no model version under {model_base_path}: run `make demo` (or "
                            "`twotower run`) first, or pass --model_base_path")
    parameters = batching_params.parse(batching_file.read_text(), str(batching_file))
    if h2load.binary() is None:
        _log(h2load.INSTALL_HINT)
    commit = common.git_commit()
    source = model_base_path / str(available[-1])
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "twotower")
        versions.publish(str(source), base, 1)
        requests = {batch: Request(features(os.path.join(base, "1"), batch))
                    for batch in BATCHES}
        rows += _in_process_rows(os.path.join(base, "1"), requests, seconds, max_requests)
        swap: dict[str, Any] = {}
        # The default front end last: its batching server runs the swap, which leaves a
        # corrupt newest version that a server started after it could not load.
        for frontend in sorted(GRPC_FRONTENDS, key=lambda name: name == DEFAULT_FRONTEND):
            for batching in (False, True):
                server = ServerProcess(base, str(batching_file) if batching else None, frontend)
                try:
                    rows += [{**row, "frontend": frontend} for row in _server_rows(
                        server, requests, batching, seconds, max_requests, tmp)]
                    if batching and frontend == DEFAULT_FRONTEND:
                        swap = _swap(server, base, str(source), requests[1], tmp)
                finally:
                    server.stop()
    config = {"model": str(source), "seconds_per_point": seconds, "max_requests": max_requests,
              "concurrency": list(CONCURRENCY), "batches": list(BATCHES), "loopback": True,
              "batching_parameters_file": str(batching_file),
              "batching_parameters": dataclasses.asdict(parameters),
              "h2load": h2load.binary() is not None, "frontends": list(GRPC_FRONTENDS),
              "default_frontend": DEFAULT_FRONTEND}
    return common.write_report("serving", config, rows, _notes(rows, swap), out, commit,
                               extra={"swap": swap})


def _in_process_rows(model_dir: str, requests: dict[int, Request], seconds: float,
                     max_requests: int) -> list[dict[str, Any]]:
    """The signature called in this process, no server."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    scann_ops.import_scann_ops()
    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    rows = []
    for batch, request in requests.items():
        tensors = {name: tf.constant(value) for name, value in request.features.items()}
        signature(**tensors)
        for concurrency in CONCURRENCY:
            rows.append(make_row("in_process", "in_process", "none", False, concurrency,
                                 batch, closed_loop(lambda t=tensors: signature(**t),
                                                    concurrency, seconds, max_requests)))
    return rows


def make_row(mode: str, client: str, protocol: str, batching: bool, concurrency: int,
             batch: int, result: dict[str, Any]) -> dict[str, Any]:
    """One report row: the operating point and its measured figures (logged as it is made)."""
    row = {"mode": mode, "client": client, "protocol": protocol, "batching": batching,
           "concurrency": concurrency, "batch": batch, **result}
    _log(json.dumps(row))
    return row


def _server_rows(server: ServerProcess, requests: dict[int, Request], batching: bool,
                 seconds: float, max_requests: int, tmp: str) -> list[dict[str, Any]]:
    """h2load (gRPC and REST) and Python-client rows against one server process."""
    rows = []
    for batch, request in requests.items():
        request_file = os.path.join(tmp, f"request-{batch}.pb")
        pathlib.Path(request_file).write_bytes(request.serialized)
        if h2load.binary():
            for protocol in ("grpc", "rest"):
                h2load_point(server, request, protocol, 1, 0.0, max_requests=200)
        for concurrency in CONCURRENCY:
            if h2load.binary():
                for protocol in ("grpc", "rest"):
                    rows.append(make_row(protocol, "h2load", protocol, batching, concurrency,
                                         batch, h2load_point(server, request, protocol,
                                                             concurrency, seconds)))
            rows.append(make_row("grpc", "python", "grpc", batching, concurrency, batch,
                                 python_client_point(server, request_file, concurrency, seconds,
                                                     max_requests)))
    return rows


def h2load_point(server: ServerProcess, request: Request, protocol: str, concurrency: int,
                 seconds: float, max_requests: Optional[int] = None) -> dict[str, Any]:
    """One h2load run; errors = non-2xx answers + the server's non-OK Predict answers."""
    before = server.predict_counts()
    if protocol == "grpc":
        result = h2load.run(f"http://127.0.0.1:{server.grpc_port}{PREDICT_PATH}",
                            request.grpc_frame, h2load.GRPC_HEADERS, concurrency, seconds,
                            max_requests=max_requests)
    else:
        result = h2load.run(f"http://127.0.0.1:{server.rest_port}/v1/models/twotower:predict",
                            request.rest_body, h2load.REST_HEADERS, concurrency, seconds,
                            http1=True, max_requests=max_requests)
    summary = result.summary()
    summary["errors"] = summary.pop("http_errors") + _refused(before, server.predict_counts(),
                                                              protocol)
    return summary


def _refused(before: dict[tuple[str, str], int], after: dict[tuple[str, str], int],
             protocol: str) -> int:
    """Failed Predict answers of `protocol` between two /metrics readings: every code but
    OK and CANCELLED (requests in flight when h2load's duration ends are cancelled by it;
    h2load neither logs nor counts them)."""
    return sum(count - before.get(key, 0) for key, count in after.items()
               if key[0] == protocol and key[1] not in ("OK", "CANCELLED"))


def python_client_point(server: ServerProcess, request_file: str, concurrency: int,
                        seconds: float, max_requests: int) -> dict[str, Any]:
    """One closed-loop run of the tensorflow-serving-api stub in its own process."""
    finished = subprocess.run(
        [sys.executable, "-m", "benchmarks.serving_client", "--port", str(server.grpc_port),
         "--request", request_file, "--concurrency", str(concurrency), "--seconds",
         str(seconds), "--max-requests", str(max_requests)],
        capture_output=True, text=True, timeout=seconds + 120, check=False)
    if finished.returncode != 0:
        raise TwoTowerError(f"the Python client failed: {finished.stderr[-800:]}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def _swap(server: ServerProcess, base: str, source: str, request: Request, tmp: str
          ) -> dict[str, Any]:
    """Under load at concurrency 16 (h2load, else the Python client): publishes version 2,
    waits until it serves, then publishes a corrupt version 3, waits until it has failed to
    load; counts failed requests."""
    from twotower import versions  # pylint: disable=import-outside-toplevel
    load_seconds = 25.0
    request_file = os.path.join(tmp, "swap-request.pb")
    pathlib.Path(request_file).write_bytes(request.serialized)
    result: dict[str, Any] = {}
    before = server.predict_counts()
    if h2load.binary():
        load = threading.Thread(target=lambda: result.update(h2load.run(
            f"http://127.0.0.1:{server.grpc_port}{PREDICT_PATH}", request.grpc_frame,
            h2load.GRPC_HEADERS, 16, load_seconds).summary()))
    else:
        load = threading.Thread(target=lambda: result.update(python_client_point(
            server, request_file, 16, load_seconds, 10 ** 9)))
    load.start()
    time.sleep(2.0)
    versions.publish(source, base, 2)
    swapped = _wait(lambda: server.served_version() == 2, load_seconds / 2)
    corrupt = os.path.join(tmp, "corrupt")
    shutil.copytree(source, corrupt)
    pathlib.Path(corrupt, "saved_model.pb").write_bytes(b"not a SavedModel")
    versions.publish(corrupt, base, 3)
    rejected = _wait(lambda: 3 in server.failed_versions(), load_seconds / 3)
    load.join()
    failed = (result.get("http_errors", 0) + result.get("errors", 0)
              + _refused(before, server.predict_counts(), "grpc"))
    swap = {"client": "h2load" if h2load.binary() else "python", "concurrency": 16,
            "requests": result["requests"], "failed": failed, "swapped": swapped,
            "corrupt_rejected": rejected, "served_after": server.served_version()}
    _log(f"swap: {swap}")
    return swap


def _wait(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _pick(rows: list[dict[str, Any]], **match: Any) -> Optional[dict[str, Any]]:
    return next((row for row in rows if all(row.get(k) == v for k, v in match.items())), None)


def _notes(rows: list[dict[str, Any]], swap: dict[str, Any]) -> str:
    parts = ["Closed loop on loopback, server in its own process (`twotower serve`). "
             "in_process: the signature called directly (no server). h2load: C client, "
             "gRPC = pre-framed PredictRequest over HTTP/2, REST = JSON over HTTP/1.1; "
             "latency from h2load's per-request log. python: tensorflow-serving-api stub in "
             "a separate process, including its own encoding and decoding. frontend: the "
             "server's --grpc_frontend."]
    local = _pick(rows, mode="in_process", batch=1, concurrency=1)
    for frontend in GRPC_FRONTENDS:
        parts += _frontend_notes(rows, local, frontend)
    if swap:
        parts.append(f"Hot swap then a corrupt version under load ({swap['client']}, "
                     f"concurrency 16, batching on, frontend {DEFAULT_FRONTEND}): "
                     f"{swap['failed']} of {swap['requests']} requests failed; swapped "
                     f"{swap['swapped']}, corrupt version rejected {swap['corrupt_rejected']}, "
                     f"serving version {swap['served_after']} after.")
    return " ".join(parts)


def _frontend_notes(rows: list[dict[str, Any]], local: Optional[dict[str, Any]],
                    frontend: str) -> list[str]:
    """The issue's figures for one gRPC front end's rows."""
    parts = []
    remote = _pick(rows, client="h2load", protocol="grpc", batching=False, batch=1,
                   concurrency=1, frontend=frontend)
    if local and remote:
        parts.append(f"[{frontend}] Batch 1, concurrency 1: gRPC (h2load) mean "
                     f"{remote['mean_ms']:.2f} ms / p50 {remote['p50_ms']:.2f} ms vs in-process "
                     f"{local['mean_ms']:.2f} / {local['p50_ms']:.2f} ms: "
                     f"+{remote['mean_ms'] - local['mean_ms']:.2f} ms mean, "
                     f"+{remote['p50_ms'] - local['p50_ms']:.2f} ms p50.")
    for client, protocol in (("h2load", "grpc"), ("h2load", "rest"), ("python", "grpc")):
        off = _pick(rows, client=client, protocol=protocol, batching=False, batch=1,
                    concurrency=16, frontend=frontend)
        on = _pick(rows, client=client, protocol=protocol, batching=True, batch=1,
                   concurrency=16, frontend=frontend)
        if off and on:
            parts.append(f"[{frontend}] Batch 1, concurrency 16, {protocol} ({client}): "
                         f"{off['qps']:.0f} req/s without batching, {on['qps']:.0f} with "
                         f"({on['qps'] / off['qps']:.2f}x; p99 {on['p99_ms']:.1f} ms, "
                         f"{on['errors']} errors).")
    grpc_on = _pick(rows, client="h2load", protocol="grpc", batching=True, batch=1,
                    concurrency=16, frontend=frontend)
    rest_on = _pick(rows, client="h2load", protocol="rest", batching=True, batch=1,
                    concurrency=16, frontend=frontend)
    if grpc_on and rest_on:
        parts.append(f"[{frontend}] REST / gRPC throughput at that point: "
                     f"{rest_on['qps'] / grpc_on['qps']:.2f}.")
    return parts


def _log(message: str) -> None:
    print(f"[serving] {message}", file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_base_path", type=pathlib.Path,
                        default=pathlib.Path("serving_models/twotower"),
                        help="base path whose latest version is benchmarked")
    parser.add_argument("--seconds", type=float, default=5.0, help="per operating point")
    parser.add_argument("--max-requests", type=int, default=20_000, help="per operating point")
    parser.add_argument("--batching_parameters_file", type=pathlib.Path,
                        default=DEFAULT_BATCHING_FILE,
                        help="TF Serving batching parameters for the batching-on rows")
    parser.add_argument("--history-lengths", type=int, nargs="+", metavar="L",
                        help="instead: the cost of the request's history on a model that takes "
                             "one (benchmarks/serving_history.py), at these lengths and 0; "
                             "writes reports/serving_history.json")
    parser.add_argument("--out", type=pathlib.Path,
                        help="report path (default reports/serving.json)")


def main_from_args(args: argparse.Namespace) -> None:
    if args.history_lengths:
        from benchmarks import serving_history  # pylint: disable=import-outside-toplevel (a cycle)
        path = serving_history.run(args.model_base_path, args.history_lengths, args.seconds,
                                   args.max_requests, args.batching_parameters_file, args.out)
    else:
        path = run(args.model_base_path, args.seconds, args.max_requests,
                   args.batching_parameters_file, args.out)
    print(f"wrote {path}")
