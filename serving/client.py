"""`twotower query`: top-K items for one user from a model server over TF Serving's gRPC API.

Uses only the official tensorflow_serving.apis stubs, so the same function works against a
real `tensorflow_model_server`. Input dtypes are read from the server's GetModelMetadata,
so the user features are typed as the served signature wants them.
"""
from __future__ import annotations

import csv
import dataclasses
import time
from typing import TYPE_CHECKING, Mapping, Sequence

import grpc
import numpy as np

from twotower.contract import CANDIDATE, CATEGORICAL, MULTI_CATEGORICAL, TEXT
from twotower.errors import TwoTowerError
from twotower.keys import HISTORY_UNKNOWN_OUTPUT

if TYPE_CHECKING:
    from twotower.contract import Contract


@dataclasses.dataclass
class QueryResult:
    """The served version, the top items with their scores, and how many of the request's
    history ids the model did not know (ignored; 0 for a model without a history)."""

    version: int
    item_ids: list[str]
    scores: list[float]
    unknown_history: int = 0


def parse_features(pairs: list[str]) -> dict[str, str]:
    """["user_id=1", "age=30", ...] -> {"user_id": "1", ...}.

    Raises:
      TwoTowerError: naming a pair without "=".
    """
    features = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise TwoTowerError(f"--user-features {pair!r}: expected NAME=VALUE, e.g. age=30")
        features[name] = value
    return features


# What the towers read as a missing value (components/trainer/features.py).
MISSING_INT = np.iinfo(np.int64).min


def typed_value(name: str, raw: str, dtype: int, types_pb2) -> np.ndarray:
    """One request row of a feature as the signature's dtype; "" (not given) becomes the
    missing marker the towers learned (empty string, int64 min, NaN).

    Raises:
      TwoTowerError: naming a value that is not a number where one is needed.
    """
    if dtype == types_pb2.DT_STRING:
        return np.array([raw.encode()], dtype=object)
    try:
        if dtype == types_pb2.DT_INT64:
            return np.array([int(raw) if raw else MISSING_INT], dtype=np.int64)
        return np.array([float(raw) if raw else np.nan], dtype=np.float32)
    except ValueError as e:
        kind = "an integer" if dtype == types_pb2.DT_INT64 else "a number"
        raise TwoTowerError(f"feature {name}={raw!r} must be {kind}") from e


def _input_dtypes(stub, model_name: str, signature: str, timeout: float
                  ) -> dict[str, tuple[int, int]]:
    """input name -> (dtype enum, rank) of a served signature, from GetModelMetadata."""
    from tensorflow_serving.apis import get_model_metadata_pb2  # pylint: disable=import-outside-toplevel
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = model_name
    response = stub.GetModelMetadata(request, timeout)
    definitions = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(definitions)
    if signature not in definitions.signature_def:
        raise TwoTowerError(f"model {model_name} has no signature {signature!r}; it has "
                            f"{sorted(definitions.signature_def)}")
    return {name: (info.dtype, len(info.tensor_shape.dim))
            for name, info in definitions.signature_def[signature].inputs.items()}


def query(host: str, port: int, model_name: str, features: Mapping[str, str],
          signature: str = "serving_default", timeout: float = 10.0,
          wait_seconds: float = 0.0, history: Sequence[str] = ()) -> QueryResult:
    """Asks the server for one user's top items.

    Args:
      host: Server address.
      port: gRPC port.
      model_name: Served model name.
      features: Raw query features as strings (typed here by the signature's dtypes; missing
        ones are sent as the towers' missing markers, see typed_value).
      signature: Signature to call.
      timeout: Per-call deadline in seconds.
      wait_seconds: Keep retrying while the server is not up yet, for this long.
      history: The user's recent item ids, oldest first: the value of the signature's one
        [B, L] input (a history feature); empty when not given.

    Raises:
      TwoTowerError: with the server's message when the call fails, or a history for a model
        without a history input.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow.core.framework import types_pb2  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # pylint: disable=import-outside-toplevel
    deadline = time.time() + wait_seconds
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        while True:
            try:
                dtypes = _input_dtypes(stub, model_name, signature, timeout)
                break
            except grpc.RpcError as e:
                retry = e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)
                if not retry or time.time() >= deadline:
                    raise TwoTowerError(f"{host}:{port} {e.code().name}: {e.details()}") from e
                time.sleep(0.5)
        lists = [name for name, (_, rank) in dtypes.items() if rank == 2]
        unknown = sorted(set(features) - set(dtypes))
        if unknown:
            raise TwoTowerError(f"unknown features {unknown}; the model takes {sorted(dtypes)}")
        if history and not lists:
            raise TwoTowerError(f"model {model_name} takes no history (its inputs are "
                                f"{sorted(dtypes)}); drop --history")
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature
        for name, (dtype, rank) in dtypes.items():
            if rank == 2:
                value = np.array([[item.encode() for item in history] or [b""]], dtype=object)
            else:
                value = typed_value(name, features.get(name, ""), dtype, types_pb2)
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        try:
            response = stub.Predict(request, timeout)
        except grpc.RpcError as e:
            raise TwoTowerError(f"{e.code().name}: {e.details()}") from e
    ids = [item.decode() for item in tf.make_ndarray(response.outputs["item_ids"])[0]]
    scores = tf.make_ndarray(response.outputs["scores"])[0].tolist()
    unknown = (int(tf.make_ndarray(response.outputs[HISTORY_UNKNOWN_OUTPUT])[0])
               if HISTORY_UNKNOWN_OUTPUT in response.outputs else 0)
    return QueryResult(response.model_spec.version.value, ids, scores, unknown)


def read_titles(items_csv: str, contract: "Contract", columns: int = 2) -> dict[str, str]:
    """item id -> a short description from an items table: the values of its first
    `columns` text or categorical candidate features (as the contract declares them)."""
    shown = [feature.name for feature in contract.features if feature.role == CANDIDATE
             and feature.kind in (TEXT, CATEGORICAL, MULTI_CATEGORICAL)][:columns]
    with open(items_csv, newline="") as f:
        return {row[contract.item_id]: "  ".join(row.get(name, "") for name in shown)
                for row in csv.DictReader(f)}
