"""Runs a signature on TensorProtos in one TensorFlow call.

The gRPC front end receives inputs as TensorProtos and must answer with TensorProtos.
Decoding them into numpy, building eager tensors one by one and encoding the outputs
element by element in Python cost more than the model itself (measured in
reports/serving.json's notes). Instead each signature is wrapped in a tf.function that
takes the serialized input protos, parses them (tf.io.parse_tensor), calls the signature
and serializes the outputs (tf.io.serialize_tensor): one Python -> C++ transition per
request, and the output bytes go onto the wire unchanged (serving/wire.py).
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.python.eager import context

from serving import wire
from serving.signatures import Signature, TensorInfo


class FlatCall:
    """A traced tf.function called the way tf.function calls itself once its arguments are
    bound: flat input tensors plus the function's captures straight to the runtime, then
    the outputs packed into their structure. For these small calls the public path's
    argument binding, tape checks and output packing cost ~30% of the call (310 -> 220 us
    per single request here), paid by every request.

    Uses TF's private `_inference_function`; serving/tests/test_batching.py compares its outputs
    with the public call's, so a TF upgrade that changes it fails loudly.
    """

    def __init__(self, function: Any) -> None:
        """Args:
          function: A tf.function with an input_signature.
        """
        self._concrete = function.get_concrete_function()
        self._name = self._concrete._inference_function.name  # pylint: disable=protected-access
        self._structure = self._concrete.structured_outputs
        self._outputs = len(tf.nest.flatten(self._structure))
        self._context = context.context()

    def __call__(self, *tensors: tf.Tensor) -> Any:
        """The function's structured outputs for these input tensors.

        Raises:
          tf.errors.OpError: whatever the function raises.
        """
        outputs = self._context.call_function(
            self._name, [*tensors, *self._concrete.captured_inputs], self._outputs)
        return tf.nest.pack_sequence_as(self._structure, outputs)


def _parse(serialized: tf.Tensor, names: list[str], infos: list[TensorInfo]
           ) -> dict[str, tf.Tensor]:
    """The signature's inputs from `serialized` [len(names)], one TensorProto each (passed
    as one tensor: converting each to its own eager tensor cost more than parsing them)."""
    inputs = {}
    for index, (name, info) in enumerate(zip(names, infos)):
        value = tf.io.parse_tensor(serialized[index], info.dtype)
        inputs[name] = value if info.shape is None else tf.ensure_shape(value, info.shape)
    return inputs


class ProtoRunner:
    """One signature, called with serialized TensorProtos, returning serialized outputs."""

    def __init__(self, signature: Signature) -> None:
        """Traces the wrapper now, so the first request does not pay for it.

        Args:
          signature: A loaded signature; the proto dtypes are checked against
            `signature.inputs` before `__call__` (signatures.validate_protos).
        """
        self.names = sorted(signature.inputs)
        infos = [signature.inputs[name] for name in self.names]
        function = signature.function

        @tf.function(input_signature=[tf.TensorSpec([len(self.names)], tf.string)])
        def run(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
            return {key: tf.io.serialize_tensor(value) for key, value
                    in function(**_parse(serialized, self.names, infos)).items()}

        self._run = FlatCall(run)

    def __call__(self, inputs: Mapping[str, tensor_pb2.TensorProto]) -> dict[str, bytes]:
        """Output name -> serialized TensorProto.

        Raises:
          tf.errors.InvalidArgumentError: a proto whose content does not match its dtype and
            shape, or an error raised by the model (e.g. k above the index's max_k).
        """
        outputs = self._run(tf.constant([inputs[name].SerializeToString()
                                         for name in self.names]))
        return {key: value.numpy() for key, value in outputs.items()}


# The typed value field a client fills per dtype when it does not use tensor_content.
_VALUE_FIELDS = {tf.string: "string_val", tf.int64: "int64_val", tf.int32: "int_val",
                 tf.float32: "float_val", tf.float64: "double_val", tf.bool: "bool_val"}


def _merge_fields(protos: list[tensor_pb2.TensorProto], dtype: tf.DType,
                  shape: list[int], rows: list[int]) -> Optional[bytes]:
    """The protos' values in one serialized TensorProto of `shape`, without decoding them:
    their tensor_content blobs joined, or their typed value fields appended. None when
    they do not all use one representation with exactly their shape's element count."""
    merged = tensor_pb2.TensorProto(dtype=dtype.as_datatype_enum)
    for size in shape:
        merged.tensor_shape.dim.add(size=size)
    per_row = math.prod(shape[1:])
    if all(proto.tensor_content for proto in protos):
        if any(len(proto.tensor_content) != count * per_row * dtype.size
               for proto, count in zip(protos, rows)):
            return None
        merged.tensor_content = b"".join(proto.tensor_content for proto in protos)
        return merged.SerializeToString()
    name = _VALUE_FIELDS.get(dtype)
    if name is None:
        return None
    values = getattr(merged, name)
    for proto, count in zip(protos, rows):
        own = getattr(proto, name)
        if proto.tensor_content or len(own) != count * per_row:
            return None
        values.extend(own)
    return merged.SerializeToString()


def _padded(parts: list[np.ndarray], filler: Any) -> list[np.ndarray]:
    """Every part padded at the end of its non-batch dimensions to the largest's."""
    longest = np.max([part.shape for part in parts], axis=0)
    return [np.pad(part, [(0, 0)] + [(0, int(size - have)) for size, have
                                     in zip(longest[1:], part.shape[1:])],
                   constant_values=filler) for part in parts]


def merge(protos: list[tensor_pb2.TensorProto], dtype: tf.DType, pad: bool) -> bytes:
    """One serialized TensorProto with every proto's rows, in order.

    Protos that share their non-batch dimensions and value representation are merged on
    the wire (`_merge_fields`); others (padding, a short typed field that repeats its last
    value, mixed representations) are decoded with tf.make_ndarray, padded with "" or 0
    when `pad`, and concatenated.

    Raises:
      ValueError: the shapes differ and `pad` is false, or a proto's values do not fit its
        shape.
    """
    shapes = [[dim.size for dim in proto.tensor_shape.dim] for proto in protos]
    rows = [shape[0] for shape in shapes]
    if all(shape[1:] == shapes[0][1:] for shape in shapes):
        fast = _merge_fields(protos, dtype, [sum(rows), *shapes[0][1:]], rows)
        if fast is not None:
            return fast
    parts = [tf.make_ndarray(proto) for proto in protos]
    if pad:
        parts = _padded(parts, b"" if dtype == tf.string else 0)
    return tf.make_tensor_proto(np.concatenate(parts), dtype).SerializeToString()


def _row_bytes(value: tf.Tensor) -> tf.Tensor:
    """[N] int64: the bytes each row of `value` [N, ...] takes in its serialized
    TensorProto's value fields: per string, a 1-byte tag, the length's varint and the
    bytes; per number, its size."""
    rows = tf.shape(value, out_type=tf.int64)[0]
    if value.dtype != tf.string:
        inner = tf.reduce_prod(tf.shape(value, out_type=tf.int64)[1:])
        return tf.fill([rows], inner * value.dtype.size)
    length = tf.cast(tf.strings.length(value), tf.int64)
    varint = 1 + sum(tf.cast(length >= 1 << (7 * i), tf.int64) for i in range(1, 5))
    return tf.reduce_sum(tf.reshape(1 + varint + length, [rows, -1]), axis=1)


class BatchedProtoRunner:
    """One signature called on several requests' TensorProtos in one TF call.

    The requests' input protos are merged into one TensorProto per input (`merge`), the
    signature runs once inside a tf.function that parses them, serializes each whole output
    and measures each row's bytes, and each output's bytes are cut per request
    (wire.split_rows). Parsing, concatenating, splitting and
    serializing per request inside the graph, as this runner did before, cost more than
    the model: one merged call of 8 batch-1 requests took 0.80 ms against 0.48 ms for the
    signature on a [8] batch. One trace serves every merged batch size.

    Inputs of rank 0 or unknown rank are not concatenated: the batcher only merges requests
    whose such inputs are equal (serving/batching.py `merge_key`) and passes the first.
    """

    def __init__(self, signature: Signature, pad_variable_length: bool) -> None:
        """Traces the merged-call function now.

        Args:
          signature: A loaded signature (requests are validated before they are merged).
          pad_variable_length: Pad non-batch dimensions to the longest request's with ""
            or 0 before concatenating (TF Serving's pad_variable_length_inputs).
        """
        self.names = sorted(signature.inputs)
        self.infos = [signature.inputs[name] for name in self.names]
        self.batched = [bool(info.shape) for info in self.infos]
        self.pad = pad_variable_length
        self.outputs = {name: info.dtype for name, info in signature.outputs.items()}
        function = signature.function

        @tf.function(input_signature=[tf.TensorSpec([len(self.names)], tf.string)])
        def run(serialized: tf.Tensor) -> dict[str, dict[str, tf.Tensor]]:
            outputs = function(**_parse(serialized, self.names, self.infos))
            return {key: {"serialized": tf.io.serialize_tensor(value),
                          "shape": tf.shape(value, out_type=tf.int64),
                          "row_bytes": _row_bytes(value)}
                    for key, value in outputs.items()}

        self._run = FlatCall(run)

    def _input(self, index: int, requests: list[Mapping[str, tensor_pb2.TensorProto]]
               ) -> bytes:
        """The merged call's serialized input `index` (the first request's if unbatched)."""
        name, info = self.names[index], self.infos[index]
        if not self.batched[index]:
            return requests[0][name].SerializeToString()
        return merge([request[name] for request in requests], info.dtype, self.pad)

    def __call__(self, requests: list[Mapping[str, tensor_pb2.TensorProto]]
                 ) -> list[dict[str, bytes]]:
        """One output dict (name -> serialized TensorProto) per request, in order.

        Raises:
          ValueError: a request whose values do not fill its declared shape, or an output
            that cannot be split by rows;
          tf.errors.InvalidArgumentError: a model error. The caller reruns the requests one
            by one to tell which request caused either.
        """
        first = self.batched.index(True) if any(self.batched) else None
        rows = ([1] * len(requests) if first is None else
                [request[self.names[first]].tensor_shape.dim[0].size for request in requests])
        results = self._run(tf.constant([self._input(i, requests)
                                         for i in range(len(self.names))]))
        pieces = {key: wire.split_rows(
            result["serialized"].numpy(), self.outputs[key].as_datatype_enum,
            tuple(result["shape"].numpy()), result["row_bytes"].numpy(), rows,
            self.outputs[key] == tf.string) for key, result in results.items()}
        return [{key: values[i] for key, values in pieces.items()} for i in range(len(requests))]
