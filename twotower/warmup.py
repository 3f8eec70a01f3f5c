"""TF Serving warm-up requests: `assets.extra/tf_serving_warmup_requests` in a SavedModel.

TF Serving replays these PredictionLog records (TFRecord) when it loads a version, before
the version takes traffic, so the first real requests do not pay for graph warm-up.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


def warmup_path(saved_model_dir: str) -> str:
    return os.path.join(saved_model_dir, WARMUP_DIR, WARMUP_FILE)


def write(saved_model_dir: str, model_name: str, signature_name: str,
          batches: Sequence[Mapping[str, np.ndarray]]) -> str:
    """Writes one PredictRequest per batch ({input name: [B] values}); returns the path."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # pylint: disable=import-outside-toplevel
    path = warmup_path(saved_model_dir)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for batch in batches:
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
                name=model_name, signature_name=signature_name))
            for name, values in batch.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read(saved_model_dir: str) -> list:
    """The PredictRequests of a SavedModel's warm-up file (empty when it has none)."""
    from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=import-outside-toplevel
    path = warmup_path(saved_model_dir)
    if not tf.io.gfile.exists(path):
        return []
    return [prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator()]
