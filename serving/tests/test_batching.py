"""Server-side batching: the parameters file, merged calls, isolation of bad requests,
queue limits, and the server with batching on through gRPC and REST."""
import asyncio
import concurrent.futures
import json
import os
import threading
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from twotower.errors import TwoTowerError
from serving import batching, batching_params, metrics, proto_call, signatures
from serving import server as server_lib
from serving.batching_params import BatchingParameters
from serving.flags import GRPC_FRONTENDS, ServerOptions
from serving.signatures import RequestError
from serving.tests import fixtures


def test_parameters_file_in_tf_servings_format():
    parsed = batching_params.parse("""
        max_batch_size { value: 64 }
        batch_timeout_micros { value: 500 }
        max_enqueued_batches { value: 8 }
        num_batch_threads { value: 3 }
        thread_pool_name { value: "batch_threads" }
        allowed_batch_sizes: 16
        allowed_batch_sizes: 64
        pad_variable_length_inputs: true
    """)
    assert parsed == BatchingParameters(64, 500, 8, 3, (16, 64), True)
    omitted = batching_params.parse("max_batch_size { value: 8 }")
    assert (omitted.batch_timeout_micros, omitted.max_enqueued_batches) == (0, 10)
    assert omitted.num_batch_threads == os.cpu_count()


@pytest.mark.parametrize("text, message", [
    ("max_batch_size: 8", 'Expected "{"'),
    ("max_batch_sise { value: 8 }", "max_batch_sise"),
    ("max_batch_size { value: 0 }", "max_batch_size must be >= 1"),
    ("batch_timeout_micros { value: -1 }", "batch_timeout_micros must be >= 0"),
    ("max_batch_size { value: 32 } allowed_batch_sizes: 8 allowed_batch_sizes: 16",
     "must be increasing and end with max_batch_size (32)"),
])
def test_parameters_file_errors_name_the_problem(text, message):
    with pytest.raises(TwoTowerError) as error:
        batching_params.parse(text, "params.pbtxt")
    assert "params.pbtxt" in str(error.value) and message in str(error.value)


def test_batching_flags(tmp_path):
    assert batching_params.from_flags(False, None) is None
    assert batching_params.from_flags(True, None) == BatchingParameters()
    with pytest.raises(TwoTowerError, match="needs --enable_batching"):
        batching_params.from_flags(False, "params.pbtxt")
    with pytest.raises(TwoTowerError, match="No such file"):
        batching_params.from_flags(True, str(tmp_path / "missing.pbtxt"))


class _Histories(tf.Module):
    """[B, L] item strings + scalar k -> per row: count of non-empty items + k, and the
    row's first item; a stand-in for a history input of varying length."""

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.string),
                                  tf.TensorSpec([None], tf.int64), tf.TensorSpec([], tf.int32)])
    def serve(self, history, age, k):
        filled = tf.reduce_sum(tf.cast(history != "", tf.int64), axis=1)
        return {"count": filled + age + tf.cast(k, tf.int64), "first": history[:, 0]}


def _protos(**values):
    return {name: tf.make_tensor_proto(value) for name, value in values.items()}


def _history_signature(tmp_path):
    """The module saved and loaded as a SavedModel signature (keyword inputs, as served)."""
    module = _Histories()
    tf.saved_model.save(module, str(tmp_path / "histories"),
                        signatures={"serving_default": module.serve})
    loaded = tf.saved_model.load(str(tmp_path / "histories"))
    return signatures.describe(loaded.signatures["serving_default"]), loaded


@pytest.mark.parametrize("pad", [False, True])
def test_batched_runner_returns_each_request_its_own_rows(pad, tmp_path):
    signature, _ = _history_signature(tmp_path)
    single = proto_call.ProtoRunner(signature)
    runner = proto_call.BatchedProtoRunner(signature, pad_variable_length=pad)
    width = 2 if not pad else None
    requests = [_protos(history=np.array([["a", "b"]] * rows if width else
                                         [["a"] * (rows + 1)] * rows, dtype=object),
                        age=np.arange(rows, dtype=np.int64) * 10, k=np.int32(1))
                for rows in (1, 3, 2)]
    merged = runner(requests)
    assert len(merged) == 3
    for request, outputs in zip(requests, merged):
        alone = single(request)
        for name in ("count", "first"):
            np.testing.assert_array_equal(
                tf.make_ndarray(tf.make_tensor_proto(tf.io.parse_tensor(
                    outputs[name], signature.outputs[name].dtype))),
                tf.make_ndarray(tf.make_tensor_proto(tf.io.parse_tensor(
                    alone[name], signature.outputs[name].dtype))))


