"""TensorProto <-> numpy without TensorFlow's slower generic paths where it matters.

Numeric tensors travel as raw `tensor_content` bytes (numpy decodes and encodes them in
one call); strings as `string_val`. DESIGN §6: per-request Python work must stay minimal.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

_NUMPY = {types_pb2.DT_FLOAT: np.float32, types_pb2.DT_DOUBLE: np.float64,
          types_pb2.DT_INT32: np.int32, types_pb2.DT_INT64: np.int64}
_TYPES = {np.dtype(value): key for key, value in _NUMPY.items()}


def to_numpy(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """Decodes a request tensor."""
    shape = [dim.size for dim in proto.tensor_shape.dim]
    if proto.tensor_content and proto.dtype in _NUMPY:
        return np.frombuffer(proto.tensor_content, dtype=_NUMPY[proto.dtype]).reshape(shape)
    return tf.make_ndarray(proto)


def to_proto(value: np.ndarray) -> tensor_pb2.TensorProto:
    """Encodes a response tensor."""
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in value.shape])
    if value.dtype in _TYPES:
        return tensor_pb2.TensorProto(dtype=_TYPES[value.dtype], tensor_shape=shape,
                                      tensor_content=np.ascontiguousarray(value).tobytes())
    if value.dtype.kind in "OSU":
        proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape)
        proto.string_val.extend(item if isinstance(item, bytes) else str(item).encode()
                                for item in value.reshape(-1))
        return proto
    return tf.make_tensor_proto(value)
