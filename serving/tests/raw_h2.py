"""Raw HTTP/2 frames for the serving tests: a connection that sends exactly the frames a
test writes, and a reader that splits what comes back into frames."""
import socket
import struct

from serving import http2_wire as wire


def connect(port, *frames, preface=wire.PREFACE):
    """A socket to 127.0.0.1:port that has sent `preface` and `frames`."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(preface + b"".join(frames))
    return sock


def read_frames(sock, until):
    """Frames (type, flags, stream, payload) read until `until(frames)` or the peer
    closes."""
    frames, data = [], b""
    sock.settimeout(5)
    while not until(frames):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        while len(data) >= 9 and len(data) >= 9 + int.from_bytes(data[:3], "big"):
            length = int.from_bytes(data[:3], "big")
            frames.append((data[3], data[4], int.from_bytes(data[5:9], "big"), data[9:9 + length]))
            data = data[9 + length:]
    return frames


def call_frames(encoder, stream_id, path, message, extra=()):
    """HEADERS and DATA (END_STREAM) of one unary gRPC call to `path`."""
    headers = encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", path),
                              (":authority", "x"), ("content-type", "application/grpc"),
                              ("te", "trailers"), *extra])
    body = b"\x00" + struct.pack(">I", len(message)) + message
    return (wire.frame(wire.HEADERS, wire.END_HEADERS, stream_id, headers)
            + wire.frame(wire.DATA, wire.END_STREAM, stream_id, body))


def ended(stream_id):
    """An `until` for read_frames: the stream's trailers (HEADERS with END_STREAM) came."""
    return lambda frames: any(
        kind == wire.HEADERS and flags & wire.END_STREAM and stream == stream_id
        for kind, flags, stream, _ in frames)
