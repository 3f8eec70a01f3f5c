"""`twotower serve`: a model server speaking TF Serving's gRPC (8500) and REST (8501) APIs.

Flags and options: serving/flags.py. Models: serving/model_manager.py. Front ends:
serving/grpc_service.py and serving/rest.py.
"""
from __future__ import annotations

import concurrent.futures
import ssl
import threading

from absl import logging
import grpc

from serving import grpc_service, rest
from serving import metrics as metrics_lib
from serving.flags import ServerOptions
from serving.model_manager import ModelManager


class ModelServer:
    """The manager, the gRPC server and the REST server, started and stopped together."""

    def __init__(self, options: ServerOptions) -> None:
        from components.index_builder import scann_settings  # pylint: disable=import-outside-toplevel
        scann_settings.import_scann_ops()  # registers the ScaNN ops before any model loads
        self.options = options
        self.registry = metrics_lib.Registry()
        self.manager = ModelManager(options.models)
        message_options = [("grpc.max_receive_message_length", options.max_request_bytes),
                           ("grpc.max_send_message_length", options.max_request_bytes)]
        self.grpc = grpc.server(concurrent.futures.ThreadPoolExecutor(options.grpc_threads),
                                options=message_options)
        grpc_service.add_to_server(
            grpc_service.PredictionService(self.manager, options.max_batch_size, self.registry),
            grpc_service.ModelService(self.manager, self.registry), self.grpc)
        address = f"{options.host}:{options.port}"
        if options.ssl_cert_file:
            with open(options.ssl_key_file or "", "rb") as key, \
                    open(options.ssl_cert_file, "rb") as cert:
                credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
            self.grpc_port = self.grpc.add_secure_port(address, credentials)
        else:
            self.grpc_port = self.grpc.add_insecure_port(address)
        self.rest = rest.RestServer((options.host, options.rest_api_port), self.manager,
                                    options.max_batch_size, options.max_request_bytes,
                                    self.registry)
        if options.ssl_cert_file:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(options.ssl_cert_file, options.ssl_key_file)
            self.rest.socket = context.wrap_socket(self.rest.socket, server_side=True)
        self.rest_port = self.rest.server_address[1]
        self._rest_thread = threading.Thread(target=self.rest.serve_forever, name="rest",
                                             daemon=True)

    def start(self) -> None:
        """Loads the models (first poll), then starts both front ends and the poller."""
        self.manager.start(self.options.poll_seconds)
        self.grpc.start()
        self._rest_thread.start()
        logging.info("Serving %s: gRPC on %s:%d, REST on %s:%d", self.manager.names,
                     self.options.host, self.grpc_port, self.options.host, self.rest_port)

    def stop(self) -> None:
        self.rest.shutdown()
        self.rest.server_close()
        self.grpc.stop(grace=2).wait()
        self.manager.stop()


def serve_forever(options: ServerOptions) -> None:
    """Runs until SIGINT/SIGTERM, then stops both front ends."""
    import signal  # pylint: disable=import-outside-toplevel
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
