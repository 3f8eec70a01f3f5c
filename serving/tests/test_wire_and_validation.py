"""Unit tests: PredictResponse wire bytes and header-only validation of gRPC inputs."""
import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2

from serving import signatures, wire
from serving.signatures import RequestError, Signature, TensorInfo


def test_varint_matches_the_protobuf_encoding():
    assert wire.varint(1) == b"\x01"
    assert wire.varint(127) == b"\x7f"
    assert wire.varint(300) == b"\xac\x02"
    assert wire.varint(1 << 21) == b"\x80\x80\x80\x01"


def test_predict_response_bytes_parse_as_the_official_message():
    ids = np.array([[b"i1", b"i2"], [b"i3", b"\xc3\xa9 | ,"]], dtype=object)
    scores = np.arange(4, dtype=np.float32).reshape(2, 2) * 1000  # > 127-byte payloads
    big = np.zeros((50, 3), np.float32)
    outputs = {"item_ids": tf.make_tensor_proto(ids).SerializeToString(),
               "scores": tf.make_tensor_proto(scores).SerializeToString(),
               "big": tf.make_tensor_proto(big).SerializeToString()}
    spec = model_pb2.ModelSpec(name="twotower", signature_name="serving_default")
    spec.version.value = 7
    response = predict_pb2.PredictResponse.FromString(wire.predict_response(
        outputs, wire.model_spec("twotower", 7, "serving_default")))
    assert response.model_spec == spec
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["item_ids"]), ids)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["scores"]), scores)
    assert tf.make_ndarray(response.outputs["big"]).shape == (50, 3)


@pytest.mark.parametrize("value", [
    np.array([[b"a", b"bb"], [b"", b"x" * 200], [b"c", b"d"]], dtype=object),  # 2-byte varint
    np.arange(18, dtype=np.float32).reshape(3, 2, 3),
    np.array([[1], [2], [3]], dtype=np.int64),
])
def test_split_rows_gives_each_request_its_rows(value):
    """tf.io.serialize_tensor's bytes cut per request equal each request's rows serialized."""
    serialized = tf.io.serialize_tensor(tf.constant(value)).numpy()
    is_string = value.dtype == object
    per_row = ([sum(1 + len(wire.varint(len(s))) + len(s) for s in row) for row in value]
               if is_string else [value[0].nbytes] * len(value))
    dtype = tf.as_dtype(tf.string if is_string else value.dtype).as_datatype_enum
    pieces = wire.split_rows(serialized, dtype, value.shape, np.array(per_row), [2, 0, 1],
                             is_string)
    for piece, rows in zip(pieces, (value[:2], value[2:2], value[2:])):
        parsed = tf.make_ndarray(tf.make_tensor_proto(tf.io.parse_tensor(
            piece, tf.string if is_string else value.dtype)))
        assert parsed.shape == rows.shape
        np.testing.assert_array_equal(parsed, rows)


def test_split_rows_refuses_bytes_it_cannot_cut():
    value = np.arange(6, dtype=np.float32).reshape(3, 2)
    serialized = tf.io.serialize_tensor(tf.constant(value)).numpy()
    dtype = tf.float32.as_datatype_enum
    with pytest.raises(ValueError, match="into rows"):
        wire.split_rows(serialized, dtype, value.shape, np.full(3, 8), [1, 1], False)
    with pytest.raises(ValueError, match="not laid out"):
        wire.split_rows(serialized, dtype, value.shape, np.full(3, 4), [1, 2], False)
    with pytest.raises(ValueError, match="not laid out"):  # a proto another writer ordered
        wire.split_rows(serialized[2:] + serialized[:2], dtype, value.shape, np.full(3, 8),
                        [1, 2], False)


SIGNATURE = Signature(None, {"user_id": TensorInfo(tf.string, (None,)),
                             "age": TensorInfo(tf.int64, (None,)),
                             "k": TensorInfo(tf.int32, ())}, {})


def _protos(**overrides):
    values = {"user_id": np.array([b"u1", b"u2"], dtype=object),
              "age": np.array([30, 40], np.int64), "k": np.int32(5), **overrides}
    return {name: tf.make_tensor_proto(value) for name, value in values.items()
            if value is not None}


def test_valid_protos_pass():
    signatures.validate_protos(SIGNATURE, _protos(), max_batch=2)


@pytest.mark.parametrize("overrides, max_batch, message", [
    ({"age": np.array([30, 40], np.int32)}, 8, "input 'age' must be int64 (DT_INT64), got DT_INT32"),
    ({"k": None}, 8, "missing ['k']"),
    ({"extra": np.array([1])}, 8, "unknown ['extra']"),
    ({"age": np.array([[30, 40]], np.int64)}, 8, "input 'age' must have rank 1"),
    ({"k": np.array([5], np.int32)}, 8, "input 'k' must have rank 0"),
    ({"age": np.array([30], np.int64)}, 8, "'age' has 1, others 2"),
    ({}, 1, "batch size 2 exceeds the limit 1"),
    ({"user_id": np.array([], dtype=object), "age": np.array([], np.int64)}, 8,
     "the batch is empty"),
])
def test_invalid_protos_name_the_problem(overrides, max_batch, message):
    with pytest.raises(RequestError) as error:
        signatures.validate_protos(SIGNATURE, _protos(**overrides), max_batch)
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in str(error.value)
