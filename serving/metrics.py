"""Prometheus text-format metrics: requests, errors, latency histogram, loaded versions."""
from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections import defaultdict
from typing import Callable, Iterator

BUCKETS_MS = (0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)


class _Outcome:
    def __init__(self) -> None:
        self.code = "OK"

    def error(self, code: str) -> None:
        self.code = code


class Registry:
    """Thread-safe counters and histograms keyed by (protocol, method, model)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, ...], int] = defaultdict(int)
        self._buckets: dict[tuple[str, ...], list[int]] = defaultdict(
            lambda: [0] * (len(BUCKETS_MS) + 1))
        self._sums: dict[tuple[str, ...], float] = defaultdict(float)

    @contextlib.contextmanager
    def timer(self, protocol: str, method: str, model: str) -> Iterator[_Outcome]:
        """Times a request; the caller marks errors on the yielded outcome."""
        outcome = _Outcome()
        started = time.perf_counter()
        try:
            yield outcome
        except BaseException:
            if outcome.code == "OK":
                outcome.error("INTERNAL")
            raise
        finally:
            self.record(protocol, method, model, outcome.code,
                        (time.perf_counter() - started) * 1000)

    def record(self, protocol: str, method: str, model: str, code: str, ms: float) -> None:
        key = (protocol, method, model)
        with self._lock:
            self._requests[key + (code,)] += 1
            self._buckets[key][bisect.bisect_left(BUCKETS_MS, ms)] += 1
            self._sums[key] += ms

    def render(self, loaded_versions: Callable[[], dict[str, int]]) -> str:
        """The text exposition format."""
        lines = ["# TYPE twotower_requests_total counter"]
        with self._lock:
            for (protocol, method, model, code), count in sorted(self._requests.items()):
                lines.append(f'twotower_requests_total{{protocol="{protocol}",method="{method}",'
                             f'model="{model}",code="{code}"}} {count}')
            lines.append("# TYPE twotower_request_latency_ms histogram")
            for (protocol, method, model), counts in sorted(self._buckets.items()):
                labels = f'protocol="{protocol}",method="{method}",model="{model}"'
                total = 0
                for bound, count in zip(list(BUCKETS_MS) + ["+Inf"], counts):
                    total += count
                    lines.append(f'twotower_request_latency_ms_bucket{{{labels},le="{bound}"}} '
                                 f"{total}")
                lines.append(f"twotower_request_latency_ms_sum{{{labels}}} "
                             f"{self._sums[(protocol, method, model)]:.3f}")
                lines.append(f"twotower_request_latency_ms_count{{{labels}}} {total}")
        lines.append("# TYPE twotower_loaded_version gauge")
        for model, version in sorted(loaded_versions().items()):
            lines.append(f'twotower_loaded_version{{model="{model}"}} {version}')
        return "\n".join(lines) + "\n"
