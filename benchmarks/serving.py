"""`twotower bench serving`: the model server against an in-process call of the same model.

The latest version under --model_base_path (default: what `make demo` pushed) is copied to
a temporary base path and served by `twotower serve`'s ModelServer on free loopback ports.
A closed-loop load generator (each of C threads sends its next request when the previous
one returns, for a bounded time) measures queries/s and p50/p95/p99 latency at
concurrency 1, 4 and 16 for batches of 1 and 32 rows, over gRPC (official
tensorflow_serving.apis stubs) and in process (the SavedModel's signature called directly).
Mode `grpc_floor` sends the same request with the same stub to a server that answers with
the model server's response bytes at once: the transport and the client's decoding, which
any Python gRPC server costs, measured apart from the server's own work.
Then, under load at concurrency 4, a new version is published and swapped in; every failed
request is counted. Writes reports/serving.json (DESIGN §8).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Optional

import numpy as np

from benchmarks import common

CONCURRENCY = (1, 4, 16)
BATCHES = (1, 32)
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"


def _features(model_dir: str, batch: int) -> dict[str, np.ndarray]:
    """`batch` rows of raw query features, cycled from the model's warm-up requests (eval
    rows of the data it was trained on, so any feature set works)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from components.index_builder import warmup  # pylint: disable=import-outside-toplevel
    from pipeline.errors import TwoTowerError  # pylint: disable=import-outside-toplevel
    requests = warmup.read(model_dir)
    if not requests:
        raise TwoTowerError(f"{model_dir} has no warm-up requests to take query rows from; "
                            "benchmark a model pushed by `twotower run`")
    columns = {name: np.concatenate([tf.make_ndarray(request.inputs[name])
                                     for request in requests])
               for name in requests[0].inputs}
    rows = np.arange(batch) % len(next(iter(columns.values())))
    return {name: values[rows] for name, values in columns.items()}


def closed_loop(call: Callable[[], Any], concurrency: int, seconds: float,
                max_requests: int) -> dict[str, float]:
    """Runs `call` back to back from `concurrency` threads; latency percentiles in ms."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        while time.perf_counter() < deadline:
            with lock:
                if len(latencies) + errors[0] >= max_requests:
                    return
            started = time.perf_counter()
            try:
                call()
            except Exception:  # pylint: disable=broad-except
                with lock:
                    errors[0] += 1
                continue
            with lock:
                latencies.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    values = np.array(latencies or [float("nan")])
    return {"requests": len(latencies), "errors": errors[0],
            "qps": round(len(latencies) / elapsed, 1),
            "p50_ms": round(float(np.percentile(values, 50)), 3),
            "p95_ms": round(float(np.percentile(values, 95)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3)}


def run(model_base_path: pathlib.Path, seconds: float, max_requests: int,
        out: Optional[pathlib.Path]) -> pathlib.Path:
    """Measures every mode, concurrency and batch, then the swap; writes the report."""
    import grpc  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # pylint: disable=import-outside-toplevel
    from components.pusher import versions  # pylint: disable=import-outside-toplevel
    from serving.flags import ServerOptions  # pylint: disable=import-outside-toplevel
    from serving.server import ModelServer  # pylint: disable=import-outside-toplevel
    from pipeline.errors import TwoTowerError  # pylint: disable=import-outside-toplevel

    available = versions.versions(str(model_base_path))
    if not available:
        raise TwoTowerError(f"no model version under {model_base_path}: run `make demo` (or "
                            "`twotower run`) first, or pass --model_base_path")
    commit = common.git_commit()
    source = model_base_path / str(available[-1])
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = os.path.join(tmp, "twotower")
        versions.publish(str(source), base, 1)
        server = ModelServer(ServerOptions(models={"twotower": base}, port=0, rest_api_port=0,
                                           poll_seconds=0.5, grpc_threads=32))
        server.start()
        signature = tf.saved_model.load(os.path.join(base, "1")).signatures["serving_default"]
        channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            for batch in BATCHES:
                features = _features(os.path.join(base, "1"), batch)
                tensors = {name: tf.constant(value) for name, value in features.items()}
                request = predict_pb2.PredictRequest()
                request.model_spec.name = "twotower"
                for name, value in features.items():
                    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
                floor = _FloorServer(_raw_response(channel, request))
                floor_stub = prediction_service_pb2_grpc.PredictionServiceStub(floor.channel)
                calls = {"in_process": lambda t=tensors: signature(**t),
                         "grpc": lambda r=request: stub.Predict(r, 30),
                         "grpc_floor": lambda r=request, s=floor_stub: s.Predict(r, 30)}
                try:
                    _measure(calls, batch, seconds, max_requests, rows)
                finally:
                    floor.stop()
            swap = _swap(server, base, source, stub, request, seconds, max_requests)
        finally:
            channel.close()
            server.stop()
    notes = _notes(rows, swap)
    config = {"model": str(source), "seconds_per_point": seconds, "max_requests": max_requests,
              "concurrency": list(CONCURRENCY), "batches": list(BATCHES), "loopback": True}
    return common.write_report("serving", config, rows, notes, out, commit,
                               extra={"swap": swap})


def _measure(calls: dict[str, Callable[[], Any]], batch: int, seconds: float,
             max_requests: int, rows: list[dict[str, Any]]) -> None:
    """One row per mode and concurrency, appended to `rows`."""
    for mode, call in calls.items():
        call()
        for concurrency in CONCURRENCY:
            row = {"mode": mode, "concurrency": concurrency, "batch": batch,
                   **closed_loop(call, concurrency, seconds, max_requests)}
            _log(str(row))
            rows.append(row)


def _raw_response(channel: Any, request: Any) -> bytes:
    """The server's serialized PredictResponse to `request`, undecoded."""
    predict = channel.unary_unary(PREDICT_METHOD,
                                  request_serializer=type(request).SerializeToString)
    return predict(request, timeout=30)


