"""TF Serving's REST API (port 8501) over the ModelManager.

    GET  /v1/models/<name>[/versions/<v>]            model status
    GET  /v1/models/<name>[/versions/<v>]/metadata   signature defs
    POST /v1/models/<name>[/versions/<v>]:predict    {"instances": [...]} (row format) or
                                                     {"inputs": {...}} (columnar format)
    GET  /metrics                                    Prometheus text format
Errors answer {"error": "<message>"} with 400 (invalid argument), 404 (not found) or 500.
"""
from __future__ import annotations

import http.server
import json
import re
from typing import Any, Optional

import grpc
import numpy as np
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from serving import grpc_service
from serving import metrics as metrics_lib
from serving.model_manager import ModelManager
from serving.signatures import RequestError

_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                   r"(?P<suffix>/metadata|:predict)?$")
_HTTP = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404,
         grpc.StatusCode.DEADLINE_EXCEEDED: 504}


def _plain(value: np.ndarray) -> Any:
    """numpy -> JSON-able lists (bytes decoded as UTF-8)."""
    if value.dtype.kind in "OS":
        return np.vectorize(lambda item: item.decode() if isinstance(item, bytes) else item,
                            otypes=[object])(value).tolist() if value.size else value.tolist()
    return value.tolist()


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


class Handler(http.server.BaseHTTPRequestHandler):
    """One request; the server object carries the manager, limits and metrics."""

    server: "RestServer"
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes; with Nagle's algorithm on, the body waits for the
    # client's delayed ACK of the headers (~40 ms per keep-alive request, measured).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        """Access logs are off (metrics count requests)."""

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        if method == "GET" and self.path == "/metrics":
            self._send(200, self.server.registry.render(self.server.loaded_versions),
                       "text/plain; version=0.0.4")
            return
        match = _PATH.match(self.path)
        if match is None:
            self._send(404, {"error": f"Malformed request: {method} {self.path}"})
            return
        name, suffix = match["name"], match["suffix"]
        version = int(match["version"]) if match["version"] else None
        kind = {None: "GetModelStatus", "/metadata": "GetModelMetadata",
                ":predict": "Predict"}[suffix]
        with self.server.registry.timer("rest", kind, name) as outcome:
            try:
                if (kind == "Predict") != (method == "POST"):
                    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                       f"{method} is not supported for {self.path}")
                payload = getattr(self, f"_{kind}")(name, version)
                self._send(200, payload)
            except RequestError as e:
                outcome.error(e.code.name)
                self._send(_HTTP.get(e.code, 500), {"error": str(e)})

    def _GetModelStatus(self, name: str, version: Optional[int]) -> dict[str, Any]:
        return {"model_version_status": [
            {"version": str(status.version), "state": status.state,
             "status": {"error_code": "UNKNOWN" if status.error else "OK",
                        "error_message": status.error}}
            for status in self.server.manager.status(name, version)]}

    def _GetModelMetadata(self, name: str, version: Optional[int]) -> dict[str, Any]:
        loaded = self.server.manager.get(name, version)
        definitions = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in loaded.signatures.items():
            definitions.signature_def[key].CopyFrom(grpc_service.signature_def(signature))
        return {"model_spec": {"name": name, "signature_name": "",
                               "version": str(loaded.version)},
                "metadata": {"signature_def": json_format.MessageToDict(definitions)}}

    def _Predict(self, name: str, version: Optional[int]) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.server.max_body_bytes:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"request body of {length} bytes exceeds the limit "
                               f"{self.server.max_body_bytes}")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as e:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"the body is not JSON: {e}") from e
        if not isinstance(body, dict):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the body must be a JSON object")
        signature, inputs, rows = parse_predict_body(body)
        _, outputs = self.server.manager.predict(name, version, signature, inputs,
                                                 self.server.max_batch)
        if not rows:
            return {"outputs": {key: _plain(value) for key, value in outputs.items()}}
        columns = {key: _plain(value) for key, value in outputs.items()}
        batch = len(next(iter(columns.values())))
        if len(columns) == 1:
            return {"predictions": next(iter(columns.values()))}
        return {"predictions": [{key: column[i] for key, column in columns.items()}
                                for i in range(batch)]}

    def do_GET(self) -> None:  # pylint: disable=invalid-name
        self._route("GET")

    def do_POST(self) -> None:  # pylint: disable=invalid-name
        self._route("POST")


class RestServer(http.server.ThreadingHTTPServer):
    """The HTTP server; each request runs in its own thread."""

    daemon_threads = True
    # socketserver's default listen backlog is 5: more clients connecting at once had their
    # SYNs dropped and retried seconds later (h2load at concurrency 16 stalled on it).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], manager: ModelManager, max_batch: int,
                 max_body_bytes: int, registry: metrics_lib.Registry) -> None:
        super().__init__(address, Handler)
        self.manager = manager
        self.max_batch = max_batch
        self.max_body_bytes = max_body_bytes
        self.registry = registry

    def loaded_versions(self) -> dict[str, int]:
        versions = {}
        for name in self.manager.names:
            try:
                versions[name] = self.manager.get(name).version
            except RequestError:
                continue
        return versions
