"""The gRPC port under hostile clients: raw HTTP/2 frames for each attack class every HTTP/2
server must survive, on both front ends.

Each probe asserts the server's answer, that its memory grew by less than RSS_BOUND_MB, and
that a normal Predict on a fresh connection still succeeds within FRESH_CALL_SECONDS. The
RFC 9113 answer (GOAWAY or RST_STREAM and its code) is asserted on the asyncio front end
(serving/http2.py, on h2); grpc core answers some probes its own way (measured: it ignores
RST_STREAM and PRIORITY on stream 0 and frames on idle streams, serves uppercase header names
and `connection:`), and there only the survival properties are asserted.
"""
import socket
import ssl
import struct
import time

import grpc
import hpack
import psutil
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, predict_pb2,
                                     prediction_service_pb2_grpc)

from serving import http2_wire as wire
from serving import server as server_lib
from serving.flags import GRPC_FRONTENDS, ServerOptions
from serving.limits import Limits
from serving.tests import fixtures, raw_h2

pytestmark = pytest.mark.e2e

PREDICT = "/tensorflow.serving.PredictionService/Predict"
METADATA = "/tensorflow.serving.PredictionService/GetModelMetadata"
RSS_BOUND_MB = 32
FRESH_CALL_SECONDS = 2.0
LIMITS = Limits(max_connections=40, handshake_timeout_s=1.0, idle_timeout_s=2.0,
                request_timeout_s=2.0, max_resets_per_second=50,
                connection_window_bytes=8 << 20, write_buffer_bytes=256 << 10)
SETTINGS = wire.frame(wire.SETTINGS, 0, 0)


def _message(model="twotower"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for name, value in fixtures.query(["u1"]).items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request.SerializeToString()


@pytest.fixture(name="hostile", params=GRPC_FRONTENDS)
def fixture_hostile(request, tmp_path):
    """(server, front end) with LIMITS, and the certificate files when TLS is asked for."""
    base = str(tmp_path / "models" / "twotower")
    fixtures.write_version(base, 1, seed=1, root=str(tmp_path))
    server = server_lib.ModelServer(ServerOptions(
        models={"twotower": base}, port=0, rest_api_port=0, grpc_frontend=request.param,
        limits=LIMITS))
    server.start()
    yield server, request.param
    server.stop()


def _rss_mb():
    return psutil.Process().memory_info().rss / 2**20


def _predicts(server):
    """Predict calls the server has run (any outcome)."""
    total = 0
    for line in server.registry.render(dict).splitlines():
        if line.startswith("twotower_requests_total{") and 'method="Predict"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def _assert_still_serving(server):
    """A normal Predict on a fresh connection succeeds within FRESH_CALL_SECONDS."""
    request = predict_pb2.PredictRequest.FromString(_message())
    started = time.monotonic()
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=FRESH_CALL_SECONDS)
    assert response.model_spec.version.value == 1
    assert time.monotonic() - started < FRESH_CALL_SECONDS


def _probe(server, *frames, seconds=3.0):
    """(frames answered, closed?) for one connection that sent SETTINGS and `frames`."""
    with raw_h2.connect(server.grpc_port, SETTINGS, *frames) as sock:
        return raw_h2.read_until_closed(sock, seconds)


def test_a_finished_call_is_never_dispatched_again(hostile):
    server, frontend = hostile
    before, rss = _predicts(server), _rss_mb()
    again = wire.frame(wire.DATA, wire.END_STREAM, 1, b"\x00" * 5) * 2000
    frames, _ = _probe(server, raw_h2.call_frames(hpack.Encoder(), 1, PREDICT, _message()),
                       again)
    time.sleep(0.3)
    assert _predicts(server) - before <= 1  # 2,001 before the fix
    if frontend == "asyncio":  # RFC 9113 §5.1: frames on a half-closed stream: STREAM_CLOSED
        assert (wire.RST_STREAM, 0, 1, struct.pack(">I", wire.STREAM_CLOSED)) in frames
    assert _rss_mb() - rss < RSS_BOUND_MB
    _assert_still_serving(server)


