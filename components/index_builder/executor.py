"""IndexBuilder executor: unpack artifacts, build both retrieval SavedModels, publish them."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from twotower import keys
from components.index_builder import report as report_lib
from components.index_builder import retrieval_model, scann_settings
from twotower import warmup
from components.negative_pool import artifact_io
from twotower import versions
from components.trainer import export as trainer_export
from components.trainer import features
from twotower.config import IndexConfig
from twotower.contract import Contract

WARMUP_BATCHES = 3
WARMUP_ROWS = 4


def index_config(exec_properties: Mapping[str, Any]) -> IndexConfig:
    """The component's parameters as the config section they came from (validated)."""
    config = IndexConfig(
        k=exec_properties[keys.INDEX_K_KEY], max_k=exec_properties[keys.MAX_K_KEY],
        brute_force_below=exec_properties[keys.BRUTE_FORCE_BELOW_KEY],
        num_leaves=exec_properties.get(keys.NUM_LEAVES_KEY),
        num_leaves_to_search=exec_properties.get(keys.NUM_LEAVES_TO_SEARCH_KEY),
        anisotropic_quantization_threshold=exec_properties[keys.ANISOTROPIC_THRESHOLD_KEY],
        reorder=exec_properties.get(keys.REORDER_KEY),
        history_policy=exec_properties.get(keys.HISTORY_POLICY_KEY, IndexConfig.history_policy),
        repeat_weight=exec_properties.get(keys.REPEAT_WEIGHT_KEY, IndexConfig.repeat_weight),
        repeat_half_life=exec_properties.get(keys.REPEAT_HALF_LIFE_KEY))
    config.validate()
    return config


def history_settings(contract: Contract, config: IndexConfig
                     ) -> Optional[retrieval_model.Repeat]:
    """The served model's history settings: None when the contract declares no history."""
    if contract.history is None:
        return None
    return retrieval_model.Repeat(contract.history.name, contract.history.length,
                                  config.history_policy,
                                  config.repeat_weight, config.repeat_half_life)


def eval_queries(examples: types.Artifact, rows: int, contract: Contract,
                 names: Sequence[str]) -> dict[str, np.ndarray]:
    """Raw query features `names` of the first `rows` eval interactions, {name: [Q]}."""
    pattern = io_utils.all_files_pattern(artifact_utils.get_split_uri([examples],
                                                                      keys.EVAL_SPLIT))
    batch = next(iter(features.dataset(pattern, rows, False, 0, contract, names)))
    return {name: values.numpy() for name, values in batch.items()}


def publish(model: retrieval_model.RetrievalModel, artifact_uri: str, serving_model_name: str,
            queries: Mapping[str, np.ndarray], source: dict[str, Any]) -> str:
    """Saves into a staging folder, adds warm-up requests and the source record (which
    model it wraps; the pusher compares it), then renames it to the serving model dir, so a
    reader never sees a half-written SavedModel. Returns that dir."""
    final = path_utils.serving_model_dir(artifact_uri)
    staging = os.path.join(artifact_uri, ".staging")
    model.save(staging)
    batches = [{name: values[i * WARMUP_ROWS:(i + 1) * WARMUP_ROWS]
                for name, values in queries.items()} for i in range(WARMUP_BATCHES)]
    warmup.write(staging, serving_model_name, retrieval_model.SERVING_SIGNATURE,
                 [batch for batch in batches if len(next(iter(batch.values())))])
    versions.write_source(staging, source)
    tf.io.gfile.rename(staging, final, overwrite=True)
    return final


class Executor(base_executor.BaseExecutor):
    """Builds the ScaNN and the stock (exact top-K) retrieval SavedModels."""

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        config = index_config(exec_properties)
        trained = path_utils.serving_model_path(
            artifact_utils.get_single_uri(input_dict[keys.MODEL_KEY]))
        ids, embeddings = trainer_export.read_embeddings(
            os.path.join(trained, trainer_export.EMBEDDINGS_FILE))
        settings = scann_settings.derive(len(ids), config)
        logging.info("Indexing %d items (dim %d) with %s", len(ids), embeddings.shape[1],
                     settings)
        query_tower = os.path.join(trained, trainer_export.QUERY_TOWER_DIR)
        contract = artifact_io.read_contract(trained)
        history = history_settings(contract, config)
        if history is not None:
            logging.info("The request's history %r: %s", history.feature, history)
        scann = retrieval_model.RetrievalModel(
            query_tower, ids, retrieval_model.ScannSearch(embeddings, settings), settings.k,
            config.max_k, embeddings, history)
        exact = retrieval_model.RetrievalModel(
            query_tower, ids, retrieval_model.ExactSearch(embeddings), settings.k, config.max_k,
            embeddings, history)
        queries = eval_queries(artifact_utils.get_single_instance(input_dict[keys.EXAMPLES_KEY]),
                               exec_properties[keys.REPORT_QUERIES_KEY], contract,
                               list(scann.query_specs))
        settings, tuning = report_lib.tune_search(scann, exact, queries, settings,
                                                  exec_properties[keys.TARGET_RECALL_KEY])
        index_report = {**report_lib.index_report(scann, exact, queries, settings),
                        "tuning": tuning}
        logging.info("Index report: %s", index_report)
        name = exec_properties[keys.SERVING_MODEL_NAME_KEY]
        scann_uri = artifact_utils.get_single_uri(output_dict[keys.SCANN_MODEL_KEY])
        stock_uri = artifact_utils.get_single_uri(output_dict[keys.STOCK_MODEL_KEY])
        with tf.io.gfile.GFile(os.path.join(scann_uri, keys.INDEX_REPORT_FILE), "w") as f:
            f.write(json.dumps(index_report, indent=2) + "\n")
        source = {"trained_model": trained, "index": dataclasses.asdict(settings)}
        publish(scann, scann_uri, name, queries, {**source, "variant": "scann"})
        publish(exact, stock_uri, f"{name}-stock", queries, {**source, "variant": "stock"})
