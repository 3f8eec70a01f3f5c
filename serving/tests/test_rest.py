"""The REST front end through plain HTTP: formats, errors and the HTTP/1.1 layer."""
import json
import urllib.error
import urllib.request

import pytest

from serving.tests import fixtures

# The REST port does not depend on the gRPC front end: one of them is enough.
pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("served", ["grpcio"], indirect=True)]


def _rest(server, path, body=None):
    url = f"http://127.0.0.1:{server.rest_port}{path}"
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_rest_row_and_columnar_formats_status_and_errors(served):
    server, _, _, _ = served
    row = {"user_id": "u1", "age": 30, "gender": "F", "occupation": "writer", "zip": "12345"}
    status, body = _rest(server, "/v1/models/twotower:predict", {"instances": [row, row]})
    assert status == 200, body
    predictions = json.loads(body)["predictions"]
    assert len(predictions) == 2 and len(predictions[0]["item_ids"]) == fixtures.K
    columns = {key: [value] for key, value in row.items()}
    status, body = _rest(server, "/v1/models/twotower/versions/1:predict", {"inputs": columns})
    assert status == 200 and json.loads(body)["outputs"]["item_ids"][0] == predictions[0]["item_ids"]
    status, body = _rest(server, "/v1/models/twotower")
    assert json.loads(body)["model_version_status"][0]["state"] == "AVAILABLE"
    status, body = _rest(server, "/v1/models/twotower/metadata")
    assert "serving_default" in json.loads(body)["metadata"]["signature_def"]["signatureDef"]
    bad = dict(row, age="thirty")
    status, body = _rest(server, "/v1/models/twotower:predict", {"instances": [bad]})
    assert status == 400 and json.loads(body)["error"] == (
        "input 'age' must be integers (int64), got strings such as 'thirty'")
    status, _ = _rest(server, "/v1/models/nope:predict", {"instances": [row]})
    assert status == 404
    status, metrics = _rest(server, "/metrics")
    assert status == 200 and 'twotower_loaded_version{model="twotower"} 1' in metrics
    assert 'method="Predict",model="twotower",code="INVALID_ARGUMENT"' in metrics


def _exchange(port, raw, read_until_close=False):
    """Sends raw bytes on a new connection; returns what the server answered (all of it
    until it closes the connection, or the first response)."""
    import socket  # pylint: disable=import-outside-toplevel
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(raw)
        received = b""
        while True:
            chunk = connection.recv(65536)
            received += chunk
            if not chunk or (not read_until_close and b"\r\n\r\n" in received):
                return received.decode("latin-1")


def test_rest_http_layer(served):
    """Keep-alive, Expect: 100-continue, and clear refusals of what the server cannot take."""
    import http.client  # pylint: disable=import-outside-toplevel
    server, _, _, _ = served
    row = {"user_id": "u1", "age": 30, "gender": "F", "occupation": "writer", "zip": "12345"}
    body = json.dumps({"instances": [row]}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_port, timeout=10)
    for _ in range(3):  # one connection, three requests
        connection.request("POST", "/v1/models/twotower:predict", body)
        reply = connection.getresponse()
        assert reply.status == 200 and len(json.loads(reply.read())["predictions"]) == 1
    connection.close()
    head = (f"POST /v1/models/twotower:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n").encode()
    assert _exchange(server.rest_port, head).startswith("HTTP/1.1 100 Continue")
    answer = _exchange(server.rest_port, f"POST /v1/models/twotower:predict HTTP/1.0\r\n"
                       f"Content-Length: {len(body)}\r\n\r\n".encode() + body,
                       read_until_close=True)  # HTTP/1.0: answered, then closed
    assert answer.startswith("HTTP/1.1 200 OK") and "connection: close" in answer.lower()
    # A chunked body (what clients send for a streamed body) is read like any other.
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:]))
    answer = _exchange(server.rest_port, b"POST /v1/models/twotower:predict HTTP/1.1\r\n"
                       b"Host: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks
                       + b"0\r\n\r\n", read_until_close=True)
    assert answer.startswith("HTTP/1.1 200 OK") and '"predictions"' in answer, answer
    refusals = [
        (b"POST /v1/models/twotower:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
         "413 Request Entity Too Large", "exceeds the limit"),
        (b"GARBAGE\r\n\r\n", "400 Bad Request", "illegal request line"),
        (b"DELETE /v1/models/twotower HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
         "501 Not Implemented", "Malformed request: DELETE"),
    ]
    for raw, status, message in refusals:
        answer = _exchange(server.rest_port, raw, read_until_close=True)
        assert answer.startswith(f"HTTP/1.1 {status}") and message in answer, answer


def test_rest_answers_500_on_an_unexpected_failure_and_keeps_serving(served, monkeypatch):
    from serving import rest  # pylint: disable=import-outside-toplevel
    server, _, _, _ = served
    row = {"user_id": "u1", "age": 30, "gender": "F", "occupation": "writer", "zip": "12345"}

    def broken(serialized, dtype):
        raise ValueError("cannot decode")
    monkeypatch.setattr(rest, "plain", broken)
    status, body = _rest(server, "/v1/models/twotower:predict", {"instances": [row]})
    assert status == 500 and "ValueError: cannot decode" in json.loads(body)["error"]
    monkeypatch.undo()
    status, _ = _rest(server, "/v1/models/twotower:predict", {"instances": [row]})
    assert status == 200
    _, metrics = _rest(server, "/metrics")
    assert 'protocol="rest",method="Predict",model="twotower",code="INTERNAL"} 1' in metrics