def test_flat_call_matches_the_public_call_and_raises_the_same_errors():
    table = tf.Variable([10.0, 20.0, 30.0])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def lookup(ids):
        with tf.control_dependencies([tf.debugging.assert_non_negative(
                ids, message="ids must be >= 0")]):  # else the gather may fail first
            ids = tf.identity(ids)
        return {"values": {"gathered": tf.gather(table, ids), "count": tf.size(ids)},
                "first": ids[:1]}
    flat = proto_call.FlatCall(lookup)
    ids = tf.constant([2, 0])
    expected, got = lookup(ids), flat(ids)
    assert tf.nest.map_structure(lambda a, b: a.numpy().tolist() == b.numpy().tolist(),
                                 expected, got) == {"values": {"gathered": True, "count": True},
                                                    "first": True}
    table.assign([1.0, 2.0, 3.0])  # captures are read at call time
    assert flat(ids)["values"]["gathered"].numpy().tolist() == [3.0, 1.0]
    with pytest.raises(tf.errors.InvalidArgumentError, match="ids must be >= 0"):
        flat(tf.constant([-1]))


def _typed(values, dtype, field):
    """A TensorProto with its values in the typed field `field` (as non-numpy clients
    write them), shape [len(values)] unless `shape` says otherwise."""
    proto = tf.make_tensor_proto([], dtype, shape=[0])
    proto.tensor_shape.dim[0].size = len(values)
    getattr(proto, field).extend(values)
    return proto


@pytest.mark.parametrize("protos, dtype, expected", [
    ([tf.make_tensor_proto(np.array([1, 2], np.int64)), tf.make_tensor_proto(np.array([3]))],
     tf.int64, [1, 2, 3]),  # tensor_content blobs joined
    ([_typed([b"a"], tf.string, "string_val"), _typed([b"b", b"c"], tf.string, "string_val")],
     tf.string, [b"a", b"b", b"c"]),  # typed fields appended
    ([_typed([7], tf.int64, "int64_val"), tf.make_tensor_proto(np.array([8, 9], np.int64))],
     tf.int64, [7, 8, 9]),  # mixed representations: decoded
])
def test_merge_concatenates_requests_rows(protos, dtype, expected):
    merged = tf.io.parse_tensor(proto_call.merge(protos, dtype, pad=False), dtype)
    assert merged.numpy().tolist() == expected


def test_merge_follows_tensorflows_rules_for_short_fields_and_pads_when_asked():
    short = _typed([5], tf.int64, "int64_val")  # shape [3], one value: TF repeats the last
    short.tensor_shape.dim[0].size = 3
    merged = proto_call.merge([short, tf.make_tensor_proto(np.array([1], np.int64))],
                              tf.int64, pad=False)
    assert tf.io.parse_tensor(merged, tf.int64).numpy().tolist() == [5, 5, 5, 1]
    histories = [tf.make_tensor_proto(np.array([["a", "b"]], dtype=object)),
                 tf.make_tensor_proto(np.array([["c", "d", "e"]], dtype=object))]
    padded = tf.io.parse_tensor(proto_call.merge(histories, tf.string, pad=True), tf.string)
    assert padded.numpy().tolist() == [[b"a", b"b", b""], [b"c", b"d", b"e"]]
    with pytest.raises(ValueError):
        proto_call.merge(histories, tf.string, pad=False)


def test_merge_key_separates_scalars_and_unpadded_lengths(tmp_path):
    signature, _ = _history_signature(tmp_path)
    short = _protos(history=np.array([["a", "b"]], dtype=object), age=np.array([1]),
                    k=np.int32(1))
    long = _protos(history=np.array([["a", "b", "c"]], dtype=object), age=np.array([1]),
                   k=np.int32(1))
    other_k = _protos(history=np.array([["a", "b"]], dtype=object), age=np.array([1]),
                      k=np.int32(2))
    key = batching.merge_key
    assert key(signature, short, False) != key(signature, long, False)
    assert key(signature, short, True) == key(signature, long, True)
    assert key(signature, short, True) != key(signature, other_k, True)
    assert batching.rows(signature, long) == 1


