"""Load from outside the server's process with h2load (nghttp2's C HTTP/2 load generator).

gRPC over HTTP/2 is a POST to /<service>/<method> with `content-type: application/grpc`
and a body framed as 1 byte "compressed" flag + 4 bytes big-endian length + the serialized
message, so h2load can send a pre-serialized PredictRequest unchanged. REST goes over
HTTP/1.1 (`--h1`; the REST server speaks HTTP/1.1, as TF Serving's does). h2load's
`--log-file` has every request's status and duration, so percentiles are computed here,
not read from its summary. h2load counts a request by its HTTP status; a gRPC error is an
HTTP 200 with a non-zero grpc-status trailer, so the caller also counts errors from the
server's /metrics.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import struct
import subprocess
import tempfile
from typing import Optional

import numpy as np

from twotower.errors import TwoTowerError

INSTALL_HINT = ("h2load is not installed: `apt-get install nghttp2-client` (Debian/Ubuntu) "
                "adds it; without it only the Python-client and in-process rows are measured")
GRPC_HEADERS = ("content-type: application/grpc", "te: trailers")
REST_HEADERS = ("content-type: application/json",)


def binary() -> Optional[str]:
    """The h2load executable, or None."""
    return shutil.which("h2load")


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: uncompressed flag, 4-byte big-endian length, body."""
    return struct.pack(">BI", 0, len(message)) + message


@dataclasses.dataclass
class Result:
    """One h2load run: every request's HTTP status and duration."""

    statuses: np.ndarray
    durations_ms: np.ndarray
    wall_s: float

    def summary(self) -> dict[str, float]:
        """requests (2xx), http_errors, qps and p50/p95/p99/mean latency in ms of 2xx."""
        ok = (self.statuses >= 200) & (self.statuses < 300)
        times = self.durations_ms[ok] if ok.any() else np.array([float("nan")])
        return {"requests": int(ok.sum()), "http_errors": int((~ok).sum()),
                "qps": round(float(ok.sum()) / self.wall_s, 1),
                "mean_ms": round(float(times.mean()), 3),
                "p50_ms": round(float(np.percentile(times, 50)), 3),
                "p95_ms": round(float(np.percentile(times, 95)), 3),
                "p99_ms": round(float(np.percentile(times, 99)), 3)}


def parse_log(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start µs since epoch, HTTP status, duration ms) from h2load's --log-file lines
    (tab-separated: start time in µs, status, µs until the response ended)."""
    rows = [line.split("\t")[:3] for line in text.splitlines() if line.strip()]
    if not rows:
        return np.zeros(0), np.zeros(0, np.int64), np.zeros(0)
    values = np.array(rows, dtype=np.float64)
    return values[:, 0], values[:, 1].astype(np.int64), values[:, 2] / 1000.0


def run(url: str, body: bytes, headers: tuple[str, ...], concurrency: int, seconds: float,
        http1: bool = False, max_requests: Optional[int] = None) -> Result:
    """Closed loop: `concurrency` connections, one request in flight on each.

    Args:
      url: http://host:port/path.
      body: The request body sent every time (POST).
      headers: Extra request headers, "name: value".
      concurrency: Connections (h2load -c), each with one stream at a time (-m 1).
      seconds: Duration (-D); ignored when max_requests is given.
      http1: Use HTTP/1.1 (--h1) instead of HTTP/2 prior knowledge.
      max_requests: A fixed request count (-n) instead of a duration.

    Raises:
      TwoTowerError: h2load is missing, fails (its output is quoted) or hangs.
    """
    executable = binary()
    if executable is None:
        raise TwoTowerError(INSTALL_HINT)
    with tempfile.TemporaryDirectory() as tmp:
        body_path, log_path = os.path.join(tmp, "body"), os.path.join(tmp, "log.tsv")
        with open(body_path, "wb") as f:
            f.write(body)
        command = [executable, "-c", str(concurrency), "-m", "1", "-t", "1", "-d", body_path,
                   "--log-file", log_path]
        command += (["-n", str(max_requests)] if max_requests
                    else ["-D", f"{max(1, round(seconds * 1000))}ms"])
        if http1:
            command.append("--h1")
        for header in headers:
            command += ["-H", header]
        try:
            finished = subprocess.run(command + [url], capture_output=True, text=True,
                                      timeout=seconds + 120, check=False)
        except subprocess.TimeoutExpired as e:
            raise TwoTowerError(f"h2load did not finish within {seconds + 120:.0f} s: "
                                f"{' '.join(command + [url])}") from e
        if finished.returncode != 0:
            raise TwoTowerError(f"h2load failed ({finished.returncode}): "
                                f"{(finished.stderr or finished.stdout)[-800:]}")
        with open(log_path) as f:
            starts, statuses, durations = parse_log(f.read())
    if not len(starts):
        raise TwoTowerError(f"h2load logged no request: {finished.stdout[-800:]}")
    wall = (starts.max() - starts.min()) / 1e6 + float(np.median(durations)) / 1000.0
    return Result(statuses, durations, max(wall, 1e-6))


def main(argv: Optional[list[str]] = None) -> None:
    """Writes the gRPC frame and REST body the bench sends, for running h2load by hand
    against any server with TF Serving's API (docs/benchmarks.md "Serving under load")."""
    import argparse  # pylint: disable=import-outside-toplevel
    import pathlib  # pylint: disable=import-outside-toplevel
    from benchmarks import serving  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", required=True, help="a pushed version folder (its warm-up "
                                                       "requests give the query rows)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--model_name", default="twotower")
    parser.add_argument("--out", default=".", help="folder for request.grpc and request.json")
    args = parser.parse_args(argv)
    request = serving.Request(serving.features(args.model, args.batch), args.model_name)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "request.grpc").write_bytes(request.grpc_frame)
    (out / "request.json").write_bytes(request.rest_body)
    print(f"wrote {out / 'request.grpc'} and {out / 'request.json'}")


if __name__ == "__main__":
    main()
