"""The serving benchmark's plumbing: gRPC framing for h2load, its log, /metrics counts."""
import struct

import numpy as np
import pytest

from benchmarks import h2load, serving, server_process
from tensorflow_serving.apis import predict_pb2


def test_grpc_frame_is_flag_length_and_message():
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "twotower"
    message = request.SerializeToString()
    frame = h2load.grpc_frame(message)
    assert frame[0] == 0 and struct.unpack(">I", frame[1:5])[0] == len(message)
    assert predict_pb2.PredictRequest.FromString(frame[5:]).model_spec.name == "twotower"


def test_log_parsing_and_percentiles_of_successful_requests():
    log = "".join(f"{1_000_000 + i * 1000}\t{200 if i != 3 else 503}\t{(i + 1) * 1000}\n"
                  for i in range(10))
    starts, statuses, durations = h2load.parse_log(log)
    assert statuses.tolist().count(503) == 1 and durations[0] == pytest.approx(1.0)
    summary = h2load.Result(statuses, durations, wall_s=0.5).summary()
    assert summary["requests"] == 9 and summary["http_errors"] == 1
    assert summary["qps"] == pytest.approx(18.0)
    ok = np.array([1, 2, 3, 5, 6, 7, 8, 9, 10], dtype=float)
    assert summary["p50_ms"] == pytest.approx(np.percentile(ok, 50))
    assert summary["mean_ms"] == pytest.approx(ok.mean(), abs=1e-3)
    assert starts[0] == 1_000_000


def test_server_error_counts_from_metrics():
    text = "\n".join([
        '# TYPE twotower_requests_total counter',
        'twotower_requests_total{protocol="grpc",method="Predict",model="twotower",code="OK"} 90',
        'twotower_requests_total{protocol="grpc",method="Predict",model="twotower",'
        'code="UNAVAILABLE"} 4',
        'twotower_requests_total{protocol="grpc",method="Predict",model="twotower",'
        'code="CANCELLED"} 16',
        'twotower_requests_total{protocol="rest",method="Predict",model="twotower",'
        'code="INVALID_ARGUMENT"} 2',
        'twotower_requests_total{protocol="grpc",method="GetModelStatus",model="twotower",'
        'code="NOT_FOUND"} 7'])
    after = server_process.predict_counts(text)
    assert after == {("grpc", "OK"): 90, ("grpc", "UNAVAILABLE"): 4, ("grpc", "CANCELLED"): 16,
                     ("rest", "INVALID_ARGUMENT"): 2}
    before = {("grpc", "OK"): 10, ("grpc", "UNAVAILABLE"): 1}
    assert serving._refused(before, after, "grpc") == 3
    assert serving._refused(before, after, "rest") == 2


def test_missing_h2load_names_the_package(monkeypatch):
    monkeypatch.setattr(h2load.shutil, "which", lambda name: None)
    with pytest.raises(Exception, match="apt-get install nghttp2-client"):
        h2load.run("http://127.0.0.1:1/", b"", (), 1, 1.0)


def test_notes_give_each_frontends_figures():
    def row(frontend, protocol, batching, concurrency, qps, mean):
        return {"mode": protocol, "client": "h2load", "protocol": protocol, "batching": batching,
                "concurrency": concurrency, "batch": 1, "qps": qps, "mean_ms": mean,
                "p50_ms": mean, "p99_ms": 2 * mean, "errors": 0, "frontend": frontend}
    rows = [{"mode": "in_process", "client": "in_process", "protocol": "none",
             "batching": False, "concurrency": 1, "batch": 1, "qps": 2000.0, "mean_ms": 0.5,
             "p50_ms": 0.4}]
    for frontend, factor in (("grpcio", 1.0), ("asyncio", 1.5)):
        rows += [row(frontend, "grpc", False, 1, 1000 * factor, 1.0 / factor),
                 row(frontend, "grpc", False, 16, 1400 * factor, 10.0),
                 row(frontend, "grpc", True, 16, 2000 * factor, 8.0),
                 row(frontend, "rest", False, 16, 1300.0, 10.0),
                 row(frontend, "rest", True, 16, 2600.0, 6.0)]
    notes = serving._notes(rows, {})
    assert "[grpcio] Batch 1, concurrency 1: gRPC (h2load) mean 1.00 ms" in notes
    assert "+0.50 ms mean, +0.60 ms p50" in notes
    assert "[asyncio] Batch 1, concurrency 16, grpc (h2load): 2100 req/s without batching, " \
           "3000 with (1.43x; p99 16.0 ms, 0 errors)" in notes
    assert "[grpcio] REST / gRPC throughput at that point: 1.30" in notes
    assert "[asyncio] REST / gRPC throughput at that point: 0.87" in notes


def test_history_requests_hold_exactly_the_asked_length():
    from benchmarks import serving_history
    features = {"user": np.array([b"u1", b"u2"], dtype=object),
                "recent": np.array([[b"", b"a", b"b"], [b"c", b"a", b""]], dtype=object)}
    assert serving_history.history_input(features) == "recent"
    five = serving_history.with_history(features, "recent", 5)
    assert five["user"].tolist() == [b"u1"]
    assert five["recent"].tolist() == [[b"a", b"b", b"c", b"a", b"a"]]
    assert serving_history.with_history(features, "recent", 0)["recent"].tolist() == [[b""]]
    with pytest.raises(Exception, match="hold no history"):
        serving_history.history_input({"user": features["user"]})
    with pytest.raises(Exception, match="empty histories"):
        serving_history.with_history({"recent": np.array([[b""]], dtype=object)}, "recent", 3)


def test_history_notes_compare_each_length_with_the_empty_history():
    from benchmarks import serving_history
    rows = [{"mode": mode, "batching": batching, "concurrency": concurrency,
             "history_length": length, "p50_ms": p50, "qps": qps}
            for mode, batching, concurrency, length, p50, qps in (
                ("in_process", False, 1, 0, 1.0, 900.0), ("in_process", False, 1, 200, 1.25, 780.0),
                ("grpc", True, 16, 0, 4.0, 2000.0), ("grpc", True, 16, 200, 6.0, 1500.0))]
    notes = serving_history.notes(rows)
    assert "in_process, concurrency 1, batching off: L=0: p50 1.00 ms (1.00x), 900 req/s; " \
           "L=200: p50 1.25 ms (1.25x), 780 req/s." in notes
    assert "grpc, concurrency 16, batching on: L=0: p50 4.00 ms (1.00x), 2000 req/s; " \
           "L=200: p50 6.00 ms (1.50x), 1500 req/s." in notes


def test_rest_bodies_carry_history_lists_as_text():
    import json
    request = serving.Request({"user": np.array([b"u1"], dtype=object),
                               "recent": np.array([[b"a", b""]], dtype=object),
                               "age": np.array([30])})
    assert json.loads(request.rest_body) == {"inputs": {"user": ["u1"], "recent": [["a", ""]],
                                                        "age": [30]}}
