"""`twotower serve`: a model server speaking TF Serving's gRPC (8500) and REST (8501) APIs.

Flags and options: serving/flags.py. Models: serving/model_manager.py. Front ends:
serving/grpc_service.py and serving/rest.py.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
import threading
from typing import Any, Coroutine, Optional

from absl import logging
import grpc

from twotower import scann_ops
from twotower.errors import TwoTowerError
from serving import grpc_service, http2, rest
from serving import metrics as metrics_lib
from serving.flags import ServerOptions
from serving.limits import ConnectionSlots
from serving.model_manager import ModelManager

# TLS 1.2 suites RFC 9113 §9.2 allows (ephemeral key exchange, AEAD); TLS 1.3's are all fine.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class ModelServer:
    """The manager, the gRPC server and the REST server, started and stopped together.

    Both front ends are coroutines on one event-loop thread (serving/grpc_service.py and
    serving/rest.py say why), sharing the batcher and the unbatched-call threads.
    """

    def __init__(self, options: ServerOptions) -> None:
        scann_ops.import_scann_ops()  # registers the ScaNN ops before any model loads
        self.options = options
        options.limits.check(options.max_request_bytes)
        # One cap for both ports on the asyncio front end (grpc.aio counts its own).
        self.slots = ConnectionSlots(options.limits.max_connections)
        self.registry = metrics_lib.Registry()
        self._executor = concurrent.futures.ThreadPoolExecutor(options.grpc_threads,
                                                               thread_name_prefix="predict")
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="grpc-loop",
                                             daemon=True)
        self._loop_thread.start()
        self.manager = ModelManager(options.models, batching_params=options.batching,
                                    registry=self.registry, loop=self._loop)
        try:
            self.grpc, self.grpc_port = self._in_loop(self._build_grpc())
        except (OSError, RuntimeError) as e:
            self._abandon()
            raise TwoTowerError(f"cannot listen for gRPC on {options.host}:{options.port} "
                                f"({e}); is another server using it? Stop it or pass "
                                "--port") from e
        try:
            self.rest = rest.RestServer((options.host, options.rest_api_port), self.manager,
                                        self._executor, options.max_batch_size,
                                        options.max_request_bytes, self.registry,
                                        options.limits, self.slots)
        except OSError as e:
            self._in_loop(self.grpc.stop(grace=0))
            self._abandon()
            raise TwoTowerError(f"cannot listen for REST on {options.host}:"
                                f"{options.rest_api_port} ({e.strerror or e}); is another "
                                "server using it? Stop it or pass --rest_api_port") from e
        self.rest_port = self.rest.port
        self._rest_tls = self._tls()

    def _abandon(self) -> None:
        """Stops the loop and the threads of a server that could not bind its ports."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join()
        self._executor.shutdown()

    def _tls(self) -> Optional[ssl.SSLContext]:
        """A new server TLS context from --ssl_cert_file/--ssl_key_file (TLS 1.2 or later,
        RFC 9113's cipher suites), or None."""
        if not self.options.ssl_cert_file:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(TLS12_CIPHERS)
        context.load_cert_chain(self.options.ssl_cert_file, self.options.ssl_key_file)
        return context

    def _in_loop(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _build_grpc(self) -> tuple[Any, int]:
        """The gRPC server (grpc.aio or serving/http2.py, --grpc_frontend), created on the
        loop it serves from; (server, bound port)."""
        options = self.options
        prediction = grpc_service.PredictionService(self.manager, options.max_batch_size,
                                                    self.registry, self._executor)
        model = grpc_service.ModelService(self.manager, self.registry)
        if options.grpc_frontend == "asyncio":
            server = http2.Server(grpc_service.Dispatcher(prediction, model, self.registry),
                                  (options.host, options.port), options.max_request_bytes,
                                  options.limits, self.slots, tls=self._tls())
            return server, server.port
        limits = options.limits
        # grpc core's own protections, set from the same flags where it has one.
        channel_options = [
            ("grpc.max_receive_message_length", options.max_request_bytes),
            ("grpc.max_send_message_length", options.max_request_bytes),
            ("grpc.max_allowed_incoming_connections", limits.max_connections),
            ("grpc.server_handshake_timeout_ms", int(limits.handshake_timeout_s * 1000)),
            ("grpc.max_connection_idle_ms", int(limits.idle_timeout_s * 1000)),
            ("grpc.max_concurrent_streams", limits.max_concurrent_streams)]
        aio_server = grpc.aio.server(options=channel_options)
        grpc_service.add_to_server(prediction, model, aio_server)
        address = f"{options.host}:{options.port}"
        if options.ssl_cert_file:
            with open(options.ssl_key_file or "", "rb") as key, \
                    open(options.ssl_cert_file, "rb") as cert:
                credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
            return aio_server, aio_server.add_secure_port(address, credentials)
        return aio_server, aio_server.add_insecure_port(address)

    def start(self) -> None:
        """Loads the models (first poll), then starts both front ends and the poller."""
        self.manager.start(self.options.poll_seconds)
        self._in_loop(self.grpc.start())
        self._in_loop(self.rest.start(self._rest_tls))
        logging.info("Serving %s: gRPC on %s:%d, REST on %s:%d", self.manager.names,
                     self.options.host, self.grpc_port, self.options.host, self.rest_port)

    def stop(self) -> None:
        self._in_loop(self.rest.stop())
        self._in_loop(self.grpc.stop(grace=2))
        self.manager.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join()
        self._loop.close()
        self._executor.shutdown()


# CPython hands the GIL to a waiting thread every 5 ms by default; the gRPC event loop, the
# batch threads and TF's Python wrappers then wait on each other. 0.5 ms raised batch-1
# throughput at concurrency 16 from ~1,120 to ~1,510 requests/s (h2load, batching on, 2 cores).
GIL_SWITCH_INTERVAL_S = 0.0005


def serve_forever(options: ServerOptions) -> None:
    """Runs until SIGINT/SIGTERM, then stops both front ends."""
    import signal  # pylint: disable=import-outside-toplevel
    import sys  # pylint: disable=import-outside-toplevel
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    logging.set_verbosity(logging.INFO)  # each version loaded, unloaded or refused
    server = ModelServer(options)
    server.start()
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    print(f"serving {', '.join(f'{n} ({p})' for n, p in options.models.items())}: gRPC "
          f"{options.host}:{server.grpc_port}, REST http://{options.host}:{server.rest_port}"
          "/v1/models/<name>; Ctrl-C stops", flush=True)
    stopped.wait()
    server.stop()
