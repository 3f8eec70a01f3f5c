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
    response = predict_pb2.PredictResponse.FromString(wire.predict_response(outputs, spec))
    assert response.model_spec == spec
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["item_ids"]), ids)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["scores"]), scores)
    assert tf.make_ndarray(response.outputs["big"]).shape == (50, 3)


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
