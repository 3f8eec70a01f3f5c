"""ModelValidator executor: score candidate and baseline on the same eval split, decide,
write the standard ModelBlessing (TFX's Pusher and LatestBlessedModelStrategy read it)."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Optional

from absl import logging
import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils, path_utils

from twotower import keys
from components.ingestion import window
from components.negative_pool import artifact_io
from components.model_validator import evaluation, gating, plot
from components.trainer import metrics, train_history
from twotower.config import ValidationConfig

BLESSED_FILE, NOT_BLESSED_FILE = "BLESSED", "NOT_BLESSED"
PLOTTED = ("recall_at_10", "recall_at_50", "recall_at_100", "ndcg_at_10")


def validation_config(exec_properties: Mapping[str, Any]) -> ValidationConfig:
    config = ValidationConfig(
        k=exec_properties[keys.VALIDATION_K_KEY], protocol=exec_properties[keys.PROTOCOL_KEY],
        min_recall=exec_properties[keys.MIN_RECALL_KEY],
        max_relative_regression=exec_properties[keys.MAX_RELATIVE_REGRESSION_KEY],
        min_scann_recall=exec_properties[keys.MIN_SCANN_RECALL_KEY],
        min_lift_over_mostpop=exec_properties[keys.MIN_LIFT_OVER_MOSTPOP_KEY],
        max_eval_interactions=exec_properties.get(keys.MAX_EVAL_INTERACTIONS_KEY))
    config.validate()
    return config


def _score(model: types.Artifact, examples: list[types.Artifact], config: ValidationConfig,
           mostpop: bool = False, history: Optional[train_history.TrainHistory] = None,
           catalog: Optional[list[str]] = None) -> metrics.Evaluation:
    """The export's metrics (with `mostpop`, MostPop's over its catalogue) on the newest
    span's eval split, with the whole window's training data as the history the filtered
    protocol removes (what the Trainer read: window.training_patterns); `history` is that
    split's train_history.TrainHistory and `catalog` the export's ids, when already read."""
    train, evals = window.training_patterns(examples)
    score = evaluation.evaluate_mostpop if mostpop else evaluation.evaluate_export
    return score(path_utils.serving_model_path(model.uri), train, evals[0],
                 sorted({10, 50, 100, config.k}), config.max_eval_interactions,
                 history=history, catalog=catalog)


def _history(model: types.Artifact, examples: list[types.Artifact], config: ValidationConfig,
             catalog: list[str]) -> train_history.TrainHistory:
    """The newest span's train_history.TrainHistory, read once for every model scored."""
    train, evals = window.training_patterns(examples)
    serving_dir = path_utils.serving_model_path(model.uri)
    return train_history.read_train_history(train, evals[0], config.max_eval_interactions,
                                            catalog, artifact_io.read_contract(serving_dir))


class Executor(base_executor.BaseExecutor):
    """Blesses the candidate iff every check in gating.decide passes."""

    def Do(self, input_dict: dict[str, list[types.Artifact]],
           output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        config = validation_config(exec_properties)
        candidate = artifact_utils.get_single_instance(input_dict[keys.MODEL_KEY])
        examples = input_dict[keys.EXAMPLES_KEY]
        baselines = input_dict.get(keys.BASELINE_MODEL_KEY) or []
        baseline: Optional[types.Artifact] = baselines[0] if baselines else None
        index = artifact_utils.get_single_instance(input_dict[keys.INDEX_MODEL_KEY])
        with tf.io.gfile.GFile(os.path.join(index.uri, keys.INDEX_REPORT_FILE)) as f:
            index_report = json.load(f)

        catalog = evaluation.catalog_ids(path_utils.serving_model_path(candidate.uri))
        catalog_size = len(catalog)
        gated = gating.capped(config, catalog_size)
        if gated.k < config.k:
            logging.warning("validation.k %d is above %.0f%% of the %d-item catalogue: gating "
                            "recall@%d", config.k, 100 * gating.MAX_K_SHARE, catalog_size,
                            gated.k)
        config = gated
        history = _history(candidate, examples, config, catalog)
        scored = _score(candidate, examples, config, history=history, catalog=catalog)
        candidate_metrics = scored.metrics
        mostpop_metrics = _score(candidate, examples, config, mostpop=True, history=history,
                                 catalog=catalog).metrics
        baseline_metrics, paired = None, None
        if baseline is not None:
            baseline_scored = _score(baseline, examples, config, history=history)
            baseline_metrics = baseline_scored.metrics
            if len(baseline_scored.ranks[config.protocol]) == len(scored.ranks[config.protocol]):
                paired = gating.Paired(scored.hits(config.protocol, config.k),
                                       baseline_scored.hits(config.protocol, config.k),
                                       scored.users)
            else:  # the same split and sample keep the same events; never expected
                logging.warning("candidate and baseline scored different eval events (%d vs "
                                "%d): comparing point values",
                                len(scored.ranks[config.protocol]),
                                len(baseline_scored.ranks[config.protocol]))
        checks = gating.decide(candidate_metrics, baseline_metrics, index_report, config,
                               mostpop_metrics, paired)
        blessed = all(check.passed for check in checks)
        for check in checks:
            logging.info("%s %s: %s", "PASS" if check.passed else "FAIL", check.name,
                         check.message)

        blessing = artifact_utils.get_single_instance(output_dict[keys.BLESSING_KEY])
        gated_key = gating.metric_key(config)
        summary = {"blessed": blessed, "metric": gated_key, "candidate": candidate_metrics,
                   "candidate_uri": candidate.uri, "mostpop": mostpop_metrics,
                   "catalog_size": catalog_size,
                   "baseline": baseline_metrics, "baseline_uri": baseline.uri if baseline else None,
                   "index_report": index_report,
                   "checks": [dataclasses.asdict(check) for check in checks]}
        with tf.io.gfile.GFile(os.path.join(blessing.uri, keys.VALIDATION_METRICS_FILE), "w") as f:
            f.write(json.dumps(summary, indent=2) + "\n")
        plotted = [f"{config.protocol}_{name}" for name in PLOTTED]
        plot.comparison_chart(candidate_metrics, baseline_metrics, plotted, gated_key,
                              os.path.join(blessing.uri, keys.VALIDATION_PLOT_FILE))
        io_utils.write_string_file(
            os.path.join(blessing.uri, BLESSED_FILE if blessed else NOT_BLESSED_FILE), "")
        blessing.set_int_custom_property(keys.BLESSED_PROPERTY, int(blessed))
        blessing.set_string_custom_property(keys.CURRENT_MODEL_PROPERTY, candidate.uri)
        blessing.set_int_custom_property(keys.CURRENT_MODEL_ID_PROPERTY, candidate.id)
        if baseline is not None:
            blessing.set_string_custom_property(keys.BASELINE_MODEL_PROPERTY, baseline.uri)
            blessing.set_int_custom_property(keys.BASELINE_MODEL_ID_PROPERTY, baseline.id)