def _run_batcher(params, requests, run_batch, run_one):
    """Submits every request at once on a fresh loop; (outputs or exception) per request."""
    async def main():
        batcher = batching.Batcher(params, metrics.Registry(), asyncio.get_running_loop())
        calls = [batcher.run(("m", 1, "s", ()), "m", inputs, rows, run_batch, run_one)
                 for inputs, rows in requests]
        results = await asyncio.gather(*calls, return_exceptions=True)
        batcher.stop()
        return results
    return asyncio.run(main())


def test_batcher_merges_and_isolates_a_failing_request():
    calls = []

    def run_batch(inputs):
        calls.append(len(inputs))
        if any(item == "bad" for item in inputs):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "merged call failed")
        return [{"out": item.encode()} for item in inputs]

    def run_one(item):
        calls.append(1)
        if item == "bad":
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "bad content")
        return {"out": item.encode()}

    params = BatchingParameters(max_batch_size=8, batch_timeout_micros=200_000,
                                num_batch_threads=1)
    good = _run_batcher(params, [(f"r{i}", 1) for i in range(5)], run_batch, run_one)
    assert good == [{"out": f"r{i}".encode()} for i in range(5)] and calls == [5]
    calls.clear()
    mixed = _run_batcher(params, [("a", 1), ("bad", 1), ("c", 1)], run_batch, run_one)
    assert mixed[0] == {"out": b"a"} and mixed[2] == {"out": b"c"}
    assert isinstance(mixed[1], RequestError) and str(mixed[1]) == "bad content"
    assert calls == [3, 1, 1, 1]


def test_batcher_respects_max_batch_size_and_runs_oversized_requests_alone():
    sizes = []

    def run_batch(inputs):
        sizes.append([rows for rows in inputs])
        return [{} for _ in inputs]

    def run_one(rows):
        sizes.append([rows])
        return {}
    params = BatchingParameters(max_batch_size=4, batch_timeout_micros=100_000,
                                num_batch_threads=1)
    _run_batcher(params, [(rows, rows) for rows in (2, 2, 3, 9, 1)], run_batch, run_one)
    assert sizes == [[2, 2], [3], [9], [1]]


def test_full_queue_answers_unavailable_at_once():
    params = BatchingParameters(max_batch_size=1, max_enqueued_batches=2, num_batch_threads=1)
    release = threading.Event()

    def run_one(item):
        release.wait(10)
        return {"out": str(item).encode()}

    async def main():
        registry = metrics.Registry()
        batcher = batching.Batcher(params, registry, asyncio.get_running_loop())
        key = ("m", 1, "s", ())
        accepted = []
        for i in range(3):  # the first runs (and blocks), two wait: 2 batches of 1 row
            accepted.append(asyncio.ensure_future(batcher.run(key, "m", i, 1, None, run_one)))
            await asyncio.sleep(0.05)
        with pytest.raises(RequestError) as error:
            await batcher.run(key, "m", 3, 1, None, run_one)
        assert error.value.code == grpc.StatusCode.UNAVAILABLE
        assert "max_enqueued_batches" in str(error.value)
        release.set()
        assert await asyncio.gather(*accepted) == [{"out": b"0"}, {"out": b"1"}, {"out": b"2"}]
        assert 'twotower_batch_queue_full_total{model="m"} 1' in registry.render(dict)
        batcher.stop()
    asyncio.run(main())


def test_a_cancelled_caller_takes_its_request_out_of_the_queue():
    params = BatchingParameters(max_batch_size=1, max_enqueued_batches=3, num_batch_threads=1)
    release, ran = threading.Event(), []

    def run_one(item):
        ran.append(item)
        release.wait(10)
        return {"out": str(item).encode()}

    async def main():
        registry = metrics.Registry()
        batcher = batching.Batcher(params, registry, asyncio.get_running_loop())
        key = ("m", 1, "s", ())
        calls = []
        for i in range(3):  # 0 runs (and blocks); 1 and 2 wait in the queue
            calls.append(asyncio.ensure_future(batcher.run(key, "m", i, 1, None, run_one)))
            await asyncio.sleep(0.05)
        calls[1].cancel()
        await asyncio.sleep(0.05)
        # Its slot is free again: a queue of 3 batches takes two more.
        later = [asyncio.ensure_future(batcher.run(key, "m", i, 1, None, run_one))
                 for i in (3, 4)]
        await asyncio.sleep(0.05)
        release.set()
        assert await asyncio.gather(calls[0], calls[2], *later) == [
            {"out": str(i).encode()} for i in (0, 2, 3, 4)]
        assert ran == [0, 2, 3, 4]  # the cancelled request never reached the model
        assert 'twotower_batch_cancelled_total{model="m"} 1' in registry.render(dict)
        batcher.stop()
    asyncio.run(main())


