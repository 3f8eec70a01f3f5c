"""The `twotower` command.

    twotower data movielens --out data/movielens       # real data (MovieLens-100K)
    twotower data completejourney|instacart --out data/NAME [--sample N]  # grocery purchases
    twotower data synthetic --users 1000 --items 500 --interactions 100000 --out data/syn
    twotower data split-spans --interactions data/movielens/interactions.csv --every week \
        --copy data/movielens/items.csv --out data/movielens-weekly
    twotower schema init --interactions F --items F [--users F] --out DIR  # propose a contract
    twotower config [--config FILE] [--set section.field=value ...]   # effective config
    twotower run [--config FILE] [--set section.field=value ...]      # run the pipeline
    twotower tune-temperature [--config FILE] [--sweep]  # suggest model.temperature
    twotower tune --config FILE [--out FILE]  # choose knobs on a validation split
    twotower compile airflow --out DAGS_DIR | kubeflow --out spec.json [--config FILE]
    twotower serve --model_base_path serving_models/twotower   # TF Serving's gRPC + REST API
    twotower query --user-features user_id=1 age=24 [--history 50 181] --k 10  # ask a server
    twotower bench pool|quality|index|serving|scale|increments|span_quality|multi_worker|repeat_ceiling|cli  # reports/

Errors that name a problem (bad config, bad data, failed validation) are printed as one
readable message with exit code 2; the full log of a run is in <pipeline_root>/logs/.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import sys
import time
import warnings
from typing import Callable, Optional, Sequence

# TensorFlow's C++ start-up noise (duplicate CUDA factory registrations) is hidden unless
# --verbose is given; it must be set before TensorFlow is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if "--verbose" in sys.argv else "3")
warnings.filterwarnings("ignore", category=FutureWarning)

from pipeline import cli_bench, cli_data  # pylint: disable=wrong-import-position
from serving import flags as serving_flags  # pylint: disable=wrong-import-position
from twotower import config as config_lib  # pylint: disable=wrong-import-position
from twotower import contract, keys, paths  # pylint: disable=wrong-import-position
from twotower.errors import TwoTowerError  # pylint: disable=wrong-import-position

EXIT_USER_ERROR = 2
DEFAULT_QUERY_K = 10


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file (defaults apply to missing fields)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.FIELD=VALUE",
                        help="override one config field, e.g. --set data.split=hash "
                             "(repeatable; VALUE in YAML syntax)")


def _load_config(args: argparse.Namespace) -> config_lib.PipelineConfig:
    return config_lib.load(args.config, tuple(args.overrides))


def cmd_config(args: argparse.Namespace) -> None:
    print(config_lib.to_yaml(_load_config(args)), end="")


POOL_SUMMARY = (("catalog_size", "catalogue items"), ("items_never_seen", "never seen in training"),
                ("train_interactions", "train interactions"),
                ("interactions_with_unknown_item", "with an item missing from the catalogue"),
                ("users", "users"), ("user_vocab_size", "user vocabulary"),
                ("item_vocab_size", "item vocabulary"), ("pool_size", "pool items"))


def _print_run_summary(config: config_lib.PipelineConfig, gates: Sequence[str]) -> None:
    from components.ingestion.component import DataValidationReport  # pylint: disable=import-outside-toplevel
    from components.negative_pool import artifact_io  # pylint: disable=import-outside-toplevel
    from components.negative_pool.component import NegativePool  # pylint: disable=import-outside-toplevel
    from pipeline import artifacts  # pylint: disable=import-outside-toplevel

    for gate in gates:
        uri = artifacts.latest_output_uri(config, gate, DataValidationReport.TYPE_NAME)
        if uri is None:
            continue
        report = json.loads(pathlib.Path(uri, keys.VALIDATION_REPORT_FILE).read_text())
        sizes = ", ".join(f"{split}: {count} examples" for split, count in report["examples"].items())
        print(f"{report['dataset']}: {sizes} (validated, no anomalies)")
    pool_uri = artifacts.latest_output_uri(config, "NegativePoolBuilder", NegativePool.TYPE_NAME)
    if pool_uri is not None:
        stats = artifact_io.read_stats(pool_uri)
        parts = ", ".join(f"{stats[key]} {label}" for key, label in POOL_SUMMARY)
        print(f"negative pool ({stats['settings']['sampler']} sampler): {parts}")
        print(f"  artifact: {pool_uri}")
    model_uri = artifacts.latest_output_uri(config, "Trainer", "Model")
    if model_uri is not None:
        from tfx.utils import path_utils  # pylint: disable=import-outside-toplevel
        from components.trainer import export  # pylint: disable=import-outside-toplevel
        metrics = json.loads(pathlib.Path(path_utils.serving_model_dir(model_uri),
                                          export.METRICS_FILE).read_text())
        recall = ", ".join(f"@{k} {metrics[f'tfrs_recall_at_{k}']:.4f}" for k in (10, 50, 100))
        filtered = ", ".join(f"@{k} {metrics[f'filtered_recall_at_{k}']:.4f}"
                             + _interval(metrics, f"filtered_recall_at_{k}")
                             for k in (10, 50, 100))
        print(f"model: recall (TFRS protocol, seen not removed) {recall}; "
              f"filtered recall {filtered}; filtered NDCG@10 "
              f"{metrics['filtered_ndcg_at_10']:.4f} over "
              f"{int(metrics['eval_interactions'])} eval interactions")
        if "warm_start_known_items" in metrics:
            print(f"  warm start: kept the rows of {int(metrics['warm_start_known_users'])} "
                  f"users and {int(metrics['warm_start_known_items'])} items; "
                  f"{int(metrics['warm_start_new_users'])} users and "
                  f"{int(metrics['warm_start_new_items'])} items are new")
        print(f"  artifact: {model_uri}")
    _print_validation_summary(config)


def _interval(metrics: dict, name: str) -> str:
    """' ±h' (the 95% interval's half-width) for a metric that has one (twotower/config.py
    ValidationConfig)."""
    half = metrics.get(f"{name}_ci95")
    return "" if half is None else f" ±{half:.4f}"


def _print_validation_summary(config: config_lib.PipelineConfig) -> None:
    from pipeline import artifacts  # pylint: disable=import-outside-toplevel

    blessing = artifacts.latest_output_uri(config, "ModelValidator", "ModelBlessing")
    if blessing is None:
        return
    report = json.loads(pathlib.Path(blessing, keys.VALIDATION_METRICS_FILE).read_text())
    metric = report["metric"]
    baseline = (f"latest blessed {report['baseline'][metric]:.4f}" if report["baseline"]
                else "no blessed model yet")
    verdict = "BLESSED" if report["blessed"] else "NOT BLESSED"
    print(f"validation: {verdict}: {metric} {report['candidate'][metric]:.4f} (MostPop "
          f"{report['mostpop'][metric]:.4f}, {baseline}); "
          f"ScaNN recall@{report['index_report']['k']} vs exact "
          f"{report['index_report']['scann_recall']:.4f}")
    print(f"  {metric} with 95% intervals over {int(report['candidate']['eval_interactions'])} "
          f"eval interactions: candidate {report['candidate'][metric]:.4f}"
          f"{_interval(report['candidate'], metric)}, MostPop {report['mostpop'][metric]:.4f}"
          f"{_interval(report['mostpop'], metric)}")
    for check in report["checks"]:
        if not check["passed"]:
            print(f"  failed {check['name']}: {check['message']}")
    for node in ("Pusher", "StockPusher"):
        pushed = artifacts.latest_output(config, node, "PushedModel")
        if pushed is None:
            continue
        if artifacts.custom_property(pushed, "pushed") == 1:
            print(f"pushed: {artifacts.custom_property(pushed, 'pushed_destination')}")
        else:
            print(f"{node}: nothing pushed (the model was not blessed); serving keeps the "
                  "previous version")


def cmd_run(args: argparse.Namespace) -> None:
    config = _load_config(args)
    from pipeline import interrupted, pipeline as pipeline_lib, progress  # pylint: disable=import-outside-toplevel
    from pipeline.runners import local  # pylint: disable=import-outside-toplevel

    built = pipeline_lib.create_pipeline(config)
    log_dir = pathlib.Path(paths.absolute(config.orchestration.pipeline_root)) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"run-{datetime.datetime.now():%Y%m%d-%H%M%S}.log"
    print(f"running {len(built.components)} components; full log: {log_file}", file=sys.stderr)
    progress.configure(len(built.components), str(log_file), verbose=args.verbose)
    started = time.time()
    with interrupted.hold(config) as unfinished:
        for left in unfinished:
            print(f"a previous run was interrupted during {left.node}: removed its "
                  f"{len(left.removed)} unfinished output folder(s); it runs again",
                  file=sys.stderr)
        try:
            local.run(config)
        except Exception as e:
            error = find_user_error(e)
            if error is None:
                raise RuntimeError(f"the run failed: {type(e).__name__}: {e}. Full log: "
                                   f"{log_file}") from e
            raise error from e
    print(f"pipeline finished in {time.time() - started:.0f}s", file=sys.stderr)
    gates = [c.id for c in built.components if c.id.endswith("ValidationGate")]
    _print_run_summary(config, gates)


def find_user_error(error: BaseException) -> Optional[TwoTowerError]:
    """The first TwoTowerError in an exception's cause/context chain, if any."""
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        if isinstance(current, TwoTowerError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def cmd_compile(args: argparse.Namespace) -> None:
    config = _load_config(args)
    if args.orchestrator == "airflow":
        from pipeline.runners import airflow_dag  # pylint: disable=import-outside-toplevel
        dag_file, config_file = airflow_dag.write_dag_file(config, args.out)
        print(f"wrote {dag_file} and {config_file}; copy both into Airflow's dags folder "
              f"(DAG id {config.orchestration.pipeline_name})")
        return
    from pipeline.runners import kubeflow_v2  # pylint: disable=import-outside-toplevel
    spec = kubeflow_v2.compile_spec(config, args.out)
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    print(f"wrote {args.out}: {len(tasks)} tasks on image {config.orchestration.image}; "
          "submit it to Kubeflow Pipelines or Vertex AI Pipelines (README: Schedule)")


def cmd_schema_init(args: argparse.Namespace) -> None:
    from pipeline import schema_init  # pylint: disable=import-outside-toplevel

    name = args.name or pathlib.Path(args.out).name
    print(f"reading up to {args.sample_rows:,} rows of each table", file=sys.stderr)
    decisions = schema_init.init(args.interactions, args.items, args.users, args.out, name,
                                 args.sample_rows, args.item_id, args.user_id, args.time,
                                 args.history, args.time_format, args.no_time,
                                 args.anonymous_users)
    print(schema_init.table(decisions))
    for note in schema_init.split_notes(decisions, args.no_time):
        print(note, file=sys.stderr if note.startswith("warning") else sys.stdout)
    print(f"\nwrote {args.out}/features.yaml, interactions.pbtxt, items.pbtxt and {name}.yaml; "
          f"edit them, then: twotower run --config {os.path.join(args.out, name + '.yaml')}")


def cmd_tune_temperature(args: argparse.Namespace) -> None:
    from pipeline import tune  # pylint: disable=import-outside-toplevel
    sweep = None if args.sweep is None else (args.sweep or list(tune.DEFAULT_SWEEP))
    tune.tune_temperature(_load_config(args), args.model, args.sample, sweep, args.out)


def cmd_serve(args: argparse.Namespace) -> None:
    from serving import server  # pylint: disable=import-outside-toplevel

    server.serve_forever(serving_flags.options_from_args(
        args, _load_config(args).serving, base_path_from_config=bool(args.config)))


def cmd_query(args: argparse.Namespace) -> None:
    from serving import client  # pylint: disable=import-outside-toplevel

    if not args.user_features and not args.history:
        print("warning: no --user-features and no --history: every feature goes as missing, "
              "so this is the answer for an unknown user", file=sys.stderr)

    config = _load_config(args)
    serving_flags.resolve_config_flags(args, config.serving)
    result = client.query(args.host, args.port, args.model_name,
                          client.parse_features(args.user_features), timeout=args.timeout,
                          wait_seconds=args.wait, history=args.history)
    titles = {}
    if args.items:
        titles = client.read_titles(args.items, contract.load(config.data.schema_dir))
    if args.k is not None and args.k > len(result.item_ids):
        raise TwoTowerError(f"--k {args.k}: model {args.model_name} returns {len(result.item_ids)} "
                            "items per query (its index.k); ask for at most that many")
    k = args.k or min(DEFAULT_QUERY_K, len(result.item_ids))
    print(f"model {args.model_name} version {result.version}: top {k}")
    had = set(args.history)
    for rank, (item, score) in enumerate(zip(result.item_ids[:k], result.scores), 1):
        again = "again " if item in had else ""
        print(f"{rank:>3}. {item:<10} {score:8.4f}  {again}{titles.get(item, '')}".rstrip())
    if had:
        print(f"again: in the request's history ({sum(item in had for item in result.item_ids[:k])} "
              f"of {k})")
    if result.unknown_history:
        print(f"history: {result.unknown_history} of {len(args.history)} ids are not in the "
              "model's catalogue (ignored)")


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (argparse turns the ValueError into a usage error)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def build_parser(argv: Optional[Sequence[str]] = None) -> argparse.ArgumentParser:
    """The `twotower` parser; `argv` (default: the process's) names the benchmark whose
    arguments are added (cli_bench.py)."""
    parser = argparse.ArgumentParser(
        prog="twotower", description="Two-tower candidate retrieval pipeline (TFX, TFRS, ScaNN).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cli_data.add_data_commands(commands)

    schema = commands.add_parser("schema", help="propose a data contract from your files")
    schema_commands = schema.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = schema_commands.add_parser(
        "init", help="infer roles and kinds from a sample; write the contract and a config",
        description="Reads a bounded sample of each table, guesses every column's role "
                    "(ids, event time, query or candidate feature, ignored) and kind, and "
                    "writes features.yaml, interactions.pbtxt, items.pbtxt and <name>.yaml "
                    "into --out; prints what it decided and why (pipeline/schema_init.py).")
    init.add_argument("--interactions", required=True, help="interaction log (CSV/Parquet)")
    init.add_argument("--items", required=True, help="item catalogue (CSV/Parquet)")
    init.add_argument("--users", help="user table (its columns found in the log are user "
                                      "attributes)")
    init.add_argument("--out", required=True, help="contract folder to write")
    init.add_argument("--name", help="pipeline and config name (default: the --out folder's)")
    init.add_argument("--sample-rows", type=int, default=100_000,
                      help="rows read from the start of each table (default 100000)")
    init.add_argument("--item-id", help="the item id column, when the guess is wrong")
    init.add_argument("--user-id", help="the user id column, when the guess is wrong")
    init.add_argument("--anonymous-users", action="store_true",
                      help="the log has no user id: declare `users: anonymous`; the query "
                           "tower reads per-event context columns only")
    init.add_argument("--time", help="the event time column, when the guess is wrong")
    init.add_argument("--time-format", metavar="FORMAT",
                      help="how the event time is written, when the guess is wrong: seconds, "
                           "milliseconds, iso8601 or a strptime pattern such as "
                           "'%%d/%%m/%%Y %%H:%%M'")
    init.add_argument("--no-time", action="store_true",
                      help="declare no event time (a random train/eval split)")
    init.add_argument("--history", type=int, default=0, metavar="N",
                      help="also declare a history feature: each event's user's last N items "
                           "before it, built by ingestion (default: none)")
    init.set_defaults(handler=cmd_schema_init)

    show = commands.add_parser("config", help="print the effective config as YAML")
    _add_config_args(show)
    show.set_defaults(handler=cmd_config)

    run = commands.add_parser("run", help="run the pipeline locally (LocalDagRunner)",
                              description="Run the TFX pipeline with LocalDagRunner and SQLite "
                                          "ML Metadata under orchestration.pipeline_root. "
                                          "Unchanged components are re-used from cache.")
    _add_config_args(run)
    run.add_argument("--verbose", action="store_true", help="print the full log to stderr")
    run.set_defaults(handler=cmd_run)
    build = commands.add_parser(
        "compile", help="write the pipeline for a scheduler: an Airflow DAG or a Kubeflow "
                        "Pipelines v2 spec",
        description="airflow: writes <pipeline_name>_dag.py (TFX AirflowDagRunner) and the "
                    "config it reads into --out, a dags folder. kubeflow: writes the "
                    "PipelineJob JSON (TFX KubeflowV2DagRunner) to --out; paths in the "
                    "config must be URIs the pods can read.")
    build.add_argument("orchestrator", choices=("airflow", "kubeflow"))
    _add_config_args(build)
    build.add_argument("--out", required=True,
                       help="airflow: the dags folder; kubeflow: the spec file (.json)")
    build.set_defaults(handler=cmd_compile)
    tune = commands.add_parser(
        "tune-temperature", help="suggest model.temperature; --sweep trains at several",
        description="Measure the range of dot products of an unnormalised model (trained "
                    "now on the latest run's data, or --model) on a sample of eval queries "
                    "and suggest the temperature that scales cosines to about ±14, clipped "
                    "to [0.05, 0.2]. Needs a previous `twotower run` with the same config.")
    _add_config_args(tune)
    tune.add_argument("--model", help="a Trainer export of an unnormalised model "
                                      "(Format-Serving folder) instead of training one")
    tune.add_argument("--sample", type=int, default=2000, help="eval queries to sample")
    tune.add_argument("--sweep", type=float, nargs="*", metavar="TAU",
                      help="also train at these temperatures (default 0.05 0.07 0.1 0.14 0.2) "
                           "and report recall")
    tune.add_argument("--out", type=pathlib.Path, help="write the report as JSON")
    tune.set_defaults(handler=cmd_tune_temperature)
    serve = commands.add_parser("serve", help="serve pushed models over TF Serving's gRPC and "
                                              "REST APIs", description=serving_flags.DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    serving_flags.add_arguments(serve)
    _add_config_args(serve)
    serve.set_defaults(handler=cmd_serve)
    ask = commands.add_parser("query", help="top-K items for one user from a model server "
                                            "(twotower serve or a real TF Serving)",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ask.add_argument("--user-features", nargs="+", default=[], metavar="NAME=VALUE",
                     help="e.g. user_id=1 age=24 gender=M occupation=technician zip=85711")
    ask.add_argument("--history", nargs="+", default=[], metavar="ITEM",
                     help="the user's recent item ids, oldest first, for a model with a "
                          "history feature")
    ask.add_argument("--k", type=_positive_int,
                     help=f"items to print, at most what the model returns (its index.k); "
                          f"default {DEFAULT_QUERY_K} or all it returns if fewer")
    serving_flags.add_config_flags(ask, ("--host", "--port", "--model_name"))
    ask.add_argument("--items", help="items table (CSV) to print item features from (the "
                                     "contract of --config names its columns)")
    _add_config_args(ask)
    ask.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    ask.add_argument("--wait", type=float, default=0.0,
                     help="retry for this many seconds while the server starts")
    ask.set_defaults(handler=cmd_query)
    cli_bench.add_commands(commands, sys.argv[1:] if argv is None else argv)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser(argv).parse_args(argv)
    handler: Callable[[argparse.Namespace], None] = args.handler
    try:
        handler(args)
    except TwoTowerError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
