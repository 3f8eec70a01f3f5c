"""The commands built on benchmarks/: `twotower bench NAME` (each module imported only when
named, the others listed by name, so the CLI starts without their dependencies) and
`twotower tune`, which scores trials with the benchmarks' evaluation protocols."""
from __future__ import annotations

import argparse
import importlib
from typing import Sequence


def cmd_bench(args: argparse.Namespace) -> None:
    args.bench_main(args)


BENCHMARKS = (
    ("pool", "NegativePoolBuilder wall time and peak memory"),
    ("quality", "retrieval quality on MovieLens-100K, three protocols, reference rows and "
                "ablations"),
    ("serving", "model server loaded from other processes (h2load, Python client), batching "
                "off and on, hot swap"),
    ("index", "ScaNN vs exact search vs FAISS on 1M x 64"),
    ("scale", "the whole local pipeline on 1M and 10M synthetic interactions: wall time and "
              "memory per component"),
    ("increments", "nightly runs over data in spans: per-span ingestion and pipeline time and "
                   "memory, and one run over the same data as a single file"),
    ("span_quality", "warm-started nightly runs over MovieLens weeks against a full retrain of "
                     "the same window, the TFRS tutorial and MostPop"),
    ("repeat_ceiling", "learned repeat rankers against the decayed P-TopFreq rule on "
                       "repeat-purchase data (validation split only)"),
    ("cli", "how long each `twotower` command takes to start"),
    ("multi_worker", "the Trainer on one process and on N worker processes (TF_CONFIG): "
                     "quality at the same global batch"),
)


def add_bench_commands(commands: argparse._SubParsersAction, argv: Sequence[str]) -> None:
    """`twotower bench NAME`: only the benchmark `argv` names is imported (the others are
    listed by name), so the CLI starts without importing every benchmark's dependencies."""
    bench = commands.add_parser("bench", help="run a benchmark; writes reports/<name>.json")
    names = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    wanted = argv[1] if len(argv) > 1 and argv[0] == "bench" else None
    for name, help_text in BENCHMARKS:
        if name != wanted:
            names.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(f"benchmarks.{name}")
        parser = names.add_parser(name, help=help_text, description=module.__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(parser)
        parser.set_defaults(handler=cmd_bench, bench_main=module.main_from_args)


def add_tune_command(commands: argparse._SubParsersAction, argv: Sequence[str]) -> None:
    """`twotower tune`: benchmarks/tune.py, imported only when `argv` names it."""
    help_text = ("choose a config's temperature, popularity prior and history settings on a "
                 "validation split; writes the tuned config")
    if not argv or argv[0] != "tune":
        commands.add_parser("tune", help=help_text)
        return
    module = importlib.import_module("benchmarks.tune")
    parser = commands.add_parser("tune", help=help_text, description=module.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    parser.set_defaults(handler=cmd_bench, bench_main=module.main_from_args)


def add_commands(commands: argparse._SubParsersAction, argv: Sequence[str]) -> None:
    """`twotower tune` and `twotower bench NAME`, given the process's arguments."""
    add_tune_command(commands, argv)
    add_bench_commands(commands, argv)
