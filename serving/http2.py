"""gRPC on asyncio: unary gRPC calls over HTTP/2 framing written for them, without grpc.aio.

grpc.aio spends ~0.2 ms of CPU per request on these cores before any of our code runs; on
2 cores that caps batched gRPC below REST (README "Serving under load"). A probe answering
fixed bytes, measured side by side under h2load at concurrency 16: grpc.aio ~3,300
requests/s, this framing ~13,300/s. This module speaks the part of HTTP/2 (RFC 9113) and
of gRPC's HTTP/2 mapping (grpc/doc/PROTOCOL-HTTP2.md) that unary calls use:

- the connection preface; SETTINGS (acknowledged; the peer's initial window and frame size
  honoured); PING (answered); GOAWAY (sent on stop, honoured when received); RST_STREAM
  (cancels the call); PRIORITY (ignored); padding; CONTINUATION;
- flow control both ways: request bodies give the windows back as they are read,
  responses wait for the peer's WINDOW_UPDATEs and are cut to its frame size;
- request headers decoded with `hpack` (RFC 7541: dynamic table, Huffman); responses use
  literal fields without indexing only, so no encoder state is kept;
- one length-prefixed message per request; the answer is HEADERS, DATA, trailers
  (`grpc-status`, `grpc-message` percent-encoded), or Trailers-Only for an error;
- `grpc-timeout`: a call whose deadline passed before it starts answers DEADLINE_EXCEEDED;
  compressed messages answer UNIMPLEMENTED (only `identity` is accepted).
Streaming calls and server push are not implemented: TF Serving's API has neither.
Errors of the peer's framing close the connection with GOAWAY naming the problem.
"""
from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import struct
import time
from typing import Awaitable, Callable, Optional

from absl import logging
import grpc
import hpack

from serving.http2_wire import (ACK, COMPRESSION_ERROR, CONTINUATION, DATA, DEFAULT_FRAME_SIZE,
                                DEFAULT_WINDOW, END_HEADERS, END_STREAM, FLOW_CONTROL_ERROR,
                                FRAME_SIZE_ERROR, GOAWAY, HEADERS, LISTEN_BACKLOG,
                                MAX_FRAME_SIZE_LIMIT, MAX_HEADER_LIST_SIZE, MAX_WINDOW,
                                NO_ERROR, OK_TRAILERS, PADDED, PING, PREFACE, PRIORITY_FLAG,
                                PROTOCOL_ERROR, PUSH_PROMISE, RECEIVE_WINDOW, REFUSED_STREAM,
                                RESPONSE_HEADERS, RST_STREAM, SETTINGS,
                                SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS,
                                SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE,
                                STREAM_CLOSED, WINDOW_UPDATE, FRAME_HEADER, frame, literal,
                                parse_timeout, status_block)

@dataclasses.dataclass(frozen=True)
class Reply:
    """A handler's answer: the serialized response message when `code` is OK, else the
    status and its details."""

    code: grpc.StatusCode
    message: bytes = b""
    details: str = ""


# (method path, request message) -> Reply; unexpected exceptions answer UNKNOWN.
Handler = Callable[[str, bytes], Awaitable[Reply]]