def test_rapid_reset_is_answered_enhance_your_calm(hostile):
    server, frontend = hostile
    encoder, burst = hpack.Encoder(), []
    for stream_id in range(1, 4001, 2):  # 2,000 calls, each reset at once
        burst.append(raw_h2.call_frames(encoder, stream_id, PREDICT, _message()))
        burst.append(wire.frame(wire.RST_STREAM, 0, stream_id, struct.pack(">I", wire.CANCEL)))
    before, rss = _predicts(server), _rss_mb()
    frames, _ = _probe(server, *burst)
    if frontend == "asyncio":
        assert raw_h2.goaway_codes(frames) == [wire.ENHANCE_YOUR_CALM]
        assert _predicts(server) - before <= LIMITS.max_resets_per_second
    else:  # grpc core resets streams beyond its own budget
        assert any(kind == wire.RST_STREAM and payload == struct.pack(
            ">I", wire.ENHANCE_YOUR_CALM) for kind, _, _, payload in frames)
    assert _rss_mb() - rss < RSS_BOUND_MB
    _assert_still_serving(server)


def test_an_endless_continuation_stream_is_cut(hostile):
    server, frontend = hostile
    block = hpack.Encoder().encode([(":method", "POST"), (":scheme", "http"),
                                    (":path", PREDICT), (":authority", "x")])
    rss = _rss_mb()
    frames, closed = _probe(server, wire.frame(wire.HEADERS, 0, 1, block),
                            wire.frame(wire.CONTINUATION, 0, 1, b"") * 20_000)
    if frontend == "asyncio":
        assert raw_h2.goaway_codes(frames) == [wire.PROTOCOL_ERROR] and closed
    else:
        assert any(kind in (wire.RST_STREAM, wire.GOAWAY) for kind, *_ in frames) or closed
    assert _rss_mb() - rss < RSS_BOUND_MB
    _assert_still_serving(server)


@pytest.mark.parametrize("name, headers", [
    ("uppercase name", [(":method", "POST"), (":scheme", "http"), (":path", PREDICT),
                        (":authority", "x"), ("content-type", "application/grpc"),
                        ("X-Upper", "1")]),
    ("connection-specific", [(":method", "POST"), (":scheme", "http"), (":path", PREDICT),
                             (":authority", "x"), ("content-type", "application/grpc"),
                             ("connection", "keep-alive")]),
    ("no :path", [(":method", "POST"), (":scheme", "http"), (":authority", "x"),
                  ("content-type", "application/grpc")]),
])
def test_malformed_request_headers_are_protocol_errors(hostile, name, headers):
    server, frontend = hostile
    block = hpack.Encoder().encode(headers)
    frames, _ = _probe(server, wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, 1,
                                          block), seconds=1.0)
    if frontend == "asyncio":  # RFC 9113 §8.1.1: malformed: PROTOCOL_ERROR
        assert raw_h2.goaway_codes(frames) == [wire.PROTOCOL_ERROR], name
    _assert_still_serving(server)


@pytest.mark.parametrize("kind, stream_id, payload", [
    (wire.RST_STREAM, 0, struct.pack(">I", 0)),
    (wire.PRIORITY, 0, struct.pack(">IB", 1, 16)),
    (wire.DATA, 7, b"xx"),
    (wire.RST_STREAM, 7, struct.pack(">I", 0)),
    (wire.WINDOW_UPDATE, 7, struct.pack(">I", 100)),
])
def test_frames_on_stream_0_and_idle_streams_are_connection_errors(hostile, kind, stream_id,
                                                                   payload):
    server, frontend = hostile
    frames, _ = _probe(server, wire.frame(kind, 0, stream_id, payload), seconds=1.0)
    if frontend == "asyncio":  # RFC 9113 §6.3, §6.4, §5.1 (idle)
        assert raw_h2.goaway_codes(frames) == [wire.PROTOCOL_ERROR]
    _assert_still_serving(server)


def _unsent_bytes(server):
    """The largest response backlog among the asyncio front end's connections (0 on
    grpcio, whose buffers are not visible)."""
    connections = getattr(server.grpc, "connections", ())
    return max((c.transport.get_write_buffer_size() for c in connections
                if c.transport is not None), default=0)


