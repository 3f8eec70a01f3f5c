"""`twotower bench index`: ScaNN against exact search and FAISS.

Data sets:
  * clustered: 1M x 64 unit vectors around 1,000 centres, Gaussian noise 0.6 (easy);
  * hard: the same around 10,000 centres, noise 1.5 (overlapping clusters); queries of both
    are drawn like the database but are not in it;
  * trained (`--trained CONFIG`): the catalogue embeddings of the newest model the
    pipeline of CONFIG trained, queried with its query tower's embeddings of the first
    eval interactions: the vectors the served index holds.
Methods, one query at a time on one thread, recall@10 against exact top-10, each swept from
its cheapest setting:
  * exact: brute force (FAISS IndexFlatIP, one thread);
  * scann: the IndexBuilder's tree and quantisation for this catalogue size
    (components/index_builder/scann_settings.derive) at its default operating point, then,
    whatever the default reached, leaves searched doubled from 1 (reordering
    max(100, 2 x leaves));
  * faiss_ivf: IndexIVFFlat (√n lists, inner product), nprobe doubled from 1 until every
    list is probed (exhaustive);
  * faiss_hnsw: IndexHNSWFlat (M 32), efSearch doubled from k (10, its least) up to 16384.
Each sweep stops at the first operating point with recall@10 ≥ 0.99. The report's `best`
and notes give each method's best queries/s at recall@10 0.90, 0.95 and 0.99. Writes
reports/index.json (docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from benchmarks import common
from twotower import config as config_lib
from twotower.config import IndexConfig
from twotower.errors import TwoTowerError

DATASETS = {"clustered": (1_000, 0.6), "hard": (10_000, 1.5)}
TARGETS = (0.90, 0.95, 0.99)
TARGET_RECALL = 0.95
STOP_RECALL = 0.99
K = 10
SCANN_MIN_REORDER = 100
METHODS = ("exact", "scann", "faiss_ivf", "faiss_hnsw")
# Doubling sweeps from each method's cheapest setting until recall@10 >= STOP_RECALL: IVF's
# nprobe from 1 up to every list (exhaustive, so it always reaches the target), HNSW's
# efSearch from k (FAISS's least) up to HNSW_MAX_EF.
IVF_START, HNSW_START, HNSW_MAX_EF = 1, K, 16384


def doubling(start: int, stop: int) -> list[int]:
    """start, 2·start, ... up to and including stop (stop itself last)."""
    values = []
    while start < stop:
        values.append(start)
        start *= 2
    return values + [stop]


def faiss_module():
    """The faiss package, or an error naming the install command."""
    try:
        import faiss  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        raise TwoTowerError("twotower bench index needs faiss-cpu: run `make venv` (installs the "
                            "[bench] extra) or `.venv/bin/pip install -c constraints.txt -e "
                            "'.[bench]'`") from e
    return faiss


def scann_sweep(num_leaves: int) -> list[tuple[int, int]]:
    """(leaves searched, reordering depth) from the cheapest: leaves doubled from 1 to all,
    reordering max(SCANN_MIN_REORDER, 2 x leaves)."""
    return [(leaves, max(SCANN_MIN_REORDER, 2 * leaves)) for leaves in doubling(1, num_leaves)]


def trained_dataset(config_path: str, queries: int) -> tuple[str, np.ndarray, np.ndarray,
                                                             dict[str, Any]]:
    """The newest trained model of a pipeline: (name, catalogue embeddings [N, D], query
    embeddings of the first `queries` eval rows [Q, D], what was read).

    Raises:
      TwoTowerError: if that pipeline has not trained a model yet.
    """
    from tfx.utils import path_utils  # pylint: disable=import-outside-toplevel
    from pipeline import artifacts, tune  # pylint: disable=import-outside-toplevel
    config = config_lib.load(config_path)
    model = artifacts.latest_output_uri(config, "Trainer", "Model")
    if model is None:
        raise TwoTowerError(f"no trained model under {config.orchestration.pipeline_root}: run "
                            f"`twotower run --config {config_path}` first")
    model_dir = path_utils.serving_model_path(model)
    query_vectors, items = tune.trained_embeddings(tune.latest_run_data(config), model_dir,
                                                   queries)
    source = {"config": config_path, "model": model_dir, "items": len(items),
              "dim": int(items.shape[1]), "queries": len(query_vectors)}
    return (config.orchestration.pipeline_name, items.astype(np.float32),
            query_vectors.astype(np.float32), source)


def make_dataset(name: str, rows: int, dim: int, queries: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm database [rows, dim] and queries [queries, dim] around shared centres."""
    centres, noise = DATASETS[name]
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim)).astype(np.float32)

    def draw(count: int) -> np.ndarray:
        points = means[rng.integers(0, centres, count)]
        points = points + noise * rng.normal(size=(count, dim)).astype(np.float32)
        return points / np.linalg.norm(points, axis=1, keepdims=True)
    return draw(rows), draw(queries)


