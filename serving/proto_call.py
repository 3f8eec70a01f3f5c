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

from typing import Mapping

import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from serving.signatures import Signature


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
