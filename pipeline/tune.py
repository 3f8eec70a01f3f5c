"""`twotower tune-temperature`: suggest τ from an unnormalised model, optionally sweep τ.

Works on the data of the pipeline's latest run (found through ML Metadata): the
interactions' train/eval splits, the catalogue and the NegativePool.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
from typing import Any, Optional, Sequence

import numpy as np

from pipeline import artifacts
from twotower.config import PipelineConfig
from twotower.errors import TwoTowerError

DEFAULT_SWEEP = (0.05, 0.07, 0.1, 0.14, 0.2)
SWEEP_METRICS = ("filtered_recall_at_10", "filtered_recall_at_100", "tfrs_recall_at_100")


@dataclasses.dataclass
class RunData:
    """File patterns and the pool of the pipeline's latest run."""

    train: str
    eval: str
    catalog: str
    pool_uri: str


def latest_run_data(config: PipelineConfig) -> RunData:
    """The latest run's splits and pool.

    Raises:
      TwoTowerError: if the pipeline has not produced them yet.
    """
    from components.negative_pool.component import NegativePool  # pylint: disable=import-outside-toplevel
    found = {node: artifacts.latest_output_uri(config, node, kind) for node, kind in (
        ("InteractionsExampleGen", "Examples"), ("ItemsExampleGen", "Examples"),
        ("NegativePoolBuilder", NegativePool.TYPE_NAME))}
    missing = [node for node, uri in found.items() if uri is None]
    if missing:
        raise TwoTowerError(f"no {missing[0]} output under {config.orchestration.pipeline_root}: "
                            "run `twotower run` with the same --config first")
    interactions = found["InteractionsExampleGen"]
    return RunData(os.path.join(interactions, "Split-train", "*"),
                   os.path.join(interactions, "Split-eval", "*"),
                   os.path.join(found["ItemsExampleGen"], "Split-catalog", "*"),
                   found["NegativePoolBuilder"])


def _eval_batch(data: RunData, sample: int) -> dict[str, Any]:
    """The query features of the first `sample` eval rows, as one batch."""
    from components.negative_pool import artifact_io  # pylint: disable=import-outside-toplevel
    from components.trainer import features  # pylint: disable=import-outside-toplevel
    contract = artifact_io.read_contract(data.pool_uri)
    return next(iter(features.dataset(data.eval, sample, False, 0, contract,
                                      contract.query_names)))


def trained_embeddings(data: RunData, model_dir: str, sample: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """[sample, D] query embeddings of the first eval rows and [N, D] catalogue embeddings
    of a Trainer export (its query tower and candidate_embeddings file)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from components.trainer import export, features  # pylint: disable=import-outside-toplevel
    batch = _eval_batch(data, sample)
    tower = tf.saved_model.load(os.path.join(model_dir, export.QUERY_TOWER_DIR))
    serve = tower.signatures["serving_default"]
    inputs = features.select(batch, sorted(serve.structured_input_signature[1]))
    queries = serve(**inputs)[export.EMBEDDING_OUTPUT].numpy()
    _, items = export.read_embeddings(os.path.join(model_dir, export.EMBEDDINGS_FILE))
    return queries, items


def unnormalised_embeddings(data: RunData, config: PipelineConfig, model_dir: Optional[str],
                            sample: int) -> tuple[np.ndarray, np.ndarray]:
    """Query embeddings of `sample` eval rows and all catalogue embeddings of an
    unnormalised model: loaded from a Trainer export, or trained now (L2 off, τ = 1)."""
    from components.trainer import training  # pylint: disable=import-outside-toplevel
    if model_dir:
        return trained_embeddings(data, model_dir, sample)
    batch = _eval_batch(data, sample)
    raw = dataclasses.replace(config, model=dataclasses.replace(
        config.model, l2_normalize=False, temperature=1.0, learnable_temperature=False,
        popularity_prior=0.0))
    _log("training an unnormalised model (model.l2_normalize=false, temperature 1)")
    result = training.train_and_evaluate(data.train, data.eval, data.catalog, data.pool_uri, raw)
    return result.model(batch).numpy(), result.catalog_embeddings


def sweep(data: RunData, config: PipelineConfig, temperatures: Sequence[float]
          ) -> list[dict[str, float]]:
    """Trains the configured model (L2 on) at each τ; returns eval metrics per τ."""
    from components.trainer import training  # pylint: disable=import-outside-toplevel
    rows = []
    for tau in temperatures:
        _log(f"sweep: training at temperature {tau:g}")
        variant = dataclasses.replace(config, model=dataclasses.replace(
            config.model, l2_normalize=True, temperature=tau, learnable_temperature=False))
        metrics = training.train_and_evaluate(data.train, data.eval, data.catalog,
                                              data.pool_uri, variant).metrics
        rows.append({"temperature": tau, **{key: metrics[key] for key in SWEEP_METRICS}})
    return rows


def tune_temperature(config: PipelineConfig, model_dir: Optional[str], sample: int,
                     temperatures: Optional[Sequence[float]], out: Optional[pathlib.Path]
                     ) -> dict[str, Any]:
    """Measures, suggests, optionally sweeps; prints a summary and returns the report."""
    from components.trainer import temperature  # pylint: disable=import-outside-toplevel
    if model_dir and not os.path.isdir(model_dir):
        raise TwoTowerError(f"--model {model_dir} is not a folder; pass a Trainer export "
                            "(the Model artifact's Format-Serving folder)")
    data = latest_run_data(config)
    queries, items = unnormalised_embeddings(data, config, model_dir, sample)
    ranges = temperature.dot_product_ranges(queries, items)
    suggested = temperature.suggest_temperature(ranges["cosine"]["extent"])
    report: dict[str, Any] = {"queries": len(queries), "items": len(items), **ranges,
                              "suggested_temperature": suggested,
                              "target_logit": temperature.TARGET_LOGIT}
    raw, cosine = ranges["raw"], ranges["cosine"]
    print(f"raw dot products over {len(queries)} queries x {len(items)} items: "
          f"[{raw['min']:.3g}, {raw['max']:.3g}] (99.9% within ±{raw['extent']:.3g})")
    print(f"cosines: [{cosine['min']:.3f}, {cosine['max']:.3f}] (99.9% within "
          f"±{cosine['extent']:.3f})")
    print(f"suggested model.temperature: {suggested:.3f} (scaled cosines reach "
          f"±{cosine['extent'] / suggested:.1f}; target ±{temperature.TARGET_LOGIT:g}, "
          f"clipped to [{temperature.MIN_SUGGESTED}, {temperature.MAX_SUGGESTED}])")
    if temperatures:
        report["sweep"] = sweep(data, config, temperatures)
        print("temperature  " + "  ".join(SWEEP_METRICS))
        for row in report["sweep"]:
            print(f"{row['temperature']:<11g}  " + "  ".join(
                f"{row[key]:<{len(key)}.4f}" for key in SWEEP_METRICS))
        best = max(report["sweep"], key=lambda row: row["filtered_recall_at_100"])
        report["best_temperature"] = best["temperature"]
        print(f"best by filtered recall@100: {best['temperature']:g}")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}")
    return report


def _log(message: str) -> None:
    print(f"[tune-temperature] {message}", file=sys.stderr, flush=True)