def exact_top_k(database: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    """[Q, k] indices of the largest inner products (ground truth)."""
    result = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), 256):
        scores = queries[start:start + 256] @ database.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        result[start:start + 256] = np.take_along_axis(top, order, axis=1)
    return result


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t)
                          for f, t in zip(found, truth)]))


def measure(search_one: Callable[[np.ndarray], np.ndarray], queries: np.ndarray,
            truth: np.ndarray, min_seconds: float = 2.0) -> dict[str, float]:
    """recall@10 over all queries, and queries/s of one-at-a-time calls."""
    found = np.stack([np.asarray(search_one(query))[:K] for query in queries])
    started, calls = time.perf_counter(), 0
    while time.perf_counter() - started < min_seconds or calls < 100:
        search_one(queries[calls % len(queries)])
        calls += 1
    return {"recall_at_10": round(recall(found, truth), 4),
            "qps": round(calls / (time.perf_counter() - started), 1)}


def _exact(database: np.ndarray, queries: np.ndarray, truth: np.ndarray
           ) -> Iterator[dict[str, Any]]:
    """FAISS's flat inner-product index on one thread: the fastest exact search at hand
    (numpy's matmul + argpartition is about 4x slower here), so ratios are not inflated."""
    faiss = faiss_module()
    index = faiss.IndexFlatIP(database.shape[1])
    index.add(database)
    faiss.omp_set_num_threads(1)
    row = measure(lambda q: index.search(q[np.newaxis], K)[1][0], queries, truth,
                  min_seconds=5.0)
    faiss.omp_set_num_threads(2)
    yield {"name": "exact", "params": {"index": "faiss IndexFlatIP"}, **row}


def _scann(database: np.ndarray, queries: np.ndarray, truth: np.ndarray
           ) -> Iterator[dict[str, Any]]:
    from scann.scann_ops.py import scann_ops_pybind  # pylint: disable=import-outside-toplevel
    from components.index_builder import scann_settings  # pylint: disable=import-outside-toplevel
    settings = scann_settings.derive(len(database), IndexConfig(k=K))
    started = time.perf_counter()
    if settings.brute_force:  # what the IndexBuilder serves below index.brute_force_below
        searcher = scann_ops_pybind.builder(database, K, "dot_product").score_brute_force().build()
        build_s = round(time.perf_counter() - started, 1)
        yield {"name": "scann", "params": {"brute_force": True, "default": True},
               "build_s": build_s, **measure(lambda q: searcher.search(
                   q, final_num_neighbors=K)[0], queries, truth)}
        return
    searcher = (scann_ops_pybind.builder(database, K, "dot_product")
                .tree(num_leaves=settings.num_leaves,
                      num_leaves_to_search=settings.num_leaves_to_search,
                      training_sample_size=min(len(database), 250_000))
                .score_ah(scann_settings.DIMENSIONS_PER_BLOCK, anisotropic_quantization_threshold=
                          settings.anisotropic_quantization_threshold)
                .reorder(settings.reorder).build())
    build_s = round(time.perf_counter() - started, 1)
    points = [(settings.num_leaves_to_search, settings.reorder)] + scann_sweep(
        settings.num_leaves)
    for leaves, reorder in dict.fromkeys(points):
        row = measure(lambda q, l=leaves, r=reorder: searcher.search(
            q, final_num_neighbors=K, pre_reorder_num_neighbors=r, leaves_to_search=l)[0],
            queries, truth)
        yield {"name": "scann", "params": {"num_leaves": settings.num_leaves,
                                           "leaves_to_search": leaves, "reorder": reorder,
                                           "default": (leaves, reorder) == points[0]},
               "build_s": build_s, **row}
        if row["recall_at_10"] >= STOP_RECALL and (leaves, reorder) != points[0]:
            return


