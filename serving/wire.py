"""Protocol-buffer wire encoding of a PredictResponse from already serialized tensors.

Parsing the model's serialized output TensorProtos into a PredictResponse message, only
for gRPC to serialize them again, costs about 1 ms for 3,200 item-id strings (batch 32,
K 100) with TF's descriptor-based message classes. The response is instead assembled from
the bytes: a PredictResponse is `map<string, TensorProto> outputs = 1` (each entry a
message with key = 1, value = 2) and `ModelSpec model_spec = 2`, all length-delimited.
"""
from __future__ import annotations

from typing import Mapping

from tensorflow_serving.apis import model_pb2

_LENGTH_DELIMITED = 2
OUTPUTS_FIELD = 1
MODEL_SPEC_FIELD = 2
MAP_KEY_FIELD = 1
MAP_VALUE_FIELD = 2


def varint(value: int) -> bytes:
    """Base-128 varint of a non-negative integer."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited field: tag, length, payload."""
    return varint(number << 3 | _LENGTH_DELIMITED) + varint(len(payload)) + payload


def predict_response(outputs: Mapping[str, bytes], model_spec: model_pb2.ModelSpec) -> bytes:
    """A serialized PredictResponse.

    Args:
      outputs: Output name -> serialized TensorProto.
      model_spec: The model, version and signature that answered.
    """
    entries = [field(OUTPUTS_FIELD, field(MAP_KEY_FIELD, name.encode())
                     + field(MAP_VALUE_FIELD, tensor))
               for name, tensor in outputs.items()]
    return b"".join(entries) + field(MODEL_SPEC_FIELD, model_spec.SerializeToString())
