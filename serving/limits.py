"""What the model server's front ends allow a client: the protections against hostile or
broken clients, each a `twotower serve` flag (serving/flags.py) with its default here, and
the connection cap shared by the gRPC and REST ports.

docs/operations.md lists each limit with its flag and what a client sees when it hits it.
"""
from __future__ import annotations

import dataclasses

from twotower.errors import TwoTowerError


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-server protections (flag names in the field comments).

    Attributes:
      max_connections: Open connections on the gRPC and REST ports together
        (--max_connections); a connection beyond it is answered (HTTP/2 GOAWAY, HTTP 503)
        and closed.
      handshake_timeout_s: A new connection must finish TLS and send the HTTP/2 preface
        within this (--handshake_timeout_seconds).
      request_timeout_s: A REST request's head and body must arrive within this of its first
        byte (--request_timeout_seconds); 408 otherwise.
      idle_timeout_s: A connection with no call running and no request bytes received for
        this long is closed (--idle_timeout_seconds); HTTP/2 says GOAWAY NO_ERROR first.
      max_concurrent_streams: Calls in flight per HTTP/2 connection
        (--max_concurrent_streams; SETTINGS_MAX_CONCURRENT_STREAMS).
      connection_window_bytes: Request body bytes one HTTP/2 connection may hold unanswered
        (--connection_window_bytes): its receive window, given back only as calls finish.
      max_resets_per_second: Streams a client may reset (or have reset for its errors) per
        second on one HTTP/2 connection, with a burst of as many
        (--max_resets_per_second); beyond it, GOAWAY ENHANCE_YOUR_CALM.
      write_buffer_bytes: Response bytes queued for a client that does not read
        (--write_buffer_bytes); above it the server stops reading from that connection
        until the client drains it.
    """

    max_connections: int = 1000
    handshake_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    idle_timeout_s: float = 300.0
    max_concurrent_streams: int = 100
    connection_window_bytes: int = 16 << 20
    max_resets_per_second: float = 200.0
    write_buffer_bytes: int = 1 << 20

    def check(self, max_request_bytes: int) -> None:
        """Raises TwoTowerError naming the flag of the first setting out of range."""
        positive = {"--max_connections": self.max_connections,
                    "--handshake_timeout_seconds": self.handshake_timeout_s,
                    "--request_timeout_seconds": self.request_timeout_s,
                    "--idle_timeout_seconds": self.idle_timeout_s,
                    "--max_concurrent_streams": self.max_concurrent_streams,
                    "--max_resets_per_second": self.max_resets_per_second,
                    "--write_buffer_bytes": self.write_buffer_bytes}
        for flag, value in positive.items():
            if not value > 0:
                raise TwoTowerError(f"{flag} must be > 0, got {value}")
        if not max_request_bytes + 5 <= self.connection_window_bytes <= 2**31 - 1:
            raise TwoTowerError(
                f"--connection_window_bytes {self.connection_window_bytes} must hold one "
                f"request (--max_request_bytes {max_request_bytes} + 5) and be < 2^31")


class ConnectionSlots:
    """The connection cap, counted across the front ends of one server (one event loop, so
    no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def acquire(self) -> bool:
        """Takes a slot; False when every slot is taken."""
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1