@pytest.fixture(name="batched_server", params=GRPC_FRONTENDS)
def fixture_batched_server(request, tmp_path):
    base = str(tmp_path / "models" / "twotower")
    fixtures.write_version(base, 1, seed=1, root=str(tmp_path))
    server = server_lib.ModelServer(ServerOptions(
        models={"twotower": base}, port=0, rest_api_port=0, poll_seconds=0.2,
        batching=BatchingParameters(max_batch_size=16, batch_timeout_micros=20_000,
                                    num_batch_threads=1), grpc_frontend=request.param))
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield server, channel, base
    channel.close()
    server.stop()


def _request(users, k=None, **overrides):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "twotower"
    request.model_spec.signature_name = "serving_default" if k is None else "serving_top_k"
    values = {**fixtures.query(users), **overrides}
    if k is not None:
        values["k"] = np.int32(k)
    for name, value in values.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


@pytest.mark.e2e
def test_concurrent_requests_are_merged_and_answered_with_their_own_rows(batched_server):
    server, channel, base = batched_server
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    cases = [([f"u{i}", f"v{i}"][: 1 + i % 2], None if i % 3 else 2 + i % 4) for i in range(24)]
    bad = _request(["u1"])
    bad.inputs["user_id"].tensor_shape.dim[0].size = 2  # header says 2 rows, content has 1
    local = tf.saved_model.load(os.path.join(base, "1")).signatures

    def send(case):
        if case == "bad":
            return stub.Predict.future(bad, 10)
        request = _request(*case)
        if len(case[0]) == 2:  # merged with unfiltered requests, filtered after the split
            request.output_filter.append("item_ids")
        return stub.Predict.future(request, 10)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = list(pool.map(send, cases[:12] + ["bad"] + cases[12:]))
    answers = [future.exception() or future.result() for future in futures]
    failed = answers.pop(12)
    assert failed.code() == grpc.StatusCode.INVALID_ARGUMENT
    for (users, k), response in zip(cases, answers):
        arguments = {name: tf.constant(value) for name, value in fixtures.query(users).items()}
        name = "serving_default"
        if k is not None:
            arguments["k"], name = tf.constant(k, tf.int32), "serving_top_k"
        expected = local[name](**arguments)
        np.testing.assert_array_equal(tf.make_ndarray(response.outputs["item_ids"]),
                                      expected["item_ids"].numpy())
        assert set(response.outputs) == ({"item_ids"} if len(users) == 2
                                         else {"item_ids", "scores"})
    with urllib.request.urlopen(f"http://127.0.0.1:{server.rest_port}/metrics") as reply:
        text = reply.read().decode()
    calls = int(next(line.split()[-1] for line in text.splitlines()
                     if line.startswith('twotower_batch_rows_count{model="twotower"}')))
    assert calls < len(cases), text
    assert 'twotower_batch_queue_ms_bucket{model="twotower",le="+Inf"}' in text


@pytest.mark.e2e
@pytest.mark.parametrize("batched_server", ["grpcio"], indirect=True)
def test_rest_requests_run_through_the_batcher_as_grpc_ones_do(batched_server):
    server, channel, _ = batched_server
    row = {"user_id": "u1", "age": 30, "gender": "F", "occupation": "writer", "zip": "12345"}
    body = json.dumps({"instances": [row, dict(row, user_id="u2")]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}"
                                     "/v1/models/twotower:predict", data=body)
    with urllib.request.urlopen(request, timeout=10) as reply:
        predictions = json.loads(reply.read())["predictions"]
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
        _request(["u1", "u2"]), 10)
    assert [p["item_ids"] for p in predictions] == \
        tf.make_ndarray(response.outputs["item_ids"]).astype(str).tolist()
    with urllib.request.urlopen(f"http://127.0.0.1:{server.rest_port}/metrics") as reply:
        text = reply.read().decode()
    assert 'twotower_batch_rows_sum{model="twotower"} 4.000' in text  # both calls' rows


def test_cancelled_requests_are_counted_apart_from_server_errors():
    registry = metrics.Registry()
    for error in (asyncio.CancelledError, BrokenPipeError, ValueError):
        with pytest.raises(error):
            with registry.timer("grpc", "Predict", "m"):
                raise error()
    text = registry.render(dict)
    assert 'code="CANCELLED"} 2' in text and 'code="INTERNAL"} 1' in text
