"""What the claim rows of `bench quality --claims` need beyond config overrides
(benchmarks/quality_rows.py CLAIM_ROWS): a NegativePool built with the row's own pool
settings, and τ from tune-temperature's rule."""
from __future__ import annotations

from typing import Any

from twotower import config as config_lib

RULE_SAMPLE = 2000  # training rows whose query embeddings measure the dot-product range


def pool_for(prepared: Any, config: Any) -> str:
    """The NegativePool artifact for a row's pool settings: the protocol's own when they
    are the defaults, else one built (once per settings) from the same splits.

    Args:
      prepared: quality.Prepared of the protocol.
      config: The row's PipelineConfig.
    """
    from benchmarks import example_files  # pylint: disable=import-outside-toplevel
    settings = config.pool
    if settings == config_lib.PoolConfig():
        return prepared.pool_uri
    if settings not in prepared.pools:
        prepared.pools[settings] = example_files.build_pool_artifact(
            prepared.root / "interactions", prepared.root / "items",
            prepared.root / f"pool-{len(prepared.pools) + 1}", settings, prepared.contract)
    return prepared.pools[settings]


def rule_temperature(prepared: Any, config: Any) -> float:
    """τ by `twotower tune-temperature`'s rule (components/trainer/temperature.py), from an
    unnormalised model trained on the protocol's train split; training rows only."""
    from components.trainer import temperature  # pylint: disable=import-outside-toplevel
    from pipeline import tune  # pylint: disable=import-outside-toplevel
    data = tune.RunData(prepared.train_pattern, prepared.train_pattern,
                        prepared.catalog_pattern, prepared.pool_uri)
    queries, items = tune.unnormalised_embeddings(data, config, None, RULE_SAMPLE)
    extent = temperature.dot_product_ranges(queries, items)["cosine"]["extent"]
    return temperature.suggest_temperature(extent)