def _flood(server, chunks, seconds, pause=0.0):
    """(bytes a client that never reads got into the server, sending `chunks` one after
    another with `pause` s between them for at most `seconds`; the largest response backlog
    seen meanwhile). The client opens its windows wide, so only the server's own bound can
    hold its answers back."""
    sock = socket.socket()
    # A small receive buffer: the kernel cannot hide the answers the client leaves unread.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.grpc_port))
    sock.sendall(wire.PREFACE + wire.frame(wire.SETTINGS, 0, 0, struct.pack(
        ">HI", wire.SETTINGS_INITIAL_WINDOW_SIZE, wire.MAX_WINDOW)) + wire.frame(
            wire.WINDOW_UPDATE, 0, 0, struct.pack(">I", wire.MAX_WINDOW - wire.DEFAULT_WINDOW)))
    sock.setblocking(False)
    sent, backlog = 0, 0
    deadline = time.monotonic() + seconds
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view and time.monotonic() < deadline:
                try:
                    done = sock.send(view)
                except BlockingIOError:
                    time.sleep(0.01)
                    done = 0
                except (ConnectionResetError, BrokenPipeError):
                    return sent, backlog
                sent, view = sent + done, view[done:]
                backlog = max(backlog, _unsent_bytes(server))
            if time.monotonic() >= deadline:
                break
            time.sleep(pause)
            backlog = max(backlog, _unsent_bytes(server))
    finally:
        sock.close()
    return sent, backlog


def _metadata_calls(batches, per_batch):
    """`batches` chunks of `per_batch` GetModelMetadata calls (~100 bytes each, answered
    with a few KB), stream ids rising throughout."""
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "twotower"
    message, encoder = request.SerializeToString(), hpack.Encoder()
    return [b"".join(raw_h2.call_frames(encoder, 2 * (batch * per_batch + i) + 1, METADATA,
                                        message) for i in range(per_batch))
            for batch in range(batches)]


@pytest.mark.parametrize("flood", ["ping", "settings"])
def test_ping_and_settings_floods_without_reading_are_bounded(hostile, flood):
    """PINGs or SETTINGS whose ACKs are never read."""
    server, _ = hostile
    unit = wire.frame(wire.PING, 0, 0, b"12345678") if flood == "ping" else SETTINGS
    rss = _rss_mb()
    sent, backlog = _flood(server, [unit * 4000] * 500, seconds=4.0)
    assert _rss_mb() - rss < RSS_BOUND_MB, f"{sent} bytes sent"
    assert backlog <= LIMITS.write_buffer_bytes + (256 << 10), backlog
    _assert_still_serving(server)


def test_a_slow_reader_cannot_make_the_server_queue_answers_without_bound(hostile):
    """Calls answered with a few KB each, paced under the stream limit, never read: the
    server stops reading (asyncio: past --write_buffer_bytes) instead of queueing answers."""
    server, _ = hostile
    rss = _rss_mb()
    sent, backlog = _flood(server, _metadata_calls(400, 40), seconds=5.0, pause=0.02)
    assert _rss_mb() - rss < RSS_BOUND_MB, f"{sent} bytes sent"
    # Reading stops once the backlog passes the bound; one read (256 KiB at most) of calls
    # may still add its answers.
    assert backlog <= LIMITS.write_buffer_bytes + (256 << 10), backlog
    _assert_still_serving(server)


def test_held_request_bodies_are_bounded_by_the_connection_window(hostile):
    """50 calls whose 1 MiB bodies never end, on one connection: the server holds at most
    the connection's receive window (--connection_window_bytes), not 50 MiB."""
    server, _ = hostile
    encoder = hpack.Encoder()
    head = [(":method", "POST"), (":scheme", "http"), (":path", PREDICT), (":authority", "x"),
            ("content-type", "application/grpc")]
    unit = b"".join(wire.frame(wire.HEADERS, wire.END_HEADERS, 2 * i + 1, encoder.encode(head))
                    + b"".join(wire.frame(wire.DATA, 0, 2 * i + 1, bytes(16_000))
                               for _ in range(64)) for i in range(50))
    rss = _rss_mb()
    with raw_h2.connect(server.grpc_port, SETTINGS) as sock:
        sock.settimeout(4.0)
        try:
            sock.sendall(unit)
            sent = len(unit)
        except (socket.timeout, ConnectionResetError, BrokenPipeError):
            sent = None  # the windows ran out: the client cannot send more
        assert _rss_mb() - rss < RSS_BOUND_MB, f"sent {sent}"
        _assert_still_serving(server)


