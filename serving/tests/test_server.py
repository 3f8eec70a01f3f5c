"""The model server through the official tensorflow-serving-api gRPC stubs and plain HTTP."""
import asyncio
import concurrent.futures
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request

import grpc
import hpack
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from serving import grpc_service
from serving import http2_wire as wire
from serving import metrics as metrics_lib
from serving.flags import GRPC_FRONTENDS
from serving.tests import fixtures, raw_h2

pytestmark = pytest.mark.e2e
PREDICT = "/tensorflow.serving.PredictionService/Predict"


def _request(users, version=None, model="twotower", **overrides):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    if version is not None:
        request.model_spec.version.value = version
    for name, value in {**fixtures.query(users), **overrides}.items():
        if value is not None:
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def _predict(channel, request, timeout=10):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout)


def test_predict_matches_the_saved_model_in_process(served):
    server, channel, base, _ = served
    response = _predict(channel, _request(["u1", "u2", "u3"]))
    ids = tf.make_ndarray(response.outputs["item_ids"])
    assert ids.shape == (3, fixtures.K) and response.model_spec.version.value == 1
    local = tf.saved_model.load(os.path.join(base, "1")).signatures["serving_default"](
        **{k: tf.constant(v) for k, v in fixtures.query(["u1", "u2", "u3"]).items()})
    np.testing.assert_array_equal(ids, local["item_ids"].numpy())
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["scores"]),
                               local["scores"].numpy(), rtol=1e-6)


def test_metadata_status_and_version_pinning(served):
    server, channel, _, _ = served
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "twotower"
    metadata = stub.GetModelMetadata(request, 10)
    definitions = get_model_metadata_pb2.SignatureDefMap()
    metadata.metadata["signature_def"].Unpack(definitions)
    assert set(definitions.signature_def) == {"serving_default", "serving_top_k",
                                              "query_embedding"}
    assert set(definitions.signature_def["serving_default"].inputs) == {
        "user_id", "age", "gender", "occupation", "zip"}
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "twotower"
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request, 10)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    assert _predict(channel, _request(["u1"], version=1)).model_spec.version.value == 1
    with pytest.raises(grpc.RpcError) as error:
        _predict(channel, _request(["u1"], version=7))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("overrides, message", [
    ({"age": np.array(["thirty"], dtype=object)}, "input 'age' must be int64"),
    ({"zip": None}, "missing ['zip']"),
    ({"user_id": np.array([["u1"]], dtype=object)}, "input 'user_id' must have rank 1"),
])
def test_malformed_inputs_are_invalid_argument(served, overrides, message):
    _, channel, _, _ = served
    with pytest.raises(grpc.RpcError) as error:
        _predict(channel, _request(["u1"], **overrides))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


