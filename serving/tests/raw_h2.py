"""Raw HTTP/2 frames for the serving tests: a connection that sends exactly the frames a
test writes, and readers that split what comes back into frames."""
import socket
import struct
import time

from serving import http2_wire as wire


def connect(port, *frames, preface=wire.PREFACE):
    """A socket to 127.0.0.1:port that has sent `preface` and `frames`."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(preface + b"".join(frames))
    return sock


def _split(data, frames):
    """Appends the whole frames at the start of `data` to `frames`; returns the rest."""
    while len(data) >= 9 and len(data) >= 9 + int.from_bytes(data[:3], "big"):
        length = int.from_bytes(data[:3], "big")
        frames.append((data[3], data[4], int.from_bytes(data[5:9], "big"), data[9:9 + length]))
        data = data[9 + length:]
    return data


def read_frames(sock, until):
    """Frames (type, flags, stream, payload) read until `until(frames)` or the peer
    closes."""
    frames, data = [], b""
    sock.settimeout(5)
    while not until(frames):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data = _split(data + chunk, frames)
    return frames


def read_until_closed(sock, seconds):
    """(frames, closed): what the peer sent until it closed the connection (a reset
    included) or `seconds` passed."""
    frames, data = [], b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return frames, True
        if not chunk:
            return frames, True
        data = _split(data + chunk, frames)
    return frames, False


def goaway_codes(frames):
    """The error codes of the GOAWAY frames among `frames`."""
    return [struct.unpack(">II", payload[:8])[1] for kind, _, _, payload in frames
            if kind == wire.GOAWAY]


def call_frames(encoder, stream_id, path, message, extra=()):
    """HEADERS and DATA (END_STREAM on the last) of one unary gRPC call to `path`, the
    body cut to the default frame size."""
    headers = encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", path),
                              (":authority", "x"), ("content-type", "application/grpc"),
                              ("te", "trailers"), *extra])
    body = b"\x00" + struct.pack(">I", len(message)) + message
    size = wire.DEFAULT_FRAME_SIZE
    parts = [body[i:i + size] for i in range(0, len(body), size)]
    return (wire.frame(wire.HEADERS, wire.END_HEADERS, stream_id, headers)
            + b"".join(wire.frame(wire.DATA, wire.END_STREAM if i == len(parts) - 1 else 0,
                                  stream_id, part) for i, part in enumerate(parts)))


def ended(stream_id):
    """An `until` for read_frames: the stream's trailers (HEADERS with END_STREAM) came."""
    return lambda frames: any(
        kind == wire.HEADERS and flags & wire.END_STREAM and stream == stream_id
        for kind, flags, stream, _ in frames)
