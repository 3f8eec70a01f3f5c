"""gRPC on asyncio: unary gRPC calls over HTTP/2, the protocol kept by `h2`, without grpc.aio.

grpc.aio spends ~0.2 ms of CPU per request on these cores before any of our code runs; on
2 cores that caps batched gRPC below REST (docs/benchmarks.md, serving). This front end
answers the unary calls of gRPC's HTTP/2 mapping (grpc/doc/PROTOCOL-HTTP2.md) on one event
loop. `h2` (python-hyper's HTTP/2 state machine, RFC 9113) owns the protocol: stream states
(a finished stream cannot be dispatched again), header validation, HPACK, flow-control
accounting, frame and CONTINUATION splitting, PING and SETTINGS answers. What is ours:

- gRPC: one length-prefixed message per request; the answer is HEADERS, DATA, trailers
  (`grpc-status`, `grpc-message` percent-encoded and cut to MAX_DETAILS characters), or
  Trailers-Only for an error; `grpc-timeout` (a call whose deadline passed before it starts
  answers DEADLINE_EXCEEDED); compressed messages answer UNIMPLEMENTED.
- The server's protections (serving/limits.py, each a flag): the connection cap; handshake
  and idle timeouts; request bodies held in memory bounded by the connection's receive
  window, which is given back only as calls finish; a rate limit on reset streams (rapid
  reset, GOAWAY ENHANCE_YOUR_CALM); write back-pressure (reading pauses while the client
  leaves more than `write_buffer_bytes` unread); a reset stream cancels its call, including
  a request waiting in the batch queue; TLS requires ALPN h2 and RFC 9113's cipher suites.
- Graceful stop: GOAWAY NO_ERROR written outside `h2` (whose state machine refuses to send
  after its own GOAWAY), so calls in flight are still answered.
Streaming calls and server push are not implemented: TF Serving's API has neither.
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import ssl
import struct
import time
from typing import Awaitable, Callable, Optional

from absl import logging
import grpc
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

from serving.http2_wire import (DEFAULT_WINDOW, GOAWAY, LISTEN_BACKLOG, MAX_HEADER_LIST_SIZE,
                                NO_ERROR, OK_TRAILERS, PREFACE, PROTOCOL_ERROR,
                                RESPONSE_HEADERS, SETTINGS, STREAM_WINDOW_SLACK, frame,
                                parse_timeout, status_headers)
from serving.limits import ConnectionSlots, Limits

_CONFIG = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                    validate_inbound_headers=True,
                                    normalize_inbound_headers=True,
                                    validate_outbound_headers=False,
                                    normalize_outbound_headers=False)
_NOT_HTTP2 = (b"not an HTTP/2 connection preface (gRPC needs HTTP/2; REST is on the other "
              b"port)")
# After its GOAWAY a connection reads and drops input this long before closing: closing a
# socket with unread input makes the kernel send RST, and the client may never see the
# GOAWAY saying why (nginx's lingering close does the same).
LINGER_SECONDS = 2.0


@dataclasses.dataclass(frozen=True)
class Reply:
    """A handler's answer: the serialized response message when `code` is OK, else the
    status and its details."""

    code: grpc.StatusCode
    message: bytes = b""
    details: str = ""


# (method path, request message) -> Reply; unexpected exceptions answer UNKNOWN.
Handler = Callable[[str, bytes], Awaitable[Reply]]


class _Stream:
    """One request: its headers, body, and the response bytes the windows hold back."""

    __slots__ = ("id", "path", "deadline", "body", "received", "out", "task", "complete")

    def __init__(self, stream_id: int) -> None:
        self.id = stream_id
        self.path = ""
        self.deadline: Optional[float] = None
        self.body = bytearray()
        self.received = 0  # flow-controlled bytes, given back when the stream is forgotten
        self.out: Optional[memoryview] = None
        self.task: Optional[asyncio.Task] = None
        self.complete = False  # the client ended its side


class _ResetBudget:
    """A token bucket of stream resets: `rate` a second, bursts of `rate`."""

    __slots__ = ("rate", "tokens", "stamp")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.stamp = time.monotonic()

    def spend(self) -> bool:
        """Takes one reset; False when the budget is exhausted."""
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate) - 1
        self.stamp = now
        return self.tokens >= 0


class Connection(asyncio.Protocol):
    """One client connection: bytes into `h2`, its events into calls, responses out."""

    def __init__(self, server: "Server") -> None:
        self.server = server
        self.limits = server.limits
        self.h2 = h2.connection.H2Connection(config=_CONFIG)
        self.transport: Optional[asyncio.Transport] = None
        self.streams: dict[int, _Stream] = {}
        self.blocked: dict[int, _Stream] = {}
        self.preface = b""
        self.counted = False
        self.closing = False
        self.draining = False
        self.running = 0
        self.last_request = 0.0
        self.timer: Optional[asyncio.TimerHandle] = None
        self.resets = _ResetBudget(self.limits.max_resets_per_second)

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.server.slots.acquire():
            logging.warning("gRPC connection refused: --max_connections %d reached",
                            self.limits.max_connections)
            transport.write(frame(SETTINGS, 0, 0) + frame(  # type: ignore[attr-defined]
                GOAWAY, 0, 0, struct.pack(">II", 0, NO_ERROR) + b"connection limit reached"))
            transport.close()
            return
        self.counted = True
        self.server.connections.add(self)
        tls = transport.get_extra_info("ssl_object")
        if tls is not None and tls.selected_alpn_protocol() != "h2":
            logging.warning("gRPC connection closed: TLS without ALPN h2")
            transport.close()
            return
        self.transport.set_write_buffer_limits(high=self.limits.write_buffer_bytes)
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.limits.max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (self.server.max_message_bytes + 5
                                                           + STREAM_WINDOW_SLACK),
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
            h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self.h2.decoder.max_header_list_size = MAX_HEADER_LIST_SIZE
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(self.limits.connection_window_bytes
                                              - DEFAULT_WINDOW)
        self._send()
        self.last_request = time.monotonic()
        self.timer = asyncio.get_running_loop().call_later(self.limits.handshake_timeout_s,
                                                           self._check_timeouts)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.counted:
            self.server.slots.release()
            self.counted = False
        self.server.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
        for stream in self.streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self.blocked.clear()

    def pause_writing(self) -> None:
        """The client leaves more than `write_buffer_bytes` unread: stop taking its
        requests (and its PINGs and SETTINGS, whose answers would queue too)."""
        if not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.draining:
            return
        if len(self.preface) < len(PREFACE):
            if not self._check_preface(data):
                return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self._fail(f"{type(e).__name__}: {e}")
            return
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                self._data(event)
            elif kind is h2.events.RequestReceived:
                self._request(event)
            elif kind is h2.events.StreamEnded:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    self._dispatch(stream)
            elif kind is h2.events.WindowUpdated or kind is h2.events.RemoteSettingsChanged:
                self._flush_blocked()
            elif kind is h2.events.StreamReset:
                self._reset(event.stream_id)
                if not self.resets.spend():
                    self.h2.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM,
                                             b"too many stream resets")
                    self._fail(f"more than {self.limits.max_resets_per_second:g} stream "
                               "resets a second (--max_resets_per_second)")
                    return
            elif kind is h2.events.ConnectionTerminated:
                self._send()
                self._linger()
                return
        self._send()

    def _check_preface(self, data: bytes) -> bool:
        """False (and the connection closed) unless the bytes so far begin the preface:
        HTTP/1.1 on this port gets a GOAWAY saying where REST is."""
        needed = len(PREFACE) - len(self.preface)
        self.preface += data[:needed]
        if PREFACE.startswith(self.preface):
            return True
        self._send(frame(GOAWAY, 0, 0, struct.pack(">II", 0, PROTOCOL_ERROR) + _NOT_HTTP2))
        self._linger()
        logging.warning("gRPC connection closed: %s", _NOT_HTTP2.decode())
        return False

    # -- events ---------------------------------------------------------------------------

    def _request(self, event: h2.events.RequestReceived) -> None:
        self.last_request = time.monotonic()
        stream_id = event.stream_id
        if self.closing:
            self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        headers = dict(event.headers)
        stream = self.streams[stream_id] = _Stream(stream_id)
        stream.complete = event.stream_ended is not None
        if headers.get(b":method") != b"POST":
            self._http_error(stream, b"405")
            return
        if not headers.get(b"content-type", b"").startswith(b"application/grpc"):
            self._http_error(stream, b"415")
            return
        stream.path = headers.get(b":path", b"").decode("utf-8", "replace")
        timeout = headers.get(b"grpc-timeout")
        if timeout is not None:
            try:
                stream.deadline = time.monotonic() + parse_timeout(timeout)
            except ValueError as e:
                self._answer(stream, Reply(grpc.StatusCode.INTERNAL, details=str(e)))

    def _data(self, event: h2.events.DataReceived) -> None:
        self.last_request = time.monotonic()
        stream = self.streams.get(event.stream_id)
        if stream is None:
            # answered already (an error before its body ended): drop, give the window back
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            return
        stream.complete = event.stream_ended is not None
        stream.received += event.flow_controlled_length
        stream.body += event.data
        if len(stream.body) > self.server.max_message_bytes + 5:
            self._answer(stream, Reply(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                details=f"the request exceeds {self.server.max_message_bytes} bytes "
                        "(--max_request_bytes)"))

    def _reset(self, stream_id: int) -> None:
        """The client reset the stream (or `h2` did for its error): cancel the call."""
        stream = self._forget(stream_id)
        if stream is not None and stream.task is not None:
            stream.task.cancel()

    # -- calls ----------------------------------------------------------------------------

    def _dispatch(self, stream: _Stream) -> None:
        """Checks the request's one message and starts the call."""
        body = stream.body
        if len(body) < 5 or int.from_bytes(body[1:5], "big") != len(body) - 5:
            self._answer(stream, Reply(grpc.StatusCode.INTERNAL, details=(
                "a unary call carries exactly one length-prefixed message")))
        elif body[0]:
            self._answer(stream, Reply(grpc.StatusCode.UNIMPLEMENTED, details=(
                "compressed messages are not supported; send grpc-encoding identity")))
        elif stream.deadline is not None and time.monotonic() >= stream.deadline:
            self._answer(stream, Reply(grpc.StatusCode.DEADLINE_EXCEEDED,
                                       details="deadline exceeded before start"))
        else:
            message = bytes(body[5:])
            stream.body = bytearray()
            self.running += 1
            stream.task = asyncio.get_running_loop().create_task(self._call(stream, message))

    async def _call(self, stream: _Stream, message: bytes) -> None:
        try:
            reply = await self.server.handler(stream.path, message)
        except asyncio.CancelledError:
            self.running -= 1
            raise
        except Exception as e:  # pylint: disable=broad-except
            logging.exception("gRPC %s failed", stream.path)
            reply = Reply(grpc.StatusCode.UNKNOWN,
                          details=f"internal error: {type(e).__name__}: {e}")
        self.running -= 1
        if self.streams.get(stream.id) is stream and self._open():
            self._answer(stream, reply)
            self._send()

    def _answer(self, stream: _Stream, reply: Reply) -> None:
        """Queues the response; a body larger than the windows waits for WINDOW_UPDATEs."""
        try:
            if reply.code != grpc.StatusCode.OK:
                self.h2.send_headers(stream.id, status_headers(reply.code, reply.details),
                                     end_stream=True)
                self._finish(stream)
                return
            self.h2.send_headers(stream.id, RESPONSE_HEADERS)
        except h2.exceptions.StreamClosedError:
            self._forget(stream.id)
            return
        stream.out = memoryview(b"\x00" + struct.pack(">I", len(reply.message))
                                + reply.message)
        self._flush(stream)

    def _flush(self, stream: _Stream) -> None:
        """Sends what the windows allow of the stream's response, then its trailers."""
        out = stream.out
        try:
            while out:
                size = min(len(out), self.h2.local_flow_control_window(stream.id),
                           self.h2.max_outbound_frame_size)
                if size <= 0:
                    stream.out = out
                    self.blocked[stream.id] = stream
                    return
                self.h2.send_data(stream.id, out[:size])
                out = out[size:]
            self.h2.send_headers(stream.id, OK_TRAILERS, end_stream=True)
        except h2.exceptions.StreamClosedError:
            self._forget(stream.id)
            return
        self._finish(stream)

    def _flush_blocked(self) -> None:
        for stream in list(self.blocked.values()):
            self._flush(stream)

    def _finish(self, stream: _Stream) -> None:
        """Forgets an answered stream; one whose request was not finished is reset."""
        if not stream.complete:
            with contextlib.suppress(h2.exceptions.StreamClosedError):  # the client reset it
                self.h2.reset_stream(stream.id, h2.errors.ErrorCodes.NO_ERROR)
        self._forget(stream.id)

    def _forget(self, stream_id: int) -> Optional[_Stream]:
        """Drops the stream and gives its body's bytes back to the connection window."""
        self.blocked.pop(stream_id, None)
        stream = self.streams.pop(stream_id, None)
        if stream is not None and stream.received:
            self.h2.acknowledge_received_data(stream.received, stream_id)
            stream.received = 0
        if self.closing and not self.streams and self.transport is not None:
            self._send()
            self.transport.close()
        return stream

    def _http_error(self, stream: _Stream, status: bytes) -> None:
        """A plain HTTP answer (wrong method or content type): not a gRPC call at all."""
        self.h2.send_headers(stream.id, [(b":status", status)], end_stream=True)
        self._finish(stream)

    # -- timeouts, output and shutdown ----------------------------------------------------

    def _check_timeouts(self) -> None:
        """Closes a connection that has not sent its preface within the handshake timeout,
        or that has had no call running and sent no request for the idle timeout."""
        self.timer = None
        if not self._open():
            return
        now = time.monotonic()
        if len(self.preface) < len(PREFACE):
            logging.warning("gRPC connection closed: no HTTP/2 preface within %gs "
                            "(--handshake_timeout_seconds)", self.limits.handshake_timeout_s)
            self.transport.close()
            return
        due = self.last_request + self.limits.idle_timeout_s
        if self.running == 0 and now >= due:
            self.h2.close_connection(h2.errors.ErrorCodes.NO_ERROR, b"idle")
            self._send()
            self._linger()
            return
        # With calls running, look again within a second of the last one ending.
        self.timer = asyncio.get_running_loop().call_later(max(due - now, 1.0),
                                                           self._check_timeouts)

    def _open(self) -> bool:
        """Whether the connection may still write (not closing, not lingering)."""
        return (self.transport is not None and not self.draining
                and not self.transport.is_closing())

    def _send(self, extra: bytes = b"") -> None:
        """Writes what `h2` has queued, then `extra` (frames written outside `h2`)."""
        data = self.h2.data_to_send() + extra
        if data and self._open():
            self.transport.write(data)

    def _fail(self, message: str) -> None:
        """A connection error: `h2` has queued its GOAWAY; send it, close, cancel calls."""
        logging.warning("gRPC connection closed: %s", message)
        self._send()
        self._linger()
        for stream in self.streams.values():
            if stream.task is not None:
                stream.task.cancel()

    def _linger(self) -> None:
        """Closes after a GOAWAY: no more writes, input dropped until the client closes or
        LINGER_SECONDS pass."""
        self.draining = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.transport.resume_reading()
            asyncio.get_running_loop().call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def shut_down(self) -> None:
        """GOAWAY: no new calls; the connection closes when its calls are answered."""
        self.closing = True
        self._send(frame(GOAWAY, 0, 0, struct.pack(">II", self.h2.highest_inbound_stream_id,
                                                   NO_ERROR)))
        if not self.streams:
            self.transport.close()