def test_oversized_batch_and_unknown_model(served):
    _, channel, _, _ = served
    with pytest.raises(grpc.RpcError) as error:
        _predict(channel, _request([f"u{i}" for i in range(9)]))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "exceeds the limit 8" in error.value.details()
    with pytest.raises(grpc.RpcError) as error:
        _predict(channel, _request(["u1"], model="nope"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def _wait_for(predicate, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_corrupt_new_version_keeps_the_old_one_serving(served):
    server, channel, base, _ = served
    broken = os.path.join(base, "2")
    os.makedirs(os.path.join(broken, "variables"))
    with open(os.path.join(broken, "saved_model.pb"), "wb") as f:
        f.write(b"not a protobuf")
    assert _wait_for(lambda: any(s.version == 2 for s in server.manager.status("twotower")))
    assert _wait_for(lambda: server.manager.status("twotower", 2)[0].error)
    assert _predict(channel, _request(["u1"])).model_spec.version.value == 1
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "twotower"
    status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, 10)
    failed = next(s for s in status.model_version_status if s.version == 2)
    assert failed.status.error_message and failed.state == \
        get_model_status_pb2.ModelVersionStatus.END


def test_hot_swap_under_concurrent_requests_has_no_failures(served):
    server, channel, base, tmp_path = served
    failures, versions_seen, stop = [], set(), threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                versions_seen.add(_predict(channel, _request(["u1", "u2"])).model_spec.version.value)
            except grpc.RpcError as e:  # recorded, asserted below
                failures.append(e.code())
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(hammer)
        time.sleep(0.5)
        fixtures.write_version(base, 3, seed=3, root=str(tmp_path))
        assert _wait_for(lambda: server.manager.get("twotower").version == 3)
        time.sleep(0.5)
        stop.set()
    assert failures == []
    assert versions_seen == {1, 3}


def test_query_client_types_features_from_metadata(served):
    from serving import client  # pylint: disable=import-outside-toplevel
    server, channel, _, _ = served
    result = client.query("127.0.0.1", server.grpc_port, "twotower",
                          {"user_id": "u1", "age": "30", "gender": "F"})
    expected = _predict(channel, _request(["u1"]))
    assert result.version == 1
    assert result.item_ids == [i.decode() for i in tf.make_ndarray(expected.outputs["item_ids"])[0]]
    with pytest.raises(client.TwoTowerError, match="age='x' must be an integer"):
        client.query("127.0.0.1", server.grpc_port, "twotower", {"age": "x"})
    with pytest.raises(client.TwoTowerError, match="NOT_FOUND"):
        client.query("127.0.0.1", server.grpc_port, "nope", {})


def test_top_k_signature_and_k_too_large(served):
    _, channel, _, _ = served
    request = _request(["u1"])
    request.model_spec.signature_name = "serving_top_k"
    request.inputs["k"].CopyFrom(tf.make_tensor_proto(7, dtype=tf.int32))
    assert tf.make_ndarray(_predict(channel, request).outputs["item_ids"]).shape == (1, 7)
    for k in (21, 0):
        request.inputs["k"].CopyFrom(tf.make_tensor_proto(k, dtype=tf.int32))
        with pytest.raises(grpc.RpcError) as error:
            _predict(channel, request)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # One plain sentence, not TF's graph execution report.
        assert error.value.details() == "k must be between 1 and 20 (index.max_k)"


def test_content_not_matching_the_header_and_output_filter(served):
    _, channel, _, _ = served
    request = _request(["u1", "u2"])
    request.inputs["age"].tensor_shape.dim[0].size = 3  # header says 3 rows, content has 2
    request.inputs["age"].tensor_content = np.array([30, 40], np.int64).tobytes()
    request.inputs["user_id"].tensor_shape.dim[0].size = 3
    for name in ("gender", "occupation", "zip"):
        request.inputs[name].tensor_shape.dim[0].size = 3
    with pytest.raises(grpc.RpcError) as error:
        _predict(channel, request)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    request = _request(["u1"])
    request.output_filter.append("scores")
    assert set(_predict(channel, request).outputs) == {"scores"}
    request.output_filter.append("nope")
    with pytest.raises(grpc.RpcError) as error:
        _predict(channel, request)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown outputs ['nope']" in error.value.details()


@pytest.mark.parametrize("served", ["asyncio"], indirect=True)
def test_expired_deadlines_fail_alone(served):
    """A call whose deadline has passed when the server would start it answers
    DEADLINE_EXCEEDED; the next call on the same connection is served. Raw frames, since a
    gRPC client enforces short deadlines itself, racing the server's answer. The asyncio
    front end only: grpc core (the grpcio one) keeps deadlines in whole milliseconds, so a
    1 ns timeout is still running when a fast handler starts;
    test_guard_answers_an_expired_call_without_running_it covers the check it makes."""
    server = served[0]
    encoder, decoder = hpack.Encoder(), hpack.Decoder()
    message = _request(["u1"]).SerializeToString()
    expired = raw_h2.call_frames(encoder, 1, PREDICT, message, [("grpc-timeout", "1n")])
    with raw_h2.connect(server.grpc_port, wire.frame(wire.SETTINGS, 0, 0), expired) as sock:
        frames = raw_h2.read_frames(sock, raw_h2.ended(1))
        sock.sendall(raw_h2.call_frames(encoder, 3, PREDICT, message))
        frames += raw_h2.read_frames(sock, raw_h2.ended(3))
    status = {}
    for kind, _, stream, payload in frames:
        if kind == wire.HEADERS:
            status.setdefault(stream, {}).update(decoder.decode(payload, raw=True))
    assert (status[1][b"grpc-status"], status[3][b"grpc-status"]) == (b"4", b"0")
    response = predict_pb2.PredictResponse.FromString(b"".join(
        payload for kind, _, stream, payload in frames if kind == wire.DATA and stream == 3)[5:])
    assert response.model_spec.version.value == 1


class _ExpiredContext:
    """A grpc.aio ServicerContext whose deadline has passed."""

    def __init__(self):
        self.aborted = None

    def time_remaining(self):
        return 0.0

    async def abort(self, code, details):
        self.aborted = (code, details)
        raise grpc.RpcError(details)


def test_guard_answers_an_expired_call_without_running_it():
    guard = grpc_service._Guard(metrics_lib.Registry())  # pylint: disable=protected-access
    context, ran = _ExpiredContext(), []

    async def body():
        ran.append(1)

    with pytest.raises(grpc.RpcError):
        asyncio.run(guard.run(context, "Predict", "twotower", body))
    assert context.aborted == (grpc.StatusCode.DEADLINE_EXCEEDED,
                               "deadline exceeded before start") and not ran


@pytest.mark.parametrize("frontend", GRPC_FRONTENDS)
def test_tls_on_both_ports(tmp_path, frontend):
    import ssl  # pylint: disable=import-outside-toplevel
    server, cert_file = fixtures.tls_server(tmp_path, frontend)
    try:
        with open(cert_file, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        with grpc.secure_channel(f"localhost:{server.grpc_port}", credentials) as channel:
            assert _predict(channel, _request(["u1"])).model_spec.version.value == 1
        with grpc.insecure_channel(f"localhost:{server.grpc_port}") as channel:
            with pytest.raises(grpc.RpcError) as error:
                _predict(channel, _request(["u1"]), timeout=5)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        context = ssl.create_default_context(cafile=cert_file)
        url = f"https://localhost:{server.rest_port}/v1/models/twotower"
        with urllib.request.urlopen(url, timeout=10, context=context) as reply:
            assert json.loads(reply.read())["model_version_status"][0]["state"] == "AVAILABLE"
    finally:
        server.stop()


def test_faulty_versions_and_a_deleted_model_dir_keep_the_last_good_one(served):
    server, channel, base, tmp_path = served
    # A version whose variables are missing: saved_model.pb is fine, the weights are gone.
    fixtures.write_version(str(tmp_path / "scratch"), 2, seed=2, root=str(tmp_path))
    missing = tmp_path / "scratch" / "2"
    for name in os.listdir(missing / "variables"):
        os.remove(missing / "variables" / name)
    os.rename(missing, os.path.join(base, "2"))
    assert _wait_for(lambda: any(s.version == 2 and s.error
                                 for s in server.manager.status("twotower")))
    assert _predict(channel, _request(["u1"])).model_spec.version.value == 1
    # The whole model directory deleted while serving: the loaded version keeps answering.
    shutil.rmtree(base)
    time.sleep(0.6)  # three polls
    assert _predict(channel, _request(["u1"])).model_spec.version.value == 1
    # It comes back: the next complete version is loaded.
    fixtures.write_version(base, 4, seed=4, root=str(tmp_path))
    assert _wait_for(lambda: server.manager.get("twotower").version == 4)


def test_malformed_requests_mixed_with_good_ones_fail_alone(served):
    _, channel, _, _ = served
    bad = [_request(["u1"], age=np.array(["x"], dtype=object)), _request(["u1"], zip=None),
           _request([f"u{i}" for i in range(9)]), _request(["u1"], model="nope")]
    bad[0].inputs["user_id"].tensor_content = b"\x00" * 7  # junk bytes too
    good = _request(["u1", "u2"])
    expected = tf.make_ndarray(_predict(channel, good).outputs["item_ids"])

    def send(i):
        try:
            response = _predict(channel, good if i % 3 == 0 else bad[i % 4])
            return "ok", tf.make_ndarray(response.outputs["item_ids"])
        except grpc.RpcError as e:
            return e.code(), None
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(300)))
    for i, (code, ids) in enumerate(results):
        if i % 3 == 0:
            assert code == "ok"
            np.testing.assert_array_equal(ids, expected)
        else:
            assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), code
    assert _predict(channel, good).model_spec.version.value == 1
