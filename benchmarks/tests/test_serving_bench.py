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
