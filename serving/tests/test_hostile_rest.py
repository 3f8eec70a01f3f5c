"""The REST port under hostile clients: RFC 9112 answers, timeouts, the connection cap and
bounded memory (serving/rest.py on h11). The REST port is the same whichever gRPC front end
runs beside it; the default one does here."""
import json
import socket
import time

import psutil
import pytest

from serving import server as server_lib
from serving.flags import ServerOptions
from serving.limits import Limits
from serving.tests import fixtures

pytestmark = pytest.mark.e2e

RSS_BOUND_MB = 32
LIMITS = Limits(max_connections=40, handshake_timeout_s=1.0, idle_timeout_s=2.0,
                request_timeout_s=1.5, write_buffer_bytes=256 << 10)
ROW = {"user_id": "u1", "age": 30, "gender": "F", "occupation": "writer", "zip": "12345"}
BODY = json.dumps({"instances": [ROW]}).encode()
PREDICT = b"POST /v1/models/twotower:predict HTTP/1.1\r\nHost: x\r\n"


@pytest.fixture(name="rest")
def fixture_rest(tmp_path):
    base = str(tmp_path / "models" / "twotower")
    fixtures.write_version(base, 1, seed=1, root=str(tmp_path))
    server = server_lib.ModelServer(ServerOptions(
        models={"twotower": base}, port=0, rest_api_port=0, max_request_bytes=1 << 20,
        limits=LIMITS))
    server.start()
    yield server
    server.stop()


def _answer(port, raw, seconds=5.0):
    """Everything the server sends on a new connection after `raw`, until it closes."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(raw)
        return _read_until_closed(sock, seconds)


def _read_until_closed(sock, seconds):
    received, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return received + b"<open>"
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    return received + b"<open>"


def _assert_still_serving(server):
    answer = _answer(server.rest_port, PREDICT + b"Connection: close\r\nContent-Length: "
                     + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"predictions"' in answer, answer[:200]


@pytest.mark.parametrize("raw, status", [
    # Two different lengths: which one a proxy used is unknowable (request smuggling).
    (PREDICT + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", b"400"),
    (PREDICT + b"Content-Length: -1\r\n\r\n", b"400"),
    (PREDICT + b"Content-Length: 99999999999999999999\r\n\r\n", b"413"),
    (PREDICT + b"X-Long: " + b"a" * (1 << 20) + b"\r\n\r\n", b"431"),
    (PREDICT + b"".join(b"X-%d: 1\r\n" % i for i in range(10_000)) + b"\r\n", b"431"),
    (b"POST /v1/models/twotower:predict HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", b"400"),
])
def test_malformed_or_oversized_requests_are_refused(rest, raw, status):
    answer = _answer(rest.rest_port, raw)
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer[:200]
    assert not answer.endswith(b"<open>")  # and the connection is closed
    _assert_still_serving(rest)


def test_chunked_bodies_are_read_within_the_body_limit(rest):
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (BODY[:7], BODY[7:]))
    answer = _answer(rest.rest_port, PREDICT + b"Transfer-Encoding: chunked\r\n"
                     b"Connection: close\r\n\r\n" + chunks + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"predictions"' in answer
    big = b"%x\r\n%s\r\n" % (1 << 19, b"x" * (1 << 19))  # 3 chunks of 512 KiB > 1 MiB
    answer = _answer(rest.rest_port, PREDICT + b"Transfer-Encoding: chunked\r\n\r\n" + big * 3)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"--max_request_bytes" in answer


def test_half_sent_requests_time_out_and_idle_connections_close(rest):
    """300 half request lines (the probe that kept them all open): 408 after
    --request_timeout_seconds; silent or finished keep-alive connections close after
    --idle_timeout_seconds."""
    rss = psutil.Process().memory_info().rss
    started = time.monotonic()
    halves = []
    for _ in range(30):  # under the cap of 40
        sock = socket.create_connection(("127.0.0.1", rest.rest_port))
        sock.sendall(b"POST /v1/models/twotower:pre")
        halves.append(sock)
    for sock in halves:
        answer = _read_until_closed(sock, LIMITS.request_timeout_s + 2.0)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        sock.close()
    assert time.monotonic() - started < LIMITS.request_timeout_s + 2.0
    with socket.create_connection(("127.0.0.1", rest.rest_port)) as silent, \
            socket.create_connection(("127.0.0.1", rest.rest_port)) as finished:
        finished.sendall(b"GET /v1/models/twotower HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        assert _read_until_closed(silent, LIMITS.idle_timeout_s + 2.0) == b""
        answer = _read_until_closed(finished, LIMITS.idle_timeout_s + 2.0)
        assert answer.startswith(b"HTTP/1.1 200 ") and not answer.endswith(b"<open>")
        assert time.monotonic() - started < LIMITS.idle_timeout_s + 2.0
    assert (psutil.Process().memory_info().rss - rss) / 2**20 < RSS_BOUND_MB
    _assert_still_serving(rest)


def test_pipelined_requests_from_a_client_that_never_reads_are_bounded(rest):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", rest.rest_port))
    sock.setblocking(False)
    request = b"GET /v1/models/twotower/metadata HTTP/1.1\r\nHost: x\r\n\r\n"
    data, sent, backlog = memoryview(request * 100_000), 0, 0
    rss = psutil.Process().memory_info().rss
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline and sent < len(data):
        try:
            sent += sock.send(data[sent:sent + 65536])
        except BlockingIOError:
            time.sleep(0.01)
        except (ConnectionResetError, BrokenPipeError):
            break  # closed after --idle_timeout_seconds without reading: also a bound
        writers = rest.rest._connections  # pylint: disable=protected-access
        backlog = max([backlog] + [w.transport.get_write_buffer_size() for w in writers])
    sock.close()
    assert (psutil.Process().memory_info().rss - rss) / 2**20 < RSS_BOUND_MB
    # The server waits for the client to drain before it reads the next request.
    assert backlog <= LIMITS.write_buffer_bytes + (64 << 10), (sent, backlog)
    _assert_still_serving(rest)


def test_connections_beyond_the_cap_get_503(rest):
    held = [socket.create_connection(("127.0.0.1", rest.rest_port))
            for _ in range(LIMITS.max_connections)]
    time.sleep(0.3)
    answer = _answer(rest.rest_port, b"GET /v1/models/twotower HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 503 ") and b"retry later" in answer
    for sock in held:
        sock.close()
    time.sleep(0.3)
    _assert_still_serving(rest)
