"""serving/http2.py and http2_wire.py: the encodings by hand, the protocol through grpcio's
client and raw frames."""
import argparse
import asyncio
import concurrent.futures
import struct
import threading
import time

import grpc
import hpack
import pytest

from serving import flags, http2
from serving.limits import Limits
from serving import http2_wire as wire
from serving.tests import raw_h2

ECHO = "/test.Echo/Echo"


def test_frame_and_status_header_encodings_by_hand():
    assert wire.frame(wire.PING, wire.ACK, 0, b"12345678") == (
        b"\x00\x00\x08" b"\x06" b"\x01" b"\x00\x00\x00\x00" b"12345678")
    assert wire.frame(wire.DATA, 0, 3, b"x" * 70_000)[:9] == b"\x01\x11\x70\x00\x00\x00\x00\x00\x03"
    assert wire.status_headers(grpc.StatusCode.NOT_FOUND, "no model 'm'") == [
        (b":status", b"200"), (b"content-type", b"application/grpc"),
        (b"grpc-status", b"5"), (b"grpc-message", b"no model 'm'")]
    assert wire.status_headers(grpc.StatusCode.INTERNAL, "")[-1] == (b"grpc-status", b"13")
    # A 60 KB detail (a model name quoted back) is cut to MAX_DETAILS characters.
    long = dict(wire.status_headers(grpc.StatusCode.NOT_FOUND, "x" * 60_000))[b"grpc-message"]
    assert len(long) == wire.MAX_DETAILS and long.endswith(b"... (truncated)")


def test_percent_encoding_and_timeouts():
    assert wire.percent_encode("k must be < 100%\nnaïve") == b"k must be < 100%25%0Ana%C3%AFve"
    assert wire.parse_timeout(b"250m") == pytest.approx(0.25)
    assert wire.parse_timeout(b"3S") == 3.0 and wire.parse_timeout(b"2H") == 7200.0
    assert wire.parse_timeout(b"99999999n") == pytest.approx(0.099999999)
    for bad in (b"", b"10", b"1.5S", b"123456789S", b"5s"):
        with pytest.raises(ValueError, match="malformed grpc-timeout"):
            wire.parse_timeout(bad)


