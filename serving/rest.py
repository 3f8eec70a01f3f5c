"""TF Serving's REST API (port 8501) over the ModelManager.

    GET  /v1/models/<name>[/versions/<v>]            model status
    GET  /v1/models/<name>[/versions/<v>]/metadata   signature defs
    POST /v1/models/<name>[/versions/<v>]:predict    {"instances": [...]} (row format) or
                                                     {"inputs": {...}} (columnar format)
    GET  /metrics                                    Prometheus text format
Errors answer {"error": "<message>"} with 400 (invalid argument), 404 (not found) or 500.

An asyncio HTTP/1.1 server on the gRPC server's event loop, the protocol kept by `h11`
(python-hyper's HTTP/1.1 state machine, RFC 9112: keep-alive and pipelining, Content-Length
and chunked bodies, `Expect: 100-continue`; conflicting Content-Length values and other
smuggling shapes answer 400). The server adds its protections (serving/limits.py): a
request's head and body must arrive within --request_timeout_seconds (408), a connection
waiting for a request closes after --idle_timeout_seconds, the connection cap is shared with
the gRPC port (503), bodies are limited by --max_request_bytes (413), and a client that does
not read its responses is not read from either. A REST request is decoded, validated and
encoded as TensorProtos (signatures.validate) and then runs exactly as a gRPC request does,
merged by the batcher when batching is on. The thread-per-connection server this replaced
answered at 0.53x gRPC's throughput with batching on (16 threads contending for the GIL, and
REST requests could not be merged).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import http
import json
import re
import socket
import ssl
from typing import Any, Optional

from absl import logging
import grpc
import h11
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from serving import grpc_service
from serving import metrics as metrics_lib
from serving.limits import ConnectionSlots, Limits
from serving.model_manager import ModelManager
from serving.signatures import RequestError

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                   r"(?P<suffix>/metadata|:predict)?$")
_HTTP = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404,
         grpc.StatusCode.DEADLINE_EXCEEDED: 504}


# Request heads longer than this, or with more header fields, are refused (431); bodies are
# limited by max_body_bytes.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 100
# socketserver's default listen backlog of 5 dropped the SYNs of clients connecting at once
# (h2load at concurrency 16 stalled on it); TF Serving's is larger too.
LISTEN_BACKLOG = 128


def plain(serialized: bytes, dtype: tf.DType) -> Any:
    """A serialized output TensorProto -> JSON-able nested lists (strings decoded as UTF-8)."""
    proto = tensor_pb2.TensorProto.FromString(serialized)
    shape = [dim.size for dim in proto.tensor_shape.dim]
    if dtype == tf.string:
        return np.array([item.decode() for item in proto.string_val],
                        dtype=object).reshape(shape).tolist()
    if proto.tensor_content or not int(np.prod(shape)):
        return np.frombuffer(proto.tensor_content, dtype.as_numpy_dtype).reshape(shape).tolist()
    return tf.make_ndarray(proto).tolist()


def parse_predict_body(body: dict[str, Any]) -> tuple[str, dict[str, np.ndarray], bool]:
    """(signature name, inputs, row format?) from a :predict body.

    Raises:
      RequestError: INVALID_ARGUMENT for a body with neither or both formats.
    """
    signature = body.get("signature_name", "serving_default")
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           "the body must have exactly one of \"instances\" (row format) or "
                           "\"inputs\" (columnar format)")
    if "inputs" in body:
        inputs = body["inputs"]
        if not isinstance(inputs, dict):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               "\"inputs\" must be an object of named inputs")
        return signature, {name: np.array(value) for name, value in inputs.items()}, False
    instances = body["instances"]
    if not isinstance(instances, list) or not instances or not all(
            isinstance(row, dict) for row in instances):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           "\"instances\" must be a non-empty list of objects of named inputs")
    names = set(instances[0])
    if any(set(row) != names for row in instances):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           "every instance must have the same input names")
    return signature, {name: np.array([row[name] for row in instances]) for name in names}, True


class RestServer:
    """The REST front end: one coroutine per connection on the gRPC server's event loop."""

    def __init__(self, address: tuple[str, int], manager: ModelManager,
                 executor: concurrent.futures.Executor, max_batch: int, max_body_bytes: int,
                 registry: metrics_lib.Registry, limits: Limits = Limits(),
                 slots: Optional[ConnectionSlots] = None) -> None:
        """Binds the listening socket now (so the port is known before `start`).

        Args:
          address: (host, port); port 0 picks a free one.
          manager: The served models.
          executor: Where unbatched TF calls run (shared with gRPC).
          max_batch: The largest request batch accepted (--max_batch_size).
          max_body_bytes: The largest request body accepted (--max_request_bytes).
          registry: Request metrics.
          limits: The protections (serving/limits.py).
          slots: The connection cap, shared with the gRPC port; None: this server's own.
        """
        self.manager = manager
        self.executor = executor
        self.max_batch = max_batch
        self.max_body_bytes = max_body_bytes
        self.registry = registry
        self.limits = limits
        self.slots = slots or ConnectionSlots(limits.max_connections)
        self.socket = socket.create_server(address, backlog=LISTEN_BACKLOG)
        self.port: int = self.socket.getsockname()[1]
        self._server: Optional[asyncio.AbstractServer] = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self, context: Optional[ssl.SSLContext] = None) -> None:
        """Serves on the bound socket (TLS when `context` is given); call on the loop."""
        self._server = await asyncio.start_server(
            self._connection, sock=self.socket, ssl=context,
            ssl_handshake_timeout=self.limits.handshake_timeout_s if context else None)

    async def stop(self) -> None:
        """Stops accepting and closes open connections; call on the loop."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        else:
            self.socket.close()
        for writer in list(self._connections):
            writer.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                          ) -> None:
        """Answers requests on one connection until the client, an error or a timeout
        closes it."""
        if not self.slots.acquire():
            logging.warning("REST connection refused: --max_connections %d reached",
                            self.limits.max_connections)
            self._write(writer, h11.Connection(h11.SERVER), 503,
                        {"error": "too many connections; retry later"}, close=True)
            writer.close()
            return
        self._connections.add(writer)
        writer.transport.set_write_buffer_limits(high=self.limits.write_buffer_bytes)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.TimeoutError):
            return
        finally:
            self.slots.release()
            self._connections.discard(writer)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The request loop of one connection, on `h11`'s state machine.

        One timer per phase closes the connection when it fires: --idle_timeout_seconds while
        the server waits for a request or for the client to read its answer,
        --request_timeout_seconds (answered 408) from a request's first byte to its end. Reads
        carry no timeout of their own (asyncio.wait_for costs a task per read).
        """
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.limits.idle_timeout_s, writer.close)
        receiving = False
        request: Optional[h11.Request] = None
        body = bytearray()
        try:
            while True:
                try:
                    event = conn.next_event()
                except h11.RemoteProtocolError as e:
                    self._write(writer, conn, e.error_status_hint, {"error": str(e)},
                                close=True)
                    return
                if event is h11.NEED_DATA:
                    if conn.they_are_waiting_for_100_continue:
                        writer.write(conn.send(h11.InformationalResponse(
                            status_code=100, headers=[], reason=b"Continue")))
                    data = await reader.read(65536)
                    if data and not receiving:
                        receiving = True
                        timer.cancel()
                        timer = loop.call_later(self.limits.request_timeout_s,
                                                self._timed_out, writer, conn)
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    request, body = event, bytearray()
                    if not self._head_fits(writer, conn, event):
                        return
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > self.max_body_bytes:
                        self._too_large(writer, conn, len(body))
                        return
                elif isinstance(event, h11.EndOfMessage):
                    timer.cancel()
                    status, payload, content_type = await self._respond(
                        request.method.decode("latin-1"), request.target.decode("latin-1"),
                        bytes(body))
                    self._write(writer, conn, status, payload, content_type)
                    if conn.our_state is h11.MUST_CLOSE:
                        await writer.drain()
                        return
                    conn.start_next_cycle()
                    receiving = bool(conn.trailing_data[0])
                    timer = (loop.call_later(self.limits.request_timeout_s, self._timed_out,
                                             writer, conn) if receiving else
                             loop.call_later(self.limits.idle_timeout_s, writer.close))
                    await writer.drain()
                else:  # ConnectionClosed: the client (or a timer) closed the connection
                    return
        finally:
            timer.cancel()

    def _head_fits(self, writer: asyncio.StreamWriter, conn: h11.Connection,
                   request: h11.Request) -> bool:
        """False (and the refusal written) for a head over the limits or a declared body
        over --max_request_bytes."""
        size = sum(len(name) + len(value) + 4 for name, value in request.headers)
        if len(request.headers) > MAX_HEADER_FIELDS or size > MAX_HEAD_BYTES:
            self._write(writer, conn, 431, {"error": (
                f"request head of {len(request.headers)} fields, {size} bytes; at most "
                f"{MAX_HEADER_FIELDS} fields, {MAX_HEAD_BYTES} bytes")}, close=True)
            return False
        length = dict(request.headers).get(b"content-length")
        if length is not None and int(length) > self.max_body_bytes:
            self._too_large(writer, conn, int(length))
            return False
        return True

    def _timed_out(self, writer: asyncio.StreamWriter, conn: h11.Connection) -> None:
        """The request timer fired: 408, then the connection is closed."""
        self._write(writer, conn, 408, {"error": (
            f"the request did not arrive within {self.limits.request_timeout_s:g}s "
            "(--request_timeout_seconds)")}, close=True)
        writer.close()

    def _too_large(self, writer: asyncio.StreamWriter, conn: h11.Connection,
                   size: int) -> None:
        self._write(writer, conn, 413, {"error": f"request body of {size} bytes exceeds "
                                                 f"the limit {self.max_body_bytes} "
                                                 "(--max_request_bytes)"}, close=True)

    @staticmethod
    def _write(writer: asyncio.StreamWriter, conn: h11.Connection, status: int,
               payload: Any, content_type: str = "application/json",
               close: bool = False) -> None:
        """Queues one whole response; `close` ends the connection after it."""
        if writer.is_closing():
            return
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        headers = [("content-type", content_type), ("content-length", str(len(data)))]
        if close:
            headers.append(("connection", "close"))
        try:
            writer.write(conn.send(h11.Response(status_code=status, headers=headers,
                                                reason=http.HTTPStatus(status).phrase))
                         + conn.send(h11.Data(data=data)) + conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            return  # no response is possible in this state (e.g. one was sent already)

    async def _respond(self, method: str, path: str, body: bytes) -> tuple[int, Any, str]:
        """(HTTP status, payload, content type) for one request."""
        if method == "GET" and path == "/metrics":
            return 200, self.registry.render(self.loaded_versions), "text/plain; version=0.0.4"
        match = _PATH.match(path)
        if match is None or method not in ("GET", "POST"):
            return 404 if match is None else 501, {
                "error": f"Malformed request: {method} {path}"}, "application/json"
        name, suffix = match["name"], match["suffix"]
        version = int(match["version"]) if match["version"] else None
        kind = {None: "GetModelStatus", "/metadata": "GetModelMetadata",
                ":predict": "Predict"}[suffix]
        with self.registry.timer("rest", kind, name) as outcome:
            try:
                if (kind == "Predict") != (method == "POST"):
                    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                       f"{method} is not supported for {path}")
                if kind == "Predict":
                    return 200, await self._predict(name, version, body), "application/json"
                if kind == "GetModelMetadata":
                    return 200, self._metadata(name, version), "application/json"
                return 200, self._status(name, version), "application/json"
            except RequestError as e:
                outcome.error(e.code.name)
                return _HTTP.get(e.code, 500), {"error": str(e)}, "application/json"
            except Exception as e:  # pylint: disable=broad-except
                # Any other failure answers 500 on this request and keeps the connection.
                logging.exception("REST %s %s failed", method, path)
                outcome.error("INTERNAL")
                return 500, {"error": f"internal error: {type(e).__name__}: {e}"}, \
                    "application/json"

    def _status(self, name: str, version: Optional[int]) -> dict[str, Any]:
        return {"model_version_status": [
            {"version": str(status.version), "state": status.state,
             "status": {"error_code": "UNKNOWN" if status.error else "OK",
                        "error_message": status.error}}
            for status in self.manager.status(name, version)]}

    def _metadata(self, name: str, version: Optional[int]) -> dict[str, Any]:
        loaded = self.manager.get(name, version)
        definitions = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in loaded.signatures.items():
            definitions.signature_def[key].CopyFrom(grpc_service.signature_def(signature))
        return {"model_spec": {"name": name, "signature_name": "",
                               "version": str(loaded.version)},
                "metadata": {"signature_def": json_format.MessageToDict(definitions)}}

    async def _predict(self, name: str, version: Optional[int], data: bytes) -> dict[str, Any]:
        try:
            body = json.loads(data or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"the body is not JSON: {e}") from e
        if not isinstance(body, dict):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the body must be a JSON object")
        signature, inputs, rows = parse_predict_body(body)
        call = self.manager.prepare_arrays(name, version, signature, inputs, self.max_batch)
        outputs = await self.manager.run_async(call, self.executor)
        dtypes = call.loaded.signatures[call.signature_name].outputs
        columns = {key: plain(value, dtypes[key].dtype) for key, value in outputs.items()}
        if not rows:
            return {"outputs": columns}
        if len(columns) == 1:
            return {"predictions": next(iter(columns.values()))}
        batch = len(next(iter(columns.values())))
        return {"predictions": [{key: column[i] for key, column in columns.items()}
                                for i in range(batch)]}

    def loaded_versions(self) -> dict[str, int]:
        versions = {}
        for name in self.manager.names:
            try:
                versions[name] = self.manager.get(name).version
            except RequestError:
                continue
        return versions
