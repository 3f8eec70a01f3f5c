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

import threading
from typing import Any, Mapping

import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from serving.signatures import Signature, TensorInfo


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

        @tf.function(input_signature=[tf.TensorSpec([], tf.string)] * len(self.names))
        def run(*serialized: tf.Tensor) -> dict[str, tf.Tensor]:
            inputs = {}
            for name, info, proto in zip(self.names, infos, serialized):
                value = tf.io.parse_tensor(proto, info.dtype)
                inputs[name] = value if info.shape is None else tf.ensure_shape(value, info.shape)
            return {key: tf.io.serialize_tensor(value)
                    for key, value in function(**inputs).items()}

        self._run = run.get_concrete_function()

    def __call__(self, inputs: Mapping[str, tensor_pb2.TensorProto]) -> dict[str, bytes]:
        """Output name -> serialized TensorProto.

        Raises:
          tf.errors.InvalidArgumentError: a proto whose content does not match its dtype and
            shape, or an error raised by the model (e.g. k above the index's max_k).
        """
        outputs = self._run(*[tf.constant(inputs[name].SerializeToString())
                              for name in self.names])
        return {key: value.numpy() for key, value in outputs.items()}


def bucket(count: int) -> int:
    """The padded request count of a merged call: the next power of two."""
    return 1 << (count - 1).bit_length()


class BatchedProtoRunner:
    """One signature called on several requests' serialized TensorProtos in one TF call.

    Each merged call parses every request's inputs, concatenates them along the batch
    dimension, calls the signature once and splits every output back into one serialized
    TensorProto per request, all inside one tf.function. The function is traced per request
    count, and counts are padded to a power of two (the first request repeated, its extra
    outputs dropped) so a handful of traces serve every batch: this is TF Serving's
    allowed_batch_sizes idea applied to requests, whose row counts vary.

    Inputs of rank 0 or unknown rank are not concatenated: the batcher only merges requests
    whose such inputs are equal (serving/batching.py `merge_key`) and passes the first.
    """

    def __init__(self, signature: Signature, pad_variable_length: bool) -> None:
        """Args:
          signature: A loaded signature (requests are validated before they are merged).
          pad_variable_length: Pad non-batch dimensions to the longest request's with ""
            or 0 before concatenating (TF Serving's pad_variable_length_inputs).
        """
        self.names = sorted(signature.inputs)
        self.infos = [signature.inputs[name] for name in self.names]
        self.batched = [bool(info.shape) for info in self.infos]
        self.pad = pad_variable_length
        self.function = signature.function
        self._traced: dict[int, Any] = {}
        self._lock = threading.Lock()

    def _concatenate(self, parts: list[tf.Tensor], info: TensorInfo) -> tf.Tensor:
        """[sum of rows, ...]: the parts along dimension 0, padded first if configured."""
        if self.pad and len(info.shape) > 1:
            longest = tf.reduce_max(tf.stack([tf.shape(part) for part in parts]), axis=0)
            filler = "" if info.dtype == tf.string else tf.zeros([], info.dtype)
            padded = []
            for part in parts:
                after = longest[1:] - tf.shape(part)[1:]
                paddings = tf.concat([[[0, 0]], tf.stack([tf.zeros_like(after), after], axis=1)],
                                     axis=0)
                padded.append(tf.pad(part, paddings, constant_values=filler))
            parts = padded
        return tf.concat(parts, axis=0)

    def _trace(self, count: int) -> Any:
        specs = [tf.TensorSpec([count] if batched else [], tf.string) for batched in self.batched]

        @tf.function(input_signature=specs)
        def run(*serialized: tf.Tensor) -> dict[str, tf.Tensor]:
            inputs, rows = {}, None
            for name, info, batched, protos in zip(self.names, self.infos, self.batched,
                                                   serialized):
                if not batched:
                    value = tf.io.parse_tensor(protos, info.dtype)
                    inputs[name] = value if info.shape is None else tf.ensure_shape(value, [])
                    continue
                parts = [tf.ensure_shape(tf.io.parse_tensor(protos[i], info.dtype), info.shape)
                         for i in range(count)]
                if rows is None:
                    rows = tf.stack([tf.shape(part)[0] for part in parts])
                inputs[name] = self._concatenate(parts, info)
            return {key: tf.stack([tf.io.serialize_tensor(piece)
                                   for piece in tf.split(value, rows, num=count, axis=0)])
                    for key, value in self.function(**inputs).items()}

        return run.get_concrete_function()

    def traced(self, count: int) -> Any:
        """The concrete function for `count` padded requests (traced on first use)."""
        with self._lock:
            if count not in self._traced:
                self._traced[count] = self._trace(count)
            return self._traced[count]

    def __call__(self, requests: list[Mapping[str, tensor_pb2.TensorProto]]
                 ) -> list[dict[str, bytes]]:
        """One output dict (name -> serialized TensorProto) per request, in order.

        Raises:
          tf.errors.InvalidArgumentError: a request whose content does not match its header,
            or a model error; the caller reruns the requests one by one to tell which.
        """
        count = bucket(len(requests))
        padded = list(requests) + [requests[0]] * (count - len(requests))
        arguments = []
        for name, batched in zip(self.names, self.batched):
            if batched:
                arguments.append(tf.constant([request[name].SerializeToString()
                                              for request in padded]))
            else:
                arguments.append(tf.constant(requests[0][name].SerializeToString()))
        outputs = {key: value.numpy() for key, value in self.traced(count)(*arguments).items()}
        return [{key: values[i] for key, values in outputs.items()}
                for i in range(len(requests))]