class _Loop:
    """An event loop on a thread, as the model server runs its front ends."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture(name="echo")
def fixture_echo(request):
    """A server whose handler echoes (or sizes, fails, sleeps on) the request; yields
    (server, channel, events)."""
    events = {"cancelled": 0, "started": threading.Event()}

    async def handler(path, message):
        if path != ECHO:
            return http2.Reply(grpc.StatusCode.UNIMPLEMENTED, details=f"no method {path}")
        if message.startswith(b"big:"):
            return http2.Reply(grpc.StatusCode.OK, bytes(range(256)) * int(message[4:]))
        if message == b"fail":
            return http2.Reply(grpc.StatusCode.INVALID_ARGUMENT, details="k must be < 100%")
        if message == b"raise":
            raise RuntimeError("boom")
        if message.startswith(b"sleep:"):
            events["started"].set()
            try:
                await asyncio.sleep(float(message[6:]))
            except asyncio.CancelledError:
                events["cancelled"] += 1
                raise
        return http2.Reply(grpc.StatusCode.OK, message)

    loop = _Loop()
    server = loop.run(_make_server(handler, 1 << 20, getattr(request, "param", Limits())))
    loop.run(server.start())
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}", options=[
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.max_send_message_length", 64 << 20)])
    yield server, loop, channel, events
    channel.close()
    loop.run(server.stop(grace=1))
    loop.close()


async def _make_server(handler, max_message_bytes, limits):
    return http2.Server(handler, ("127.0.0.1", 0), max_message_bytes, limits)


def _echo(channel, message, timeout=10):
    return channel.unary_unary(ECHO)(message, timeout=timeout)


def test_grpc_client_calls_multiplexed_and_large(echo):
    _, _, channel, _ = echo
    assert _echo(channel, b"hello") == b"hello"
    # 1 MiB + response: beyond the client's initial windows and frame size.
    assert _echo(channel, b"big:5000") == bytes(range(256)) * 5000
    # Requests just under the limit; five of them pass the connection's 4 MiB receive
    # window, so they need its WINDOW_UPDATEs.
    payload = bytes(1 << 20)
    for _ in range(5):
        assert _echo(channel, payload) == payload
    calls = [channel.unary_unary(ECHO).future(str(i).encode() * 100, timeout=10)
             for i in range(200)]
    assert [call.result() for call in calls] == [str(i).encode() * 100 for i in range(200)]


def test_errors_reach_the_client_with_code_and_message(echo):
    _, _, channel, _ = echo
    cases = [(b"fail", grpc.StatusCode.INVALID_ARGUMENT, "k must be < 100%"),
             (b"raise", grpc.StatusCode.UNKNOWN, "internal error: RuntimeError: boom"),
             (bytes((1 << 20) + 1), grpc.StatusCode.RESOURCE_EXHAUSTED,
              "the request exceeds 1048576 bytes (--max_request_bytes)")]
    for message, code, details in cases:
        with pytest.raises(grpc.RpcError) as error:
            _echo(channel, message)
        assert (error.value.code(), error.value.details()) == (code, details)
    with pytest.raises(grpc.RpcError) as error:
        channel.unary_unary("/test.Echo/Nope")(b"x", timeout=10)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert _echo(channel, b"still fine") == b"still fine"


def test_deadlines_cancel_the_call_and_stop_waits_for_calls_in_flight(echo):
    server, loop, channel, events = echo
    with pytest.raises(grpc.RpcError) as error:
        _echo(channel, b"sleep:5", timeout=0.2)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 5
    while not events["cancelled"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events["cancelled"] == 1  # the client's RST_STREAM cancelled the handler
    events["started"].clear()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(_echo, channel, b"sleep:0.3")
        assert events["started"].wait(5)
        loop.run(server.stop(grace=5))
        assert in_flight.result() == b"sleep:0.3"
    with pytest.raises(grpc.RpcError) as error:
        _echo(channel, b"after stop", timeout=2)
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE


def test_raw_frames_http_errors_and_protocol_errors(echo):
    server, _, _, _ = echo
    encoder = hpack.Encoder()
    settings = wire.frame(wire.SETTINGS, 0, 0)
    get = wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, 1, encoder.encode(
        [(":method", "GET"), (":scheme", "http"), (":path", ECHO), (":authority", "x")]))
    plain = wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, 3, encoder.encode(
        [(":method", "POST"), (":scheme", "http"), (":path", ECHO), (":authority", "x"),
         ("content-type", "text/plain")]))
    ping = wire.frame(wire.PING, 0, 0, b"pingpong")
    with raw_h2.connect(server.port, settings, get, plain, ping) as sock:
        frames = raw_h2.read_frames(sock, lambda f: sum(t == wire.HEADERS for t, *_ in f) == 2
                                    and any(t == wire.PING for t, *_ in f))
    decoder = hpack.Decoder()
    answers = {stream: decoder.decode(payload, raw=True)
               for kind, _, stream, payload in frames if kind == wire.HEADERS}
    assert answers == {1: [(b":status", b"405")], 3: [(b":status", b"415")]}
    assert (wire.PING, wire.ACK, 0, b"pingpong") in frames
    assert (wire.SETTINGS, wire.ACK, 0, b"") in frames
    # HTTP/1.1 on the gRPC port, and a frame larger than advertised: GOAWAY naming it.
    with raw_h2.connect(server.port, preface=b"GET /v1/models/m HTTP/1.1\r\n\r\n") as sock:
        frames = raw_h2.read_frames(sock, lambda f: False)
    goaway = [payload for kind, _, _, payload in frames if kind == wire.GOAWAY]
    assert struct.unpack(">II", goaway[0][:8])[1] == wire.PROTOCOL_ERROR
    assert b"REST is on the other port" in goaway[0]
    data_first = wire.frame(wire.DATA, 0, 1, bytes(20_000))
    with raw_h2.connect(server.port, settings, data_first) as sock:
        frames = raw_h2.read_frames(sock, lambda f: False)
    goaway = [payload for kind, _, _, payload in frames if kind == wire.GOAWAY]
    assert struct.unpack(">II", goaway[0][:8])[1] == wire.FRAME_SIZE_ERROR


def test_responses_wait_for_the_peers_window_and_fit_its_frame_size(echo):
    server, _, _, _ = echo
    encoder = hpack.Encoder()
    # The client's streams may receive 1,000 bytes until it gives more; the response is
    # 2,560 bytes + 5 of message prefix.
    small_window = wire.frame(wire.SETTINGS, 0, 0, struct.pack(
        ">HI", wire.SETTINGS_INITIAL_WINDOW_SIZE, 1000))
    call = raw_h2.call_frames(encoder, 1, ECHO, b"big:10")
    with raw_h2.connect(server.port, small_window, call) as sock:
        frames = raw_h2.read_frames(sock, lambda f: sum(
            len(p) for t, _, s, p in f if t == wire.DATA and s == 1) >= 1000)
        time.sleep(0.2)  # nothing more may come until the window grows
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(65536)
        sock.setblocking(True)
        received = sum(len(p) for t, _, s, p in frames if t == wire.DATA and s == 1)
        assert received == 1000
        sock.sendall(wire.frame(wire.WINDOW_UPDATE, 0, 1, struct.pack(">I", 10_000)))
        frames += raw_h2.read_frames(sock, raw_h2.ended(1))
    body = b"".join(p for t, _, s, p in frames if t == wire.DATA and s == 1)
    assert body == b"\x00" + struct.pack(">I", 2560) + bytes(range(256)) * 10
    assert all(len(p) <= wire.DEFAULT_FRAME_SIZE for t, _, _, p in frames if t == wire.DATA)
    trailers = [p for t, flags, _, p in frames if t == wire.HEADERS and flags & wire.END_STREAM]
    assert hpack.Decoder().decode(trailers[-1], raw=True) == [(b"grpc-status", b"0")]


def test_grpc_frontend_flag(capsys, tmp_path):
    parser = argparse.ArgumentParser()
    flags.add_arguments(parser)
    options = flags.options_from_args(parser.parse_args(["--model_base_path", str(tmp_path)]))
    assert options.grpc_frontend == "grpcio"
    options = flags.options_from_args(parser.parse_args(["--model_base_path", str(tmp_path),
                                                         "--grpc_frontend", "asyncio"]))
    assert options.grpc_frontend == "asyncio"
    with pytest.raises(SystemExit):
        parser.parse_args(["--grpc_frontend", "h2"])
    assert "invalid choice: 'h2' (choose from 'asyncio', 'grpcio')" in capsys.readouterr().err
