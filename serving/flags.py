"""Flags and options of `twotower serve` (kept free of TensorFlow imports so the CLI starts
fast).

Flags follow tensorflow_model_server's where one exists (--port, --rest_api_port,
--model_name, --model_base_path, --model_config_file, --file_system_poll_wait_seconds, --enable_batching,
--batching_parameters_file with TF Serving's text format: serving/batching_params.py);
--host, --max_batch_size, --max_request_bytes, --grpc_threads, --grpc_frontend and
--ssl_cert_file/--ssl_key_file are ours (TF Serving takes TLS settings as an
--ssl_config_file proto, which tensorflow-serving-api does not ship).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Optional

from serving import batching_params
from serving.limits import Limits
from twotower.config import ServingConfig
from twotower.errors import TwoTowerError


@dataclasses.dataclass
class ServerOptions:
    """Everything `serve` needs; built from flags or by tests (defaults: ServingConfig's)."""

    models: dict[str, str]
    host: str = ServingConfig.host
    port: int = ServingConfig.grpc_port
    rest_api_port: int = ServingConfig.rest_port
    poll_seconds: float = ServingConfig.poll_seconds
    max_batch_size: int = ServingConfig.max_batch_size
    max_request_bytes: int = 4 << 20
    grpc_threads: int = 16
    ssl_cert_file: Optional[str] = None
    ssl_key_file: Optional[str] = None
    batching: Optional[batching_params.BatchingParameters] = None
    grpc_frontend: str = "grpcio"
    limits: Limits = Limits()


DESCRIPTION = (
    "Serves the newest version under each model's base path over TF Serving's gRPC API "
    "(--port) and REST API (--rest_api_port), loads new versions as the Pusher writes them "
    "and keeps the old one serving if a new one fails to load. Flag names follow "
    "tensorflow_model_server's where one exists; README 'Serve and query' shows a session.")

# --grpc_frontend: grpc.aio (the default: compression, keepalive enforcement) or
# serving/http2.py, HTTP/2 on asyncio with python-hyper's h2. Both pass the hostile-client
# suite (serving/tests/); their throughput is within noise of each other (docs/benchmarks.md,
# "Serving under load").
GRPC_FRONTENDS = ("asyncio", "grpcio")


def models_from_flags(model_name: Optional[str], model_base_path: Optional[str],
                      model_config_file: Optional[str]) -> dict[str, str]:
    """Model name -> base path from --model_name/--model_base_path or a ModelServerConfig.

    Raises:
      TwoTowerError: naming the missing or conflicting flags, or an unreadable config file.
    """
    if model_config_file:
        if model_base_path:
            raise TwoTowerError("pass either --model_config_file or --model_base_path, not both")
        from google.protobuf import text_format  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.config import model_server_config_pb2  # pylint: disable=import-outside-toplevel
        try:
            with open(model_config_file) as f:
                config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
        except (OSError, text_format.ParseError) as e:
            raise TwoTowerError(f"--model_config_file {model_config_file}: {e}") from e
        models = {entry.name: entry.base_path for entry in config.model_config_list.config}
        if not models:
            raise TwoTowerError(f"--model_config_file {model_config_file} lists no models")
        return models
    if not model_base_path:
        raise TwoTowerError("pass --model_base_path (and --model_name) or --model_config_file")
    return {model_name or "default": os.path.abspath(model_base_path)}


# (flag, Limits field, type, help): serving/limits.py says what each protects against.
_LIMIT_FLAGS = (
    ("--max_connections", "max_connections", int,
     "open connections on both ports together; more are refused"),
    ("--handshake_timeout_seconds", "handshake_timeout_s", float,
     "time for TLS and the HTTP/2 preface of a new connection"),
    ("--request_timeout_seconds", "request_timeout_s", float,
     "time for a REST request's head and body to arrive"),
    ("--idle_timeout_seconds", "idle_timeout_s", float,
     "a connection with no call running and no request for this long is closed"),
    ("--max_concurrent_streams", "max_concurrent_streams", int,
     "calls in flight per HTTP/2 connection"),
    ("--connection_window_bytes", "connection_window_bytes", int,
     "request bytes one HTTP/2 connection may hold unanswered (asyncio front end)"),
    ("--max_resets_per_second", "max_resets_per_second", float,
     "stream resets a second per HTTP/2 connection before GOAWAY ENHANCE_YOUR_CALM "
     "(asyncio front end)"),
    ("--write_buffer_bytes", "write_buffer_bytes", int,
     "unread response bytes per connection before the server stops reading from it"),
)


# Flags whose default is a field of the config's `serving` section (twotower/config.py
# ServingConfig): the flag wins, then the --config file's value, then the field's default.
CONFIG_FLAGS = (("--port", "port", "grpc_port", int, "gRPC port"),
                ("--rest_api_port", "rest_api_port", "rest_port", int, "REST port"),
                ("--host", "host", "host", str, "the server's address"),
                ("--model_name", "model_name", "model_name", str, "model name"),
                ("--file_system_poll_wait_seconds", "file_system_poll_wait_seconds",
                 "poll_seconds", float, "seconds between looks for new versions"),
                ("--max_batch_size", "max_batch_size", "max_batch_size", int,
                 "rows per request"))


def add_config_flags(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    """Adds the CONFIG_FLAGS named (e.g. `--port`), each defaulting to ServingConfig."""
    for flag, dest, field, kind, text in CONFIG_FLAGS:
        if flag in names:
            parser.add_argument(flag, dest=dest, type=kind, default=argparse.SUPPRESS,
                                help=f"{text} (default: the config's serving.{field}, "
                                     f"{getattr(ServingConfig, field)})")


def resolve_config_flags(args: argparse.Namespace, serving: ServingConfig) -> None:
    """Fills every CONFIG_FLAGS value left unset from `serving` (the loaded config's)."""
    for _, dest, field, _, _ in CONFIG_FLAGS:
        if getattr(args, dest, None) is None:
            setattr(args, dest, getattr(serving, field))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser, tuple(flag for flag, *_ in CONFIG_FLAGS))
    parser.add_argument("--model_base_path", help="folder of numeric version folders "
                                                  "(default with --config: its "
                                                  "serving.base_path/serving.model_name)")
    parser.add_argument("--model_config_file", help="ModelServerConfig text proto "
                                                    "(model_config_list) for several models")
    parser.add_argument("--wait_for_models", action="store_true",
                        help="start even if a model's base path does not exist yet, and "
                             "serve it once a version arrives (default: that is an error)")
    parser.add_argument("--max_request_bytes", type=int, default=4 << 20)
    parser.add_argument("--grpc_threads", type=int, default=16,
                        help="concurrent gRPC requests")
    parser.add_argument("--grpc_frontend", choices=GRPC_FRONTENDS,
                        default=ServerOptions.grpc_frontend,
                        help="the gRPC port's server: grpcio (grpc.aio, the default: compressed "
                             "messages, keepalive enforcement) or asyncio (unary gRPC over "
                             "HTTP/2 framing on the event loop, serving/http2.py; less CPU "
                             "per call)")
    parser.add_argument("--enable_batching", action="store_true",
                        help="merge concurrent requests into one TF call (server-side batching)")
    parser.add_argument("--batching_parameters_file",
                        help="TF Serving BatchingParameters text proto (max_batch_size, "
                             "batch_timeout_micros, max_enqueued_batches, num_batch_threads, "
                             "pad_variable_length_inputs); needs --enable_batching")
    parser.add_argument("--ssl_cert_file", help="PEM certificate; enables TLS on both ports")
    parser.add_argument("--ssl_key_file", help="PEM private key for --ssl_cert_file")
    limits = parser.add_argument_group(
        "protections against hostile clients (docs/operations.md)")
    for flag, field, kind, text in _LIMIT_FLAGS:
        limits.add_argument(flag, dest=field, type=kind, default=getattr(Limits(), field),
                            help=text + " (default %(default)s)")


def check_base_paths(models: dict[str, str], wait: bool) -> None:
    """A local base path that does not exist is a typo unless the user said to wait.

    Raises:
      TwoTowerError: naming the model, the path and --wait_for_models.
    """
    for name, path in models.items():
        if not wait and "://" not in path and not os.path.isdir(path):
            raise TwoTowerError(f"model {name}: base path {path} does not exist; push a model "
                                "there first (twotower run) or pass --wait_for_models to "
                                "serve it once one arrives")


def options_from_args(args: argparse.Namespace, serving: ServingConfig = ServingConfig(),
                      base_path_from_config: bool = False) -> ServerOptions:
    """ServerOptions from the parsed flags; flags left unset take `serving`'s values.

    Args:
      args: The parsed flags (add_arguments).
      serving: The config's serving section (defaults when no config was given).
      base_path_from_config: With neither --model_base_path nor --model_config_file, serve
        <serving.base_path>/<serving.model_name> (when the user passed a config).

    Raises:
      TwoTowerError: naming the flag of a missing, conflicting or out-of-range value.
    """
    resolve_config_flags(args, serving)
    if base_path_from_config and not args.model_base_path and not args.model_config_file:
        args.model_base_path = os.path.join(serving.base_path, serving.model_name)
    if bool(args.ssl_cert_file) != bool(args.ssl_key_file):
        raise TwoTowerError("pass both --ssl_cert_file and --ssl_key_file, or neither")
    models = models_from_flags(args.model_name, args.model_base_path, args.model_config_file)
    check_base_paths(models, args.wait_for_models)
    for flag, value, low in (("--max_batch_size", args.max_batch_size, 1),
                             ("--max_request_bytes", args.max_request_bytes, 1024),
                             ("--grpc_threads", args.grpc_threads, 1),
                             ("--file_system_poll_wait_seconds",
                              args.file_system_poll_wait_seconds, 0.01)):
        if value < low:
            raise TwoTowerError(f"{flag}: got {value}; expected at least {low}")
    return ServerOptions(
        models=models,
        host=args.host, port=args.port, rest_api_port=args.rest_api_port,
        poll_seconds=args.file_system_poll_wait_seconds, max_batch_size=args.max_batch_size,
        max_request_bytes=args.max_request_bytes, grpc_threads=args.grpc_threads,
        ssl_cert_file=args.ssl_cert_file, ssl_key_file=args.ssl_key_file,
        grpc_frontend=args.grpc_frontend,
        batching=batching_params.from_flags(args.enable_batching, args.batching_parameters_file),
        limits=limits_from_args(args, args.max_request_bytes))


def limits_from_args(args: argparse.Namespace, max_request_bytes: int) -> Limits:
    """The Limits the flags set.

    Raises:
      TwoTowerError: naming the flag of a value out of range.
    """
    limits = Limits(**{field: getattr(args, field) for _, field, _, _ in _LIMIT_FLAGS})
    limits.check(max_request_bytes)
    return limits
