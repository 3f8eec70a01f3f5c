"""`twotower bench pool`: NegativePoolBuilder wall time and peak memory at scale.

For each size, synthetic interactions (and the 1M-item catalogue) are written as
ExampleGen-style tf.Example splits, then the NegativePoolBuilder executor runs in a fresh
process with Beam's DirectRunner (multi-processing with `--workers` N > 1, else in one
process; several counts run side by side on the same data); the wall time and the peak
resident memory of that process and all its Beam workers are recorded. With `--against REV`
the builder of an older commit (unpacked with git archive) runs on the same data right
after each current run, so the speed-up is a ratio from one run. Reports reports/pool.json
(docs/benchmarks.md): one row per size, worker count and code, plus the ratios.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time
from typing import Optional, Sequence

from benchmarks import common
from pipeline.data import synthetic
from twotower import config as config_lib, contract

DEFAULT_SIZES = (1_000_000, 10_000_000)
CHUNK = 250_000  # rows per generated chunk and per TFRecord file


def prepare(interactions: int, users: int, items: int, seed: int,
            workdir: pathlib.Path) -> dict[str, float]:
    """Writes Examples folders `interactions/Split-train` and `items/Split-catalog`."""
    from benchmarks import example_files  # pylint: disable=import-outside-toplevel (imports TF)
    started = time.time()
    spec = synthetic.SyntheticSpec(users=users, items=items, interactions=interactions, seed=seed)
    world, rng, user_table, item_table = synthetic.build(spec)
    example_files.write_split([item_table], workdir / "items", "catalog")
    chunks = synthetic.interaction_chunks(world, spec, rng, user_table, item_table, CHUNK)
    example_files.write_split(chunks, workdir / "interactions", "train")
    return {"prepare_s": round(time.time() - started, 1)}


def execute(interactions_dir: str, items_dir: str, out_dir: str, workers: int) -> None:
    """Runs the NegativePoolBuilder executor on prepared folders (in this process)."""
    from benchmarks import example_files  # pylint: disable=import-outside-toplevel

    example_files.build_pool_artifact(pathlib.Path(interactions_dir), pathlib.Path(items_dir),
                                      pathlib.Path(out_dir), config_lib.PoolConfig(),
                                      contract.load(config_lib.DEFAULT_SCHEMA_DIR),
                                      common.direct_runner_args(workers))


def run(sizes: Sequence[int], users: int, items: int, workers: Sequence[int], seed: int,
        workdir: Optional[pathlib.Path], out: Optional[pathlib.Path],
        against: Optional[str] = None) -> pathlib.Path:
    """Measures every size with every worker count (on the same data), the older
    revision `against` after each, and writes the report."""
    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        older = common.code_at(against, pathlib.Path(tmp) / "older") if against else None
        for size in sizes:
            folder = pathlib.Path(tmp) / str(size)
            print(f"[pool] preparing {size:,} interactions, {users:,} users, {items:,} items",
                  file=sys.stderr)
            prepared = prepare(size, users, items, seed, folder)
            for count in workers:
                rows.append(measure(folder, size, users, items, count, prepared))
                if older:
                    rows.append(measure(folder, size, users, items, count, prepared, older))
    return common.write_report("pool", {"sizes": list(sizes), "users": users, "items": items,
                                        "workers": list(workers), "seed": seed,
                                        "against": older[0] if older else None,
                                        "runner": "DirectRunner"}, rows, notes(rows), out)


def measure(folder: pathlib.Path, size: int, users: int, items: int, workers: int,
            prepared: dict[str, float],
            older: Optional[tuple[str, pathlib.Path]] = None) -> dict[str, object]:
    """One executor run on a prepared folder in a fresh process (with the older code when
    given); its report row."""
    code = older[0][:12] if older else "current"
    print(f"[pool] building the pool ({workers} Beam worker processes, {code} code)",
          file=sys.stderr)
    out = folder / f"pool-{workers}-{code}"
    out.mkdir()
    measured = common.run_measured(
        [sys.executable, "-m", "benchmarks.pool", "execute", str(folder / "interactions"),
         str(folder / "items"), str(out), str(workers)],
        folder / f"execute-{workers}-{code}.log", code=older[1] if older else None)
    stats = json.loads((out / "stats.json").read_text())
    row = {"name": "negative_pool", "interactions": size, "users": users, "items": items,
           "workers": workers, "code": code, **measured, **prepared,
           "interactions_per_s": round(size / measured["wall_s"]),
           "pool_size": stats["pool_size"], "catalog_size": stats["catalog_size"]}
    print(f"[pool] {json.dumps(row)}", file=sys.stderr)
    return row


def notes(rows: Sequence[dict]) -> str:
    """The report's notes: what was measured, growth with the data and with the workers."""
    text = ("DirectRunner: multi_processing with N worker processes, or in_memory (one "
            "process) for 1; wall_s and peak_rss_mb cover the executor process and all Beam "
            "worker processes (peak of their summed RSS); preparing the tf.Example input is "
            "not included.")
    older = [row for row in rows if row["code"] != "current"]
    rows = [row for row in rows if row["code"] == "current"]
    first = rows[0]["workers"]
    same = [row for row in rows if row["workers"] == first]
    if len(same) >= 2:
        growth = same[-1]["wall_s"] / same[0]["wall_s"]
        text += (f" With {first} workers wall time grows {growth:.2f}x from "
                 f"{same[0]['interactions']:,} to {same[-1]['interactions']:,} interactions "
                 f"({same[-1]['interactions'] / same[0]['interactions']:.0f}x the data).")
    for row in rows:
        if row["workers"] != first:
            base = next(other for other in same if other["interactions"] == row["interactions"])
            text += (f" At {row['interactions']:,}, {row['workers']} workers against {first}: "
                     f"{row['wall_s'] / base['wall_s']:.2f}x the time, "
                     f"{row['peak_rss_mb'] / base['peak_rss_mb']:.2f}x the peak memory.")
    for row in older:
        current = next(other for other in rows if other["interactions"] == row["interactions"]
                       and other["workers"] == row["workers"])
        text += (f" At {row['interactions']:,} with {row['workers']} worker(s), the current "
                 f"builder takes {current['wall_s']} s against {row['wall_s']} s for commit "
                 f"{row['code']} on the same data ({row['wall_s'] / current['wall_s']:.2f}x "
                 f"faster), peak memory {current['peak_rss_mb']} MB against "
                 f"{row['peak_rss_mb']} MB.")
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        help="interaction counts to measure")
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[2],
                        help="DirectRunner worker processes (1: in one process); several "
                             "counts are measured side by side on the same data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=pathlib.Path,
                        help="where to put temporary data (default: system temp)")
    parser.add_argument("--out", type=pathlib.Path, help="report path (default reports/pool.json)")
    parser.add_argument("--against", metavar="REV",
                        help="also run the builder of this git commit on the same data, "
                             "after each current run (needs a git clone)")


def main_from_args(args: argparse.Namespace) -> None:
    path = run(args.sizes, args.users, args.items, args.workers, args.seed, args.workdir,
               args.out, args.against)
    print(f"wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "execute":
        execute(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit("usage: twotower bench pool [--sizes N ...]")