def test_an_oversized_error_answer_fits_the_peers_frame_size(hostile):
    """A 60 KB model name quoted back in grpc-message: cut, and split into frames no larger
    than the client's SETTINGS_MAX_FRAME_SIZE (16 KiB here)."""
    server, frontend = hostile
    call = raw_h2.call_frames(hpack.Encoder(), 1, PREDICT, _message("m" * 60_000))
    with raw_h2.connect(server.grpc_port, SETTINGS, call) as sock:
        frames = raw_h2.read_frames(sock, raw_h2.ended(1))
    assert all(len(payload) <= wire.DEFAULT_FRAME_SIZE for *_, payload in frames)
    block = b"".join(payload for kind, _, stream, payload in frames
                     if kind in (wire.HEADERS, wire.CONTINUATION) and stream == 1)
    headers = dict(hpack.Decoder().decode(block, raw=True))
    assert headers[b"grpc-status"] == b"5"  # NOT_FOUND
    if frontend == "asyncio":
        assert len(headers[b"grpc-message"]) == wire.MAX_DETAILS


def test_silent_and_idle_connections_are_closed(hostile):
    """Connections that never send the preface close after the handshake timeout; ones
    that send it and no call close after the idle timeout (asyncio: GOAWAY NO_ERROR)."""
    server, frontend = hostile
    silent = [socket.create_connection(("127.0.0.1", server.grpc_port)) for _ in range(15)]
    idle = [raw_h2.connect(server.grpc_port, SETTINGS) for _ in range(15)]
    started = time.monotonic()
    for sock in silent:
        _, closed = raw_h2.read_until_closed(sock, LIMITS.handshake_timeout_s + 2.0)
        assert closed
    for sock in idle:
        frames, closed = raw_h2.read_until_closed(
            sock, max(LIMITS.idle_timeout_s + 2.0 - (time.monotonic() - started), 0.1))
        assert closed
        if frontend == "asyncio":
            assert raw_h2.goaway_codes(frames) == [wire.NO_ERROR]
    for sock in silent + idle:
        sock.close()
    _assert_still_serving(server)


def test_connections_beyond_the_cap_are_refused(hostile):
    server, frontend = hostile
    held = [raw_h2.connect(server.grpc_port, SETTINGS) for _ in range(LIMITS.max_connections)]
    time.sleep(0.3)
    with raw_h2.connect(server.grpc_port, SETTINGS) as extra:
        frames, closed = raw_h2.read_until_closed(extra, 1.5)
    assert closed
    if frontend == "asyncio":
        assert raw_h2.goaway_codes(frames) == [wire.NO_ERROR]
        # The cap is shared with the REST port.
        with socket.create_connection(("127.0.0.1", server.rest_port), timeout=5) as rest:
            rest.sendall(b"GET /v1/models/twotower HTTP/1.1\r\nHost: x\r\n\r\n")
            assert rest.recv(65536).startswith(b"HTTP/1.1 503 ")
    for sock in held:
        sock.close()
    time.sleep(0.3)
    _assert_still_serving(server)


@pytest.mark.parametrize("frontend", GRPC_FRONTENDS)
def test_tls_needs_alpn_h2_and_an_aead_cipher(tmp_path, frontend):
    server, cert_file = fixtures.tls_server(tmp_path, frontend, limits=LIMITS)
    try:
        # TLS 1.2 with a CBC suite RFC 9113 §9.2.2 forbids: the handshake fails.
        cbc = ssl.create_default_context(cafile=cert_file)
        cbc.maximum_version = ssl.TLSVersion.TLSv1_2
        cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA")
        cbc.set_alpn_protocols(["h2"])
        with pytest.raises(ssl.SSLError):
            with socket.create_connection(("127.0.0.1", server.grpc_port)) as raw:
                cbc.wrap_socket(raw, server_hostname="localhost")
        # No ALPN at all: the server does not speak HTTP/2 to it.
        plain = ssl.create_default_context(cafile=cert_file)
        with socket.create_connection(("127.0.0.1", server.grpc_port)) as raw:
            with plain.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(wire.PREFACE + SETTINGS)
                tls.settimeout(3)
                try:
                    answer = tls.recv(65536)
                except (ssl.SSLError, ConnectionResetError):
                    answer = b""
        assert answer == b""
        with open(cert_file, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        with grpc.secure_channel(f"localhost:{server.grpc_port}", credentials) as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                predict_pb2.PredictRequest.FromString(_message()), timeout=10)
        assert response.model_spec.version.value == 1
    finally:
        server.stop()
