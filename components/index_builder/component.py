"""IndexBuilder: the pushable retrieval SavedModels (ScaNN and stock) from a trained model.

Usage (see pipeline/pipeline.py):

    index = IndexBuilder(model=trainer.outputs["model"],
                         examples=interactions_gen.outputs["examples"],
                         k=100, serving_model_name="twotower")

Outputs:
  scann_model: Model; Format-Serving/ is one SavedModel wrapping the query tower and a ScaNN
    index of every catalogue embedding (signatures serving_default: raw query features ->
    item_ids [B, K], scores [B, K]; serving_top_k with a k input up to max_k;
    query_embedding; with a history feature the history's items are merged in under the
    history policy, repeat.py), with TF Serving warm-up requests in
    assets.extra/; index_report.json beside it (ScaNN recall against exact search on eval
    queries, latency).
  stock_model: Model; the same signatures with exact top-K in built-in ops only (loads on a
    stock tensorflow/serving, which lacks the ScaNN ops).
"""
from __future__ import annotations

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from twotower import keys
from components.index_builder import executor
from twotower.config import IndexConfig, ValidationConfig

DEFAULTS = IndexConfig()
DEFAULT_REPORT_QUERIES = 1000


class IndexBuilderSpec(types.ComponentSpec):
    """Inputs: the Trainer's model and the interactions (eval queries); two Model outputs."""

    PARAMETERS = {
        keys.INDEX_K_KEY: ExecutionParameter(type=int),
        keys.MAX_K_KEY: ExecutionParameter(type=int),
        keys.BRUTE_FORCE_BELOW_KEY: ExecutionParameter(type=int),
        keys.NUM_LEAVES_KEY: ExecutionParameter(type=int, optional=True),
        keys.NUM_LEAVES_TO_SEARCH_KEY: ExecutionParameter(type=int, optional=True),
        keys.ANISOTROPIC_THRESHOLD_KEY: ExecutionParameter(type=float),
        keys.REORDER_KEY: ExecutionParameter(type=int, optional=True),
        keys.HISTORY_POLICY_KEY: ExecutionParameter(type=str),
        keys.REPEAT_WEIGHT_KEY: ExecutionParameter(type=float),
        keys.REPEAT_HALF_LIFE_KEY: ExecutionParameter(type=float, optional=True),
        keys.SERVING_MODEL_NAME_KEY: ExecutionParameter(type=str),
        keys.REPORT_QUERIES_KEY: ExecutionParameter(type=int),
        keys.TARGET_RECALL_KEY: ExecutionParameter(type=float),
    }
    INPUTS = {
        keys.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        keys.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        keys.SCANN_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        keys.STOCK_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
    }


class IndexBuilder(base_component.BaseComponent):
    """Wraps the query tower and a ScaNN (or exact) index into pushable SavedModels."""

    SPEC_CLASS = IndexBuilderSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, examples: types.BaseChannel,
                 serving_model_name: str, k: int = DEFAULTS.k, max_k: int = DEFAULTS.max_k,
                 brute_force_below: int = DEFAULTS.brute_force_below,
                 num_leaves: Optional[int] = DEFAULTS.num_leaves,
                 num_leaves_to_search: Optional[int] = DEFAULTS.num_leaves_to_search,
                 anisotropic_quantization_threshold: float =
                 DEFAULTS.anisotropic_quantization_threshold,
                 reorder: Optional[int] = DEFAULTS.reorder,
                 history_policy: str = DEFAULTS.history_policy,
                 repeat_weight: float = DEFAULTS.repeat_weight,
                 repeat_half_life: Optional[float] = DEFAULTS.repeat_half_life,
                 report_queries: int = DEFAULT_REPORT_QUERIES,
                 target_recall: float = ValidationConfig().min_scann_recall) -> None:
        """Builds the component; bad parameters raise ValueError now.

        Args:
          model: The Trainer's Model (query_tower/ and candidate_embeddings in its export).
          examples: Interactions with an `eval` split (queries for the report and warm-up).
          serving_model_name: Model name in the warm-up requests (TF Serving's model_name).
          k: Results per query of serving_default (index.k; at most max_k).
          max_k: Largest k the serving_top_k signature accepts (index.max_k).
          brute_force_below: Catalogues smaller than this are searched exactly.
          num_leaves: Partitions of the ScaNN tree (None: about √n).
          num_leaves_to_search: Partitions searched per query (None: about 1/20).
          anisotropic_quantization_threshold: ScaNN's anisotropic quantization threshold.
          reorder: Candidates re-scored exactly (None: max(4k, 100)).
          history_policy: What the request's history items do, `rank` or `exclude`
            (repeat.py; only with a history feature in the contract).
          repeat_weight: w of the repeat term (0: the model's score alone).
          repeat_half_life: History steps over which a past item's weight halves (None:
            plain counts).
          report_queries: Eval queries used for index_report.json.
          target_recall: Leaves searched and reordering depth are doubled from the derived
            values until ScaNN's recall@K against exact search on those queries reaches
            this (the validator's validation.min_scann_recall).
        """
        IndexConfig(k=k, max_k=max_k, brute_force_below=brute_force_below, num_leaves=num_leaves,
                    num_leaves_to_search=num_leaves_to_search,
                    anisotropic_quantization_threshold=anisotropic_quantization_threshold,
                    reorder=reorder, history_policy=history_policy, repeat_weight=repeat_weight,
                    repeat_half_life=repeat_half_life).validate()
        if report_queries < 1:
            raise ValueError(f"report_queries must be >= 1, got {report_queries}")
        if not 0.0 <= target_recall <= 1.0:
            raise ValueError(f"target_recall must be in [0, 1], got {target_recall}")
        spec = IndexBuilderSpec(
            model=model, examples=examples, k=k, max_k=max_k, brute_force_below=brute_force_below,
            num_leaves=num_leaves, num_leaves_to_search=num_leaves_to_search,
            anisotropic_quantization_threshold=anisotropic_quantization_threshold,
            reorder=reorder, history_policy=history_policy, repeat_weight=float(repeat_weight),
            repeat_half_life=None if repeat_half_life is None else float(repeat_half_life),
            serving_model_name=serving_model_name,
            report_queries=report_queries, target_recall=target_recall,
            scann_model=types.Channel(type=standard_artifacts.Model),
            stock_model=types.Channel(type=standard_artifacts.Model))
        super().__init__(spec=spec)
