"""The allowed range of every numeric config field, checked when a config loads.

One entry per numeric field of PipelineConfig (a test keeps the table complete); null is
allowed wherever the field is Optional. Rules between fields (index.k <= index.max_k, a
pool no larger than its cap, ...) stay in config.py beside their fields. The ranges are
what the code can run, not what is useful: the docstrings of config.py say what is.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator

from twotower.errors import ConfigError

SEED = (0, 2**31 - 1)
WIDTH = (1, 4096)
SHARE = (0.0, 1.0)
NUMERIC_TYPES = frozenset({"int", "float", "Optional[int]", "Optional[float]",
                           "tuple[int, ...]"})


@dataclasses.dataclass(frozen=True)
class Bound:
    """Inclusive range of a field, with a hint appended to its error."""

    low: float
    high: float
    hint: str = ""


BOUNDS: dict[str, Bound] = {
    "data.cutoff_quantile": Bound(*SHARE),
    "data.cutoff_timestamp": Bound(0, 4_102_444_800, "Unix seconds up to the year 2100"),
    "data.eval_percent": Bound(1, 99),
    "spans.window_spans": Bound(1, 10_000),
    "spans.wait_minutes": Bound(0, 10_080, "at most a week"),
    "pool.alpha": Bound(0.0, 2.0),
    "pool.unseen_weight": Bound(1e-6, 1e6),
    "pool.pool_size": Bound(1, 100_000_000),
    "pool.max_pool_size": Bound(1, 100_000_000),
    "pool.smoothing": Bound(0.0, 1e6),
    "pool.min_count": Bound(1, 1_000_000_000),
    "pool.seed": Bound(*SEED),
    "pool.max_unknown_item_share": Bound(*SHARE),
    "model.embedding_dim": Bound(*WIDTH),
    "model.hidden_layers": Bound(1, 65_536, "each width"),
    "model.id_embedding_dim": Bound(*WIDTH),
    "model.feature_embedding_dim": Bound(*WIDTH),
    "model.temperature": Bound(0.01, 1.0, "0.05-0.2 is the useful range"),
    "model.popularity_prior": Bound(0.0, 2.0, "1 adds back what logQ removed"),
    "model.id_dropout": Bound(0.0, 0.99),
    "loss.pool_ratio": Bound(0.0, 4.0),
    "loss.num_hard_negatives": Bound(1, 1_000_000),
    "loss.margin": Bound(1e-6, 100.0),
    "training.batch_size": Bound(2, 1_048_576),
    "training.epochs": Bound(1, 10_000),
    "training.train_steps": Bound(1, 1_000_000_000),
    "training.learning_rate": Bound(1e-9, 10.0),
    "training.seed": Bound(*SEED),
    "training.incremental_epochs": Bound(1, 10_000),
    "validation.k": Bound(1, 10_000),
    "validation.min_recall": Bound(*SHARE),
    "validation.max_relative_regression": Bound(*SHARE),
    "validation.min_scann_recall": Bound(*SHARE),
    "validation.min_lift_over_mostpop": Bound(-1.0, 10.0, "-1 switches the check off"),
    "validation.max_eval_interactions": Bound(1, 1_000_000_000),
    "index.k": Bound(1, 100_000),
    "index.max_k": Bound(1, 100_000),
    "index.brute_force_below": Bound(0, 1_000_000_000),
    "index.num_leaves": Bound(1, 10_000_000),
    "index.num_leaves_to_search": Bound(1, 10_000_000, "at most index.num_leaves"),
    "index.anisotropic_quantization_threshold": Bound(0.0, 0.99),
    "index.reorder": Bound(1, 1_000_000),
    "index.repeat_weight": Bound(0.0, 100.0),
    "index.repeat_half_life": Bound(1e-6, 10_000, "history steps"),
    "serving.grpc_port": Bound(0, 65_535),
    "serving.rest_port": Bound(0, 65_535),
    "serving.poll_seconds": Bound(0.01, 86_400),
    "serving.max_batch_size": Bound(1, 1_048_576),
    "orchestration.retries": Bound(0, 100),
    "orchestration.trainer_workers": Bound(1, 256),
    "orchestration.task_timeout_minutes": Bound(0.0, 10_080, "0: no timeout"),
}


def numeric_fields(config: Any) -> Iterator[tuple[str, Any]]:
    """(section.field, value) of every numeric field of a PipelineConfig (None included;
    a tuple of numbers as one field)."""
    for section in dataclasses.fields(config):
        yield from _section_fields(section.name, getattr(config, section.name))


def _section_fields(name: str, values: Any) -> Iterator[tuple[str, Any]]:
    for field in dataclasses.fields(values):
        value = getattr(values, field.name)
        if str(field.type) in NUMERIC_TYPES:
            yield f"{name}.{field.name}", value if isinstance(value, tuple) else (value,)


def check(config: Any) -> None:
    """Raises ConfigError naming the first numeric field outside its range.

    Raises:
      ConfigError: `model.embedding_dim: got 100000000; expected a number from 1 to 4096`.
    """
    for section in dataclasses.fields(config):
        check_section(section.name, getattr(config, section.name))


def check_section(name: str, values: Any) -> None:
    """`check` for one section (e.g. name `pool`, values a PoolConfig).

    Raises:
      ConfigError: naming the first numeric field outside its range.
    """
    for field, numbers in _section_fields(name, values):
        bound = BOUNDS[field]
        for number in numbers:
            if number is not None and not bound.low <= number <= bound.high:
                hint = f" ({bound.hint})" if bound.hint else ""
                shown = numbers if len(numbers) > 1 else number
                raise ConfigError(f"{field}: got {shown!r}; expected a number from "
                                  f"{_number(bound.low)} to {_number(bound.high)}{hint}")


def _number(value: float) -> str:
    """1048576 -> '1,048,576'; 1e-06 -> '1e-06'."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"