class ProtocolError(Exception):
    """The peer broke HTTP/2: the connection ends with GOAWAY carrying `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Stream:
    """One request: its header block, body, send window and pending response bytes."""

    __slots__ = ("id", "block", "end_stream", "path", "deadline", "body", "unacked",
                 "window", "out", "task", "refused", "answered")

    def __init__(self, stream_id: int, window: int) -> None:
        self.id = stream_id
        self.block = bytearray()
        self.end_stream = False
        self.path: Optional[str] = None
        self.deadline: Optional[float] = None
        self.body = bytearray()
        self.unacked = 0
        self.window = window
        self.out: Optional[memoryview] = None
        self.task: Optional[asyncio.Task] = None
        self.refused = False
        self.answered = False


class Connection(asyncio.Protocol):
    """One client connection: frames in, calls dispatched as tasks, responses out."""

    def __init__(self, server: "Server") -> None:
        self.server = server
        self.transport: Optional[asyncio.Transport] = None
        self.buffer = bytearray()
        self.preface_seen = False
        self.decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST_SIZE)
        self.streams: dict[int, _Stream] = {}
        self.last_stream = 0
        self.send_window = DEFAULT_WINDOW
        self.peer_window = DEFAULT_WINDOW
        self.peer_frame_size = DEFAULT_FRAME_SIZE
        self.unacked = 0
        self.continuing: Optional[_Stream] = None
        self.blocked: dict[int, _Stream] = {}
        self.closing = False
        self.pending: list[bytes] = []

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        settings = struct.pack(">HIHIHI", SETTINGS_MAX_CONCURRENT_STREAMS,
                               self.server.max_concurrent_streams,
                               SETTINGS_INITIAL_WINDOW_SIZE, RECEIVE_WINDOW,
                               SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST_SIZE)
        self.transport.write(
            frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", RECEIVE_WINDOW - DEFAULT_WINDOW)))

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.server.connections.discard(self)
        for stream in self.streams.values():
            if stream.task is not None:
                stream.task.cancel()
        self.streams.clear()
        self.blocked.clear()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        try:
            if not self.preface_seen:
                if len(buffer) < len(PREFACE):
                    if not PREFACE.startswith(bytes(buffer)):
                        raise ProtocolError(PROTOCOL_ERROR, "not an HTTP/2 connection preface "
                                            "(gRPC needs HTTP/2; REST is on the other port)")
                    return
                if buffer[:len(PREFACE)] != PREFACE:
                    raise ProtocolError(PROTOCOL_ERROR, "not an HTTP/2 connection preface "
                                        "(gRPC needs HTTP/2; REST is on the other port)")
                del buffer[:len(PREFACE)]
                self.preface_seen = True
            position, size = 0, len(buffer)
            while size - position >= 9:
                high, low, kind, flags, stream_id = FRAME_HEADER.unpack_from(buffer, position)
                length = high << 8 | low
                if length > DEFAULT_FRAME_SIZE:
                    raise ProtocolError(FRAME_SIZE_ERROR, f"a frame of {length} bytes exceeds "
                                        f"SETTINGS_MAX_FRAME_SIZE {DEFAULT_FRAME_SIZE}")
                end = position + 9 + length
                if end > size:
                    break
                payload = bytes(buffer[position + 9:end])
                position = end
                self._frame(kind, flags, stream_id & 0x7FFFFFFF, payload)
            del buffer[:position]
        except ProtocolError as e:
            self._go_away(e.code, str(e))
        self._send()

    # -- frames ---------------------------------------------------------------------------

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self.continuing is not None and (kind != CONTINUATION
                                            or stream_id != self.continuing.id):
            raise ProtocolError(PROTOCOL_ERROR, "a header block was interrupted by another "
                                "frame")
        if kind == DATA:
            self._data(flags, stream_id, payload)
        elif kind == HEADERS:
            self._headers(flags, stream_id, payload)
        elif kind == CONTINUATION:
            if self.continuing is None:
                raise ProtocolError(PROTOCOL_ERROR, "CONTINUATION without a header block")
            self._header_fragment(self.continuing, flags, payload)
        elif kind == SETTINGS:
            self._settings(flags, stream_id, payload)
        elif kind == WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == PING:
            if stream_id or len(payload) != 8:
                raise ProtocolError(PROTOCOL_ERROR, "PING must be 8 bytes on stream 0")
            if not flags & ACK:
                self.pending.append(frame(PING, ACK, 0, payload))
        elif kind == RST_STREAM:
            stream = self._forget(stream_id)
            if stream is not None and stream.task is not None:
                stream.task.cancel()
        elif kind == GOAWAY:
            self.closing = True
            if not self.streams:
                self.transport.close()
        elif kind == PUSH_PROMISE:
            raise ProtocolError(PROTOCOL_ERROR, "clients must not send PUSH_PROMISE")
        # PRIORITY and unknown frame types are ignored (RFC 9113 §5.5).

    @staticmethod
    def _unpad(flags: int, payload: bytes) -> bytes:
        if not flags & PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise ProtocolError(PROTOCOL_ERROR, "padding longer than the frame")
        return payload[1:len(payload) - payload[0]]

    def _headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id or not stream_id % 2:
            raise ProtocolError(PROTOCOL_ERROR, f"HEADERS on stream {stream_id} (clients use "
                                "odd stream ids)")
        payload = self._unpad(flags, payload)
        if flags & PRIORITY_FLAG:
            payload = payload[5:]
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id <= self.last_stream:
                raise ProtocolError(STREAM_CLOSED, f"HEADERS on closed stream {stream_id}")
            self.last_stream = stream_id
            stream = _Stream(stream_id, self.peer_window)
            # A refused stream's header block is still decoded: it updates HPACK's table.
            stream.refused = (self.closing
                              or len(self.streams) >= self.server.max_concurrent_streams)
            self.streams[stream_id] = stream
        elif stream.path is None or not flags & END_STREAM:
            raise ProtocolError(PROTOCOL_ERROR, f"a second header block on stream {stream_id} "
                                "without END_STREAM")
        stream.end_stream = bool(flags & END_STREAM)
        self._header_fragment(stream, flags, payload)

    def _header_fragment(self, stream: _Stream, flags: int, payload: bytes) -> None:
        stream.block += payload
        if len(stream.block) > MAX_HEADER_LIST_SIZE:
            raise ProtocolError(COMPRESSION_ERROR, "request headers exceed "
                                f"{MAX_HEADER_LIST_SIZE} bytes")
        if not flags & END_HEADERS:
            self.continuing = stream
            return
        self.continuing = None
        try:
            headers = self.decoder.decode(bytes(stream.block), raw=True)
        except hpack.HPACKError as e:
            raise ProtocolError(COMPRESSION_ERROR, f"undecodable header block: {e}") from e
        stream.block = bytearray()
        if stream.refused:
            self._forget(stream.id)
            self.pending.append(frame(RST_STREAM, 0, stream.id,
                                      struct.pack(">I", REFUSED_STREAM)))
            return
        if stream.path is None:
            self._request_headers(stream, dict(headers))
        if stream.end_stream and self.streams.get(stream.id) is stream:
            self._dispatch(stream)

    def _request_headers(self, stream: _Stream, headers: dict[bytes, bytes]) -> None:
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

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if not stream_id:
            raise ProtocolError(PROTOCOL_ERROR, "DATA on stream 0")
        self.unacked += len(payload)
        if self.unacked >= RECEIVE_WINDOW // 2:
            self.pending.append(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self.unacked)))
            self.unacked = 0
        stream = self.streams.get(stream_id)
        if stream is None:
            if stream_id > self.last_stream:
                raise ProtocolError(PROTOCOL_ERROR, f"DATA on idle stream {stream_id}")
            return  # a stream answered or reset already: its remaining body is dropped
        if stream.path is None:
            raise ProtocolError(PROTOCOL_ERROR, f"DATA before the headers on stream "
                                f"{stream_id}")
        if stream.answered:
            return
        stream.body += self._unpad(flags, payload)
        if len(stream.body) > self.server.max_message_bytes + 5:
            self._answer(stream, Reply(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                details=f"the request exceeds {self.server.max_message_bytes} bytes "
                        "(--max_request_bytes)"))
            return
        if flags & END_STREAM:
            stream.end_stream = True
            self._dispatch(stream)
            return
        stream.unacked += len(payload)
        if stream.unacked >= RECEIVE_WINDOW // 2:
            self.pending.append(frame(WINDOW_UPDATE, 0, stream_id,
                                      struct.pack(">I", stream.unacked)))
            stream.unacked = 0

    def _settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise ProtocolError(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise ProtocolError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise ProtocolError(FRAME_SIZE_ERROR, "SETTINGS payload not a multiple of 6")
        for offset in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, offset)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ProtocolError(FLOW_CONTROL_ERROR, f"initial window {value} too large")
                delta, self.peer_window = value - self.peer_window, value
                for stream in self.streams.values():
                    stream.window += delta
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not DEFAULT_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
                    raise ProtocolError(PROTOCOL_ERROR, f"SETTINGS_MAX_FRAME_SIZE {value} out "
                                        "of range")
                self.peer_frame_size = value
        self.pending.append(frame(SETTINGS, ACK, 0))
        self._flush_blocked()

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ProtocolError(FRAME_SIZE_ERROR, "WINDOW_UPDATE must be 4 bytes")
        increment = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
        if not increment:
            raise ProtocolError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
        if not stream_id:
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise ProtocolError(FLOW_CONTROL_ERROR, "connection window above 2^31-1")
            self._flush_blocked()
            return
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.window += increment
            if stream.window > MAX_WINDOW:
                raise ProtocolError(FLOW_CONTROL_ERROR, f"stream {stream_id} window above "
                                    "2^31-1")
            if stream.out is not None:
                self._flush(stream)

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
            stream.task = asyncio.get_running_loop().create_task(
                self._call(stream, bytes(body[5:])))

    async def _call(self, stream: _Stream, message: bytes) -> None:
        try:
            reply = await self.server.handler(stream.path or "", message)
        except Exception as e:  # pylint: disable=broad-except
            logging.exception("gRPC %s failed", stream.path)
            reply = Reply(grpc.StatusCode.UNKNOWN,
                          details=f"internal error: {type(e).__name__}: {e}")
        stream.task = None
        if self.streams.get(stream.id) is stream and not self.transport.is_closing():
            self._answer(stream, reply)
            self._send()

    def _answer(self, stream: _Stream, reply: Reply) -> None:
        """Queues the response; a body larger than the windows waits for WINDOW_UPDATEs."""
        stream.answered = True
        if reply.code != grpc.StatusCode.OK:
            self.pending.append(frame(HEADERS, END_HEADERS | END_STREAM, stream.id,
                                      status_block(reply.code, reply.details)))
            self._finish(stream)
            return
        self.pending.append(frame(HEADERS, END_HEADERS, stream.id, RESPONSE_HEADERS))
        stream.out = memoryview(b"\x00" + struct.pack(">I", len(reply.message))
                                + reply.message)
        self._flush(stream)

    def _flush(self, stream: _Stream) -> None:
        """Sends what the windows allow of the stream's response, then its trailers."""
        out = stream.out
        while out:
            size = min(len(out), stream.window, self.send_window, self.peer_frame_size)
            if size <= 0:
                stream.out = out
                self.blocked[stream.id] = stream
                return
            self.pending.append(frame(DATA, 0, stream.id, bytes(out[:size])))
            stream.window -= size
            self.send_window -= size
            out = out[size:]
        stream.out = None
        self.blocked.pop(stream.id, None)
        self.pending.append(frame(HEADERS, END_HEADERS | END_STREAM, stream.id, OK_TRAILERS))
        self._finish(stream)

    def _flush_blocked(self) -> None:
        for stream in list(self.blocked.values()):
            if self.send_window <= 0:
                return
            self._flush(stream)

    def _finish(self, stream: _Stream) -> None:
        """Forgets an answered stream; one whose request was not finished is reset."""
        if not stream.end_stream:
            self.pending.append(frame(RST_STREAM, 0, stream.id, struct.pack(">I", NO_ERROR)))
        self._forget(stream.id)

    def _forget(self, stream_id: int) -> Optional[_Stream]:
        self.blocked.pop(stream_id, None)
        stream = self.streams.pop(stream_id, None)
        if self.closing and not self.streams and self.transport is not None:
            self._send()
            self.transport.close()
        return stream

    def _http_error(self, stream: _Stream, status: bytes) -> None:
        """A plain HTTP answer (wrong method or content type): not a gRPC call at all."""
        stream.answered = True
        self.pending.append(frame(HEADERS, END_HEADERS | END_STREAM, stream.id,
                                  literal(b":status", status)))
        self._finish(stream)

    # -- output and shutdown --------------------------------------------------------------

    def _send(self) -> None:
        if self.pending and self.transport is not None:
            self.transport.write(b"".join(self.pending))
            self.pending.clear()

    def _go_away(self, code: int, message: str) -> None:
        logging.warning("gRPC connection closed: %s", message)
        self.pending.append(frame(GOAWAY, 0, 0, struct.pack(">II", self.last_stream, code)
                                  + message.encode()[:256]))
        self._send()
        self.transport.close()

    def shut_down(self) -> None:
        """GOAWAY: no new calls; the connection closes when its calls are answered."""
        self.closing = True
        self.pending.append(frame(GOAWAY, 0, 0, struct.pack(">II", self.last_stream,
                                                            NO_ERROR)))
        self._send()
        if not self.streams:
            self.transport.close()


class Server:
    """Listens for gRPC connections; start/stop on the event loop, like grpc.aio.Server."""

    def __init__(self, handler: Handler, address: tuple[str, int], max_message_bytes: int,
                 max_concurrent_streams: int = 100,
                 tls: Optional[ssl.SSLContext] = None) -> None:
        """Binds the listening socket now, so the port is known before `start`.

        Args:
          handler: Answers one call (path, message) -> Reply.
          address: (host, port); port 0 picks a free one.
          max_message_bytes: The largest request message accepted (RESOURCE_EXHAUSTED
            above).
          max_concurrent_streams: Calls in flight per connection (more are refused).
          tls: A server context; ALPN "h2" is set on it (gRPC clients require it).
        """
        self.handler = handler
        self.max_message_bytes = max_message_bytes
        self.max_concurrent_streams = max_concurrent_streams
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
        self._server = await loop.create_server(lambda: Connection(self), sock=self.socket,
                                                ssl=self.tls)

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
