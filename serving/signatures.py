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


def describe(function: Any) -> Signature:
    """Reads the input specs and output structure of a SavedModel signature function."""
    _, kwargs = function.structured_input_signature
    inputs = {name: TensorInfo(spec.dtype, _shape(spec.shape)) for name, spec in kwargs.items()}
    outputs = {name: TensorInfo(tensor.dtype, _shape(tensor.shape))
               for name, tensor in function.structured_outputs.items()}
    return Signature(function, inputs, outputs)


def validate(signature: Signature, inputs: Mapping[str, np.ndarray], max_batch: int
             ) -> dict[str, tf.Tensor]:
    """Checks names, dtypes, ranks and the batch size; returns tensors to call with.

    Raises:
      RequestError: INVALID_ARGUMENT naming the first problem.
    """
    missing = sorted(set(signature.inputs) - set(inputs))
    unknown = sorted(set(inputs) - set(signature.inputs))
    if missing or unknown:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"input names must be {sorted(signature.inputs)}; missing {missing}, "
                           f"unknown {unknown}")
    tensors, batch = {}, None
    for name, info in signature.inputs.items():
        value = np.asarray(inputs[name])
        if info.dtype == tf.string:
            if value.dtype.kind not in "OSU":
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input '{name}' must be strings (DT_STRING), got {value.dtype}")
        elif value.dtype.kind not in "iuf" or (info.dtype.is_integer and value.dtype.kind == "f"):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input '{name}' must be {info.dtype.name}, got {value.dtype}")
        if info.shape is None:
            tensors[name] = tf.constant(value, dtype=info.dtype)
            continue
        if value.ndim != len(info.shape):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"input '{name}' must have rank {len(info.shape)} (shape "
                               f"{list(info.shape)}), got shape {list(value.shape)}")
        for size, expected in zip(value.shape, info.shape):
            if expected is not None and size != expected:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"input '{name}' must have shape {list(info.shape)}, got "
                                   f"{list(value.shape)}")
        if value.ndim:
            if batch is not None and value.shape[0] != batch:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"inputs must share the batch size; '{name}' has "
                                   f"{value.shape[0]}, others {batch}")
            batch = value.shape[0]
        tensors[name] = tf.constant(value, dtype=info.dtype)
    if batch is not None and batch > max_batch:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"batch size {batch} exceeds the limit {max_batch} (--max_batch_size)")
    if batch == 0:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the batch is empty")
    return tensors