class Server:
    """Listens for gRPC connections; start/stop on the event loop, like grpc.aio.Server."""

    def __init__(self, handler: Handler, address: tuple[str, int], max_message_bytes: int,
                 limits: Limits = Limits(), slots: Optional[ConnectionSlots] = None,
                 tls: Optional[ssl.SSLContext] = None) -> None:
        """Binds the listening socket now, so the port is known before `start`.

        Args:
          handler: Answers one call (path, message) -> Reply.
          address: (host, port); port 0 picks a free one.
          max_message_bytes: The largest request message accepted (RESOURCE_EXHAUSTED
            above).
          limits: The protections (serving/limits.py).
          slots: The connection cap, shared with the REST port; None: this server's own.
          tls: A server context; ALPN "h2" is set on it (gRPC clients require it).
        """
        limits.check(max_message_bytes)
        self.handler = handler
        self.max_message_bytes = max_message_bytes
        self.limits = limits
        self.slots = slots or ConnectionSlots(limits.max_connections)
        self.tls = tls
        if tls is not None:
            tls.set_alpn_protocols(["h2"])
        self.socket = socket.create_server(address, backlog=LISTEN_BACKLOG)
        self.port: int = self.socket.getsockname()[1]
        self.connections: set[Connection] = set()
        self._server: Optional[asyncio.AbstractServer] = None

    async def start(self) -> None:
        """Starts accepting connections; call on the loop."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self), sock=self.socket, ssl=self.tls,
            ssl_handshake_timeout=self.limits.handshake_timeout_s if self.tls else None)

    async def stop(self, grace: float) -> None:
        """Stops accepting, sends GOAWAY, waits up to `grace` s for calls in flight, then
        closes every connection; call on the loop."""
        if self._server is None:
            self.socket.close()
            return
        self._server.close()
        for connection in list(self.connections):
            connection.shut_down()
        deadline = time.monotonic() + grace
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.transport.abort()
        await self._server.wait_closed()