def _faiss(kind: str, database: np.ndarray, queries: np.ndarray, truth: np.ndarray
           ) -> Iterator[dict[str, Any]]:
    faiss = faiss_module()
    dim = database.shape[1]
    started = time.perf_counter()
    if kind == "faiss_ivf":
        lists = int(round(np.sqrt(len(database))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(database[np.random.default_rng(0).choice(len(database), min(
            len(database), 100 * lists), replace=False)])
        index.add(database)
        sweep, knob, fixed = doubling(IVF_START, lists), "nprobe", {"nlist": lists}
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
        index.add(database)
        sweep, knob, fixed = (doubling(HNSW_START, HNSW_MAX_EF), "efSearch",
                              {"M": 32, "efConstruction": 40})
    build_s = round(time.perf_counter() - started, 1)
    faiss.omp_set_num_threads(1)
    for value in sweep:
        if kind == "faiss_ivf":
            index.nprobe = value
        else:
            index.hnsw.efSearch = value
        row = measure(lambda q: index.search(q[np.newaxis], K)[1][0], queries, truth)
        yield {"name": kind, "params": {**fixed, knob: value}, "build_s": build_s, **row}
        if row["recall_at_10"] >= STOP_RECALL:
            break
    faiss.omp_set_num_threads(2)


def best_at_target(rows: list[dict[str, Any]], dataset: str, name: str,
                   target: float = TARGET_RECALL) -> Optional[dict]:
    """The fastest operating point of one method with recall@10 ≥ target, if any."""
    hits = [r for r in rows if r["dataset"] == dataset and r["name"] == name
            and r["recall_at_10"] >= target]
    return max(hits, key=lambda r: r["qps"]) if hits else None


def best_table(rows: list[dict[str, Any]], datasets: list[str]) -> dict[str, Any]:
    """{dataset: {target: {method: best q/s at recall@10 ≥ target, or None}}}."""
    return {dataset: {f"{target:.2f}": {
        name: (best["qps"] if (best := best_at_target(rows, dataset, name, target)) else None)
        for name in METHODS if name != "exact"} for target in TARGETS} for dataset in datasets}


def _notes(rows: list[dict[str, Any]], datasets: list[str]) -> str:
    parts = ["Queries one at a time on one thread (FAISS omp threads = 1); recall@10 against "
             "exact top-10 over all queries. ScaNN via its pybind searcher (the same C++ "
             "searcher the TF ops in the served SavedModel wrap); its first row is the "
             "IndexBuilder's default settings."]
    for dataset in datasets:
        exact = next(r for r in rows if r["dataset"] == dataset and r["name"] == "exact")
        parts.append(f"{dataset}: exact {exact['qps']:.0f} q/s.")
        for target in TARGETS:
            best = {name: best_at_target(rows, dataset, name, target)
                    for name in METHODS if name != "exact"}
            summary = ", ".join(
                f"{name} {row['qps']:.0f} q/s ({row['qps'] / exact['qps']:.1f}x exact)" if row
                else f"{name} did not reach it" for name, row in best.items())
            parts.append(f"Best at recall@10 >= {target:.2f}: {summary}.")
    return " ".join(parts)


def _data_sets(synthetic: list[str], trained: list[str], rows_count: int, dim: int,
               queries_count: int, seed: int) -> Iterator[tuple[str, np.ndarray, np.ndarray,
                                                                dict[str, Any]]]:
    """(name, database, queries, description) of every data set, made or loaded in turn."""
    for name in synthetic:
        centres, noise = DATASETS[name]
        yield (name, *make_dataset(name, rows_count, dim, queries_count, seed),
               {"centres": centres, "noise": noise, "rows": rows_count, "dim": dim,
                "queries": queries_count})
    for config_path in trained:
        yield trained_dataset(config_path, queries_count)


def run(datasets: list[str], rows_count: int, dim: int, queries_count: int, seed: int,
        methods: list[str], out: Optional[pathlib.Path],
        trained: Sequence[str] = ()) -> pathlib.Path:
    """Measures every method on every data set and writes the report."""
    rows: list[dict[str, Any]] = []
    described: dict[str, Any] = {}
    commit = common.git_commit()
    for dataset, database, queries, description in _data_sets(
            datasets, list(trained), rows_count, dim, queries_count, seed):
        described[dataset] = description
        _log(f"{dataset}: {len(database):,} x {database.shape[1]}, {len(queries):,} queries")
        truth = exact_top_k(database, queries)
        for method in methods:
            _log(f"{dataset}: {method}")
            if method == "exact":
                results = _exact(database, queries, truth)
            elif method == "scann":
                results = _scann(database, queries, truth)
            else:
                results = _faiss(method, database, queries, truth)
            for row in results:
                rows.append({"dataset": dataset, **row})
                _log(f"{dataset} {row['name']} {row['params']}: recall@10 "
                     f"{row['recall_at_10']:.4f}, {row['qps']:.0f} q/s")
    config = {"datasets": described, "seed": seed, "k": K, "methods": methods}
    names = list(described)
    return common.write_report("index", config, rows, _notes(rows, names), out, commit,
                               extra={"best": best_table(rows, names)})


def _log(message: str) -> None:
    print(f"[index] {message}", file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datasets", nargs="*", choices=list(DATASETS), default=list(DATASETS),
                        help="synthetic data sets (none: only --trained ones)")
    parser.add_argument("--trained", nargs="+", default=[], metavar="CONFIG",
                        help="also the embeddings of the newest model each pipeline config "
                             "trained (e.g. configs/movielens.yaml after `make demo`)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="database vectors")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", type=pathlib.Path, help="report path (default reports/index.json)")


def main_from_args(args: argparse.Namespace) -> None:
    path = run(args.datasets, args.rows, args.dim, args.queries, args.seed, args.methods,
               args.out, args.trained)
    print(f"wrote {path}")
