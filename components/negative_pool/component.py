"""NegativePoolBuilder: item frequencies (logQ), id vocabularies and the mixed-negative pool.

Usage (see pipeline/pipeline.py):

    pool = NegativePoolBuilder(
        interactions=interactions_gen.outputs["examples"],   # only its train split is read
        items=items_gen.outputs["examples"],                 # the catalogue ("catalog" split)
        contract=contract,                                   # pipeline/contract.load(...)
        interactions_report=interactions_gate.outputs["report"],
        items_report=items_gate.outputs["report"],
        sampler="uniform", pool_size=None, seed=42)

Output `negative_pool` (NegativePool), a folder with:
  item_frequencies/*.tfrecord.gz  item_id, train_count, in_catalog, probability (in-batch,
                                  add-k smoothed), pool_probability (0 outside the pool)
  pool/*.tfrecord.gz              catalogue rows (all features) + train_count, pool_probability
  vocab/<feature>.tsv             "value<TAB>count", most frequent first; index = line: the
                                  two ids (over train interactions) and every categorical,
                                  multi_categorical and text feature (preprocessing.py)
  numeric.json                    numeric features: quantile boundaries, mean, std
  contract.json                   the feature set (pipeline/contract.py) it was built for
  stats.json                      catalogue size, never-seen items, unknown ids, pool size, ...
"""
from __future__ import annotations

import json
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import keys
from components.ingestion.component import DataValidationReport
from components.negative_pool import executor
from components.negative_pool.pool import DEFAULTS, PoolSettings
from pipeline.contract import Contract


class NegativePool(types.Artifact):
    """Item frequencies, id vocabularies, the negative pool and its stats (see module doc)."""

    TYPE_NAME = "twotower.NegativePool"  # <namespace>.<Title>: KFP v2 schema titles


class NegativePoolBuilderSpec(types.ComponentSpec):
    """Inputs: train interactions, catalogue, (optionally) their validation reports."""

    PARAMETERS = {
        keys.SAMPLER_KEY: ExecutionParameter(type=str),
        keys.ALPHA_KEY: ExecutionParameter(type=float),
        keys.UNSEEN_WEIGHT_KEY: ExecutionParameter(type=float),
        keys.POOL_SIZE_KEY: ExecutionParameter(type=int, optional=True),
        keys.MAX_POOL_SIZE_KEY: ExecutionParameter(type=int),
        keys.SMOOTHING_KEY: ExecutionParameter(type=float),
        keys.MIN_COUNT_KEY: ExecutionParameter(type=int),
        keys.SEED_KEY: ExecutionParameter(type=int),
        keys.CONTRACT_KEY: ExecutionParameter(type=str),
        keys.SEPARATE_PROCESS_KEY: ExecutionParameter(type=int, optional=True),
        keys.MAX_UNKNOWN_ITEM_SHARE_KEY: ExecutionParameter(type=float, optional=True),
    }
    INPUTS = {
        keys.INTERACTIONS_KEY: ChannelParameter(type=standard_artifacts.Examples),
        keys.ITEMS_KEY: ChannelParameter(type=standard_artifacts.Examples),
        keys.INTERACTIONS_REPORT_KEY: ChannelParameter(type=DataValidationReport, optional=True),
        keys.ITEMS_REPORT_KEY: ChannelParameter(type=DataValidationReport, optional=True),
    }
    OUTPUTS = {keys.NEGATIVE_POOL_KEY: ChannelParameter(type=NegativePool)}


class NegativePoolBuilder(base_beam_component.BaseBeamComponent):
    """Counts train interactions per item and user and builds the mixed-negative pool."""

    SPEC_CLASS = NegativePoolBuilderSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, interactions: types.BaseChannel, items: types.BaseChannel,
                 contract: Contract, interactions_report: Optional[types.BaseChannel] = None,
                 items_report: Optional[types.BaseChannel] = None,
                 sampler: str = DEFAULTS.sampler, alpha: float = DEFAULTS.alpha,
                 unseen_weight: float = DEFAULTS.unseen_weight,
                 pool_size: Optional[int] = DEFAULTS.pool_size,
                 max_pool_size: int = DEFAULTS.max_pool_size,
                 smoothing: float = DEFAULTS.smoothing, min_count: int = DEFAULTS.min_count,
                 seed: int = DEFAULTS.seed, separate_process: bool = True,
                 max_unknown_item_share: float = DEFAULTS.max_unknown_item_share) -> None:
        """Builds the component; invalid parameter combinations raise ValueError now.

        Defaults are pipeline.config.PoolConfig's.

        Args:
          interactions: Examples with a `train` split (eval is never read).
          items: Examples with a `catalog` split, one row per item.
          contract: The feature set (pipeline/contract.py): the id columns and the features
            whose vocabularies and numeric statistics are computed.
          interactions_report: The interactions ValidationGate's report (orders the run).
          items_report: The items ValidationGate's report.
          sampler: Pool sampling distribution: `uniform` (default, as in mixed negative
            sampling), `popularity` ((count + smoothing)^alpha; alpha = 0 is uniform), or
            `unseen_boost` (never-seen items weigh `unseen_weight`, seen items 1).
          alpha: Popularity exponent; only with sampler `popularity`.
          unseen_weight: Weight of never-seen items under `unseen_boost`.
          pool_size: Items in the pool; None means the whole catalogue, capped at max_pool_size.
          max_pool_size: Cap on the pool.
          smoothing: Add-k smoothing of in-batch probabilities (and popularity weights).
          min_count: Ids seen fewer times are left out of the vocabularies (map to OOV).
          seed: Seed of the per-key hash that picks pool members when the catalogue is capped.
          separate_process: Run the Beam pipeline in a child process (see
            pipeline.config.OrchestrationConfig.separate_processes).
          max_unknown_item_share: Fail when more of the train interactions than this
            share name an item missing from the catalogue.
        """
        settings = PoolSettings(sampler=sampler, alpha=alpha, unseen_weight=unseen_weight,
                                pool_size=pool_size, max_pool_size=max_pool_size,
                                smoothing=smoothing, min_count=min_count, seed=seed)
        settings.validate()
        spec = NegativePoolBuilderSpec(
            interactions=interactions, items=items, interactions_report=interactions_report,
            items_report=items_report, sampler=sampler, alpha=alpha,
            unseen_weight=unseen_weight, pool_size=pool_size, max_pool_size=max_pool_size,
            smoothing=smoothing, min_count=min_count, seed=seed,
            separate_process=int(separate_process),
            max_unknown_item_share=max_unknown_item_share,
            contract=json.dumps(contract.to_dict(), sort_keys=True),
            negative_pool=types.Channel(type=NegativePool))
        super().__init__(spec=spec)
