"""Signature descriptions and request validation shared by the gRPC and REST front ends.

Every problem with a request raises RequestError with a gRPC status code (TF Serving's
choice: INVALID_ARGUMENT for bad inputs, NOT_FOUND for an unknown model or version) and a
message naming the input and what was expected.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2


class RequestError(Exception):
    """A request the server refuses; `code` is the gRPC status to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """dtype and shape of one signature input or output: None for unknown dimensions, and
    shape None when even the rank is unknown (e.g. ScaNN's outputs)."""

    dtype: tf.DType
    shape: Optional[tuple[Any, ...]]


def _shape(shape: tf.TensorShape) -> Optional[tuple[Any, ...]]:
    return tuple(shape.as_list()) if shape.rank is not None else None


@dataclasses.dataclass
class Signature:
    """A loaded signature: the callable and its input/output descriptions."""

    function: Any
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    proto_checks: tuple[tuple[str, int, Optional[tuple[Any, ...]]], ...] = ()

    def __post_init__(self) -> None:
        """(name, dtype enum, shape) per input, for validate_protos's fast path."""
        self.proto_checks = tuple((name, info.dtype.as_datatype_enum, info.shape)
                                  for name, info in sorted(self.inputs.items()))


def describe(function: Any) -> Signature:
    """Reads the input specs and output structure of a SavedModel signature function."""
    _, kwargs = function.structured_input_signature
    inputs = {name: TensorInfo(spec.dtype, _shape(spec.shape)) for name, spec in kwargs.items()}
    outputs = {name: TensorInfo(tensor.dtype, _shape(tensor.shape))
               for name, tensor in function.structured_outputs.items()}
    return Signature(function, inputs, outputs)


def _check_names(signature: Signature, names: set[str]) -> None:
    missing = sorted(set(signature.inputs) - names)
    unknown = sorted(names - set(signature.inputs))
    if missing or unknown:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input names must be {sorted(signature.inputs)}; missing {missing}, "
                           f"unknown {unknown}")


def _check_shapes(signature: Signature, shapes: Mapping[str, tuple[int, ...]],
                  max_batch: int) -> None:
    """Ranks, fixed dimensions, one batch size for all batched inputs, the batch limit."""
    batch = None
    for name, info in signature.inputs.items():
        shape = shapes[name]
        if info.shape is None:
            continue
        if len(shape) != len(info.shape):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input '{name}' must have rank {len(info.shape)} (shape "
                               f"{list(info.shape)}), got shape {list(shape)}")
        for size, expected in zip(shape, info.shape):
            if expected is not None and size != expected:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input '{name}' must have shape {list(info.shape)}, got "
                                   f"{list(shape)}")
        if shape:
            if batch is not None and shape[0] != batch:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"inputs must share the batch size; '{name}' has "
                                   f"{shape[0]}, others {batch}")
            batch = shape[0]
    if batch is not None and batch > max_batch:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"batch size {batch} exceeds the limit {max_batch} (--max_batch_size)")
    if batch == 0:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the batch is empty")


def _tensor_proto(value: np.ndarray, dtype: tf.DType) -> tensor_pb2.TensorProto:
    """A checked numpy input as the TensorProto a gRPC client would send: strings UTF-8
    encoded in string_val, numbers converted to `dtype` in tensor_content.

    Raises:
      RequestError: an integer outside `dtype`'s range.
    """
    proto = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    for size in value.shape:
        proto.tensor_shape.dim.add(size=size)
    if dtype == tf.string:
        proto.string_val.extend(item.encode() if isinstance(item, str) else item
                                for item in value.ravel().tolist())
        return proto
    if dtype.is_integer and value.size and value.dtype.kind in "iu":
        limits = np.iinfo(dtype.as_numpy_dtype)
        if value.min() < limits.min or value.max() > limits.max:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"values outside the range of {dtype.name}")
    proto.tensor_content = np.ascontiguousarray(value, dtype.as_numpy_dtype).tobytes()
    return proto


def _json_kind(value: np.ndarray) -> str:
    """What a REST client sent, in JSON's words: `strings such as 'thirty'`."""
    kind = {"O": "strings", "S": "strings", "U": "strings", "b": "booleans", "f": "numbers with "
            "a fraction", "i": "integers", "u": "integers"}.get(value.dtype.kind, str(value.dtype))
    first = value.ravel()[:1].tolist()
    return f"{kind} such as {first[0]!r}" if first else kind


def validate(signature: Signature, inputs: Mapping[str, np.ndarray], max_batch: int
             ) -> dict[str, tensor_pb2.TensorProto]:
    """Checks names, dtypes, ranks and the batch size of numpy inputs (REST); numbers are
    converted to the signature's dtype. Returns the inputs as TensorProtos, so REST
    requests run (and are merged) like gRPC ones.

    Raises:
      RequestError: INVALID_ARGUMENT naming the first problem.
    """
    _check_names(signature, set(inputs))
    values = {name: np.asarray(inputs[name]) for name in signature.inputs}
    for name, info in signature.inputs.items():
        value = values[name]
        wanted = ("strings" if info.dtype == tf.string else
                  "integers" if info.dtype.is_integer else "numbers")
        if (value.dtype.kind not in "OSU" if info.dtype == tf.string else
                value.dtype.kind not in "iuf" or (info.dtype.is_integer and value.dtype.kind == "f")):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input '{name}' must be {wanted} ({info.dtype.name}), got "
                               f"{_json_kind(value)}")
    _check_shapes(signature, {name: value.shape for name, value in values.items()}, max_batch)
    protos = {}
    for name, value in values.items():
        try:
            protos[name] = _tensor_proto(value, signature.inputs[name].dtype)
        except RequestError as e:
            raise RequestError(e.code, f"input '{name}' has {e}") from e
    return protos


def _protos_fit(signature: Signature, inputs: Mapping[str, tensor_pb2.TensorProto],
                max_batch: int) -> bool:
    """True when the request passes every check of validate_protos (one pass over the
    headers; this runs for every gRPC request). False sends it to the checks that name
    the problem."""
    if len(inputs) != len(signature.proto_checks):
        return False
    batch = None
    for name, dtype, shape in signature.proto_checks:
        proto = inputs.get(name)
        if proto is None or proto.dtype != dtype:
            return False
        if shape is None:
            continue
        dims = proto.tensor_shape.dim
        if len(dims) != len(shape):
            return False
        for dim, expected in zip(dims, shape):
            if expected is not None and dim.size != expected:
                return False
        if dims:
            if batch is None:
                batch = dims[0].size
            elif dims[0].size != batch:
                return False
    return batch is None or 0 < batch <= max_batch


def validate_protos(signature: Signature, inputs: Mapping[str, tensor_pb2.TensorProto],
                    max_batch: int) -> None:
    """Checks names, dtypes (exactly, as TF Serving does), ranks and the batch size of gRPC
    inputs from their headers, without decoding the values.

    Raises:
      RequestError: INVALID_ARGUMENT naming the first problem.
    """
    if _protos_fit(signature, inputs, max_batch):
        return
    _check_names(signature, set(inputs))
    for name, info in signature.inputs.items():
        if inputs[name].dtype != info.dtype.as_datatype_enum:
            got = types_pb2.DataType.Name(inputs[name].dtype)
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input '{name}' must be {info.dtype.name} "
                               f"({types_pb2.DataType.Name(info.dtype.as_datatype_enum)}), "
                               f"got {got}")
    _check_shapes(signature, {name: tuple(dim.size for dim in proto.tensor_shape.dim)
                              for name, proto in inputs.items()}, max_batch)
