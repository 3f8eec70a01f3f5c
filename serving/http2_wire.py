"""HTTP/2 (RFC 9113) and gRPC-over-HTTP/2 wire details for serving/http2.py (whose
protocol state `h2` keeps): the frames it writes itself (a GOAWAY outside `h2`'s state
machine), frame types, flags, error codes and settings for the raw-frame tests, the
response headers and grpc-status/grpc-message trailers, grpc-timeout."""
from __future__ import annotations

import re
import struct

import grpc

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
# Flags.
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# Error codes (RFC 9113 §7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = \
    0x5, 0x6, 0x7, 0x8, 0x9
ENHANCE_YOUR_CALM = 0xB
# Settings.
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS = 0x1, 0x3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = \
    0x4, 0x5, 0x6

DEFAULT_WINDOW = 65_535
MAX_WINDOW = 2**31 - 1
DEFAULT_FRAME_SIZE = 16_384
MAX_FRAME_SIZE_LIMIT = 2**24 - 1
# What this server advertises besides serving/limits.py's settings: 16 KiB frames (the
# default), 16 KiB of request headers, and a stream receive window of one largest request
# plus one frame (so an oversized body is seen and answered RESOURCE_EXHAUSTED, not a
# flow-control error).
MAX_HEADER_LIST_SIZE = 16_384
STREAM_WINDOW_SLACK = DEFAULT_FRAME_SIZE
# grpc-message is cut to this many characters: a message quoting a huge request field would
# otherwise exceed the client's header list limit (grpc-core's is 8 KiB) and fail the call.
MAX_DETAILS = 1024
LISTEN_BACKLOG = 128

FRAME_HEADER = struct.Struct(">HBBBI")  # 24-bit length as 16 + 8 bits, type, flags, stream id
_TIMEOUT = re.compile(rb"^(\d{1,8})([HMSmun])$")
_TIMEOUT_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: 9-byte header (length, type, flags, stream id) and payload."""
    size = len(payload)
    return FRAME_HEADER.pack(size >> 8, size & 0xFF, kind, flags, stream_id) + payload


def percent_encode(message: str) -> bytes:
    """grpc-message's encoding: UTF-8, then every byte outside %x20-%x7E and '%' as %XX."""
    return b"".join(bytes([byte]) if 0x20 <= byte <= 0x7E and byte != 0x25
                    else b"%%%02X" % byte for byte in message.encode())


def parse_timeout(value: bytes) -> float:
    """grpc-timeout ("<1-8 digits><H|M|S|m|u|n>") in seconds.

    Raises:
      ValueError: a malformed value.
    """
    match = _TIMEOUT.match(value)
    if match is None:
        raise ValueError(f"malformed grpc-timeout {value[:40]!r}")
    return int(match[1]) * _TIMEOUT_UNITS[match[2]]


RESPONSE_HEADERS = [(b":status", b"200"), (b"content-type", b"application/grpc")]
OK_TRAILERS = [(b"grpc-status", b"0")]


def status_headers(code: grpc.StatusCode, details: str) -> list[tuple[bytes, bytes]]:
    """A Trailers-Only response's headers: :status, content-type, grpc-status and
    grpc-message (at most MAX_DETAILS characters of `details`)."""
    headers = RESPONSE_HEADERS + [(b"grpc-status", str(code.value[0]).encode())]
    if len(details) > MAX_DETAILS:
        details = details[:MAX_DETAILS - 16] + " ... (truncated)"
    return headers + ([(b"grpc-message", percent_encode(details))] if details else [])