class _FloorServer:
    """A gRPC server on loopback answering every Predict with fixed response bytes.

    Calling it with the official stub measures what any Python gRPC server would cost at
    least: the transport, the request's serialization and the client's decoding of the
    same response, with no model and no server-side work.
    """

    def __init__(self, response: bytes) -> None:
        import grpc  # pylint: disable=import-outside-toplevel
        from concurrent import futures  # pylint: disable=import-outside-toplevel
        handler = grpc.unary_unary_rpc_method_handler(
            lambda request, context: response, request_deserializer=None,
            response_serializer=None)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "tensorflow.serving.PredictionService", {"Predict": handler}),))
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")

    def stop(self) -> None:
        self.channel.close()
        self.server.stop(None)


def _swap(server: Any, base: str, source: pathlib.Path, stub: Any, request: Any,
          seconds: float, max_requests: int) -> dict[str, int]:
    """Publishes version 2 while 4 clients send requests; counts failures."""
    from components.pusher import versions  # pylint: disable=import-outside-toplevel
    result: dict[str, Any] = {}
    load = threading.Thread(target=lambda: result.update(closed_loop(
        lambda: stub.Predict(request, 30), 4, max(seconds, 6.0), max_requests)))
    load.start()
    time.sleep(1.0)
    versions.publish(str(source), base, 2)
    load.join()
    swapped = server.manager.get("twotower").version == 2
    _log(f"swap: {result['requests']} requests, {result['errors']} failed, swapped {swapped}")
    return {"requests": result["requests"], "failed": result["errors"], "swapped": swapped}


def _notes(rows: list[dict[str, Any]], swap: dict[str, int]) -> str:
    def p50(mode: str, batch: int) -> float:
        return next(r["p50_ms"] for r in rows if r["mode"] == mode and r["batch"] == batch
                    and r["concurrency"] == 1)
    parts = ["Closed loop on loopback; one process holds the server and the load generator, "
             "so at concurrency > 1 both compete for the 2 cores."]
    for batch in BATCHES:
        grpc_ms, local_ms = p50("grpc", batch), p50("in_process", batch)
        floor_ms = p50("grpc_floor", batch)
        parts.append(f"batch {batch}, concurrency 1: gRPC p50 {grpc_ms:.2f} ms vs in-process "
                     f"{local_ms:.2f} ms ({grpc_ms / local_ms:.2f}x, +{grpc_ms - local_ms:.2f} ms); "
                     f"the floor (fixed response bytes, no model) {floor_ms:.2f} ms, so in-process "
                     f"+ floor = {local_ms + floor_ms:.2f} ms "
                     f"({(local_ms + floor_ms) / local_ms:.2f}x) and the server's own work "
                     f"(gRPC - floor - in-process) {grpc_ms - floor_ms - local_ms:.2f} ms.")
    parts.append(f"Hot swap under load: {swap['failed']} of {swap['requests']} requests failed.")
    return " ".join(parts)


def _log(message: str) -> None:
    print(f"[serving] {message}", file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model_base_path", type=pathlib.Path,
                        default=pathlib.Path("serving_models/twotower"),
                        help="base path whose latest version is benchmarked")
    parser.add_argument("--seconds", type=float, default=5.0, help="per operating point")
    parser.add_argument("--max-requests", type=int, default=20_000, help="per operating point")
    parser.add_argument("--out", type=pathlib.Path,
                        help="report path (default reports/serving.json)")


def main_from_args(args: argparse.Namespace) -> None:
    path = run(args.model_base_path, args.seconds, args.max_requests, args.out)
    print(f"wrote {path}")
