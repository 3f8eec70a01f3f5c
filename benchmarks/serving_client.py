"""The Python-client load of `twotower bench serving`, run in its own process.

    python -m benchmarks.serving_client --port P --request FILE --concurrency C --seconds S

sends the serialized PredictRequest in FILE with tensorflow-serving-api's stub from C
threads in a closed loop (each thread sends its next request when the previous one
returns) and prints one JSON line: requests, errors, qps, mean/p50/p95/p99 ms. Its figures
include the client's own costs (building and decoding messages in Python), which is what a
Python caller of the server pays.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any, Callable

import numpy as np


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
            "mean_ms": round(float(values.mean()), 3),
            "p50_ms": round(float(np.percentile(values, 50)), 3),
            "p95_ms": round(float(np.percentile(values, 95)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--request", required=True, help="serialized PredictRequest")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=20_000)
    args = parser.parse_args()
    import grpc  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # pylint: disable=import-outside-toplevel
    with open(args.request, "rb") as f:
        request = predict_pb2.PredictRequest.FromString(f.read())
    with grpc.insecure_channel(f"127.0.0.1:{args.port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        stub.Predict(request, 30)
        result = closed_loop(lambda: stub.Predict(request, 30), args.concurrency, args.seconds,
                             args.max_requests)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
