"""Prometheus text-format metrics: requests, errors, latency histogram, loaded versions, the
batcher's merged-call sizes, queueing times and refusals, and the history ids the served
models did not know."""
from __future__ import annotations

import asyncio
import bisect
import threading
import time
from collections import defaultdict
from typing import Any, Callable

from twotower.keys import HISTORY_UNKNOWN_OUTPUT

BUCKETS_MS = (0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)
# Per-model histograms and counters the batcher reports (serving/batching.py), and the
# request history ids a model ignored as unknown (serving/model_manager.py).
HISTOGRAMS = {"batch_rows": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
              "batch_queue_ms": (0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100, 250, 1000)}
COUNTERS = ("batch_queue_full", "batch_cancelled", HISTORY_UNKNOWN_OUTPUT)


class _Outcome:
    """Times one request as a context manager; the caller marks errors with `error`."""

    def __init__(self, registry: "Registry", key: tuple[str, str, str]) -> None:
        self.registry = registry
        self.key = key
        self.code = "OK"
        self.started = 0.0

    def error(self, code: str) -> None:
        self.code = code

    def __enter__(self) -> "_Outcome":
        self.started = time.perf_counter()
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if kind is not None and self.code == "OK":
            # A client that goes away mid-request (a load generator stopping, a closed
            # connection) is CANCELLED, as gRPC reports it, not a server error.
            cancelled = issubclass(kind, (asyncio.CancelledError, ConnectionError))
            self.code = "CANCELLED" if cancelled else "INTERNAL"
        self.registry.record(*self.key, self.code, (time.perf_counter() - self.started) * 1000)


class Registry:
    """Thread-safe counters and histograms keyed by (protocol, method, model)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, ...], int] = defaultdict(int)
        self._buckets: dict[tuple[str, ...], list[int]] = defaultdict(
            lambda: [0] * (len(BUCKETS_MS) + 1))
        self._sums: dict[tuple[str, ...], float] = defaultdict(float)
        self._model_histograms: dict[tuple[str, str], list[float]] = {}
        self._model_counters: dict[tuple[str, str], int] = defaultdict(int)

    def timer(self, protocol: str, method: str, model: str) -> _Outcome:
        """Times a request (a context manager); the caller marks errors on it."""
        return _Outcome(self, (protocol, method, model))

    def record(self, protocol: str, method: str, model: str, code: str, ms: float) -> None:
        key = (protocol, method, model)
        with self._lock:
            self._requests[key + (code,)] += 1
            self._buckets[key][bisect.bisect_left(BUCKETS_MS, ms)] += 1
            self._sums[key] += ms

    def observe(self, metric: str, model: str, value: float) -> None:
        """Adds a value to one of HISTOGRAMS (bucket counts, then sum)."""
        bounds = HISTOGRAMS[metric]
        with self._lock:
            counts = self._model_histograms.setdefault((metric, model), [0.0] * (len(bounds) + 2))
            counts[bisect.bisect_left(bounds, value)] += 1
            counts[-1] += value

    def count(self, metric: str, model: str, amount: int = 1) -> None:
        """Adds `amount` to one of COUNTERS."""
        with self._lock:
            self._model_counters[(metric, model)] += amount

    def _render_model_metrics(self) -> list[str]:
        lines = []
        for metric, bounds in HISTOGRAMS.items():
            lines.append(f"# TYPE twotower_{metric} histogram")
            for (name, model), counts in sorted(self._model_histograms.items()):
                if name != metric:
                    continue
                total = 0
                for bound, count in zip(list(bounds) + ["+Inf"], counts):
                    total += int(count)
                    lines.append(f'twotower_{metric}_bucket{{model="{model}",le="{bound}"}} '
                                 f"{total}")
                lines.append(f'twotower_{metric}_sum{{model="{model}"}} {counts[-1]:.3f}')
                lines.append(f'twotower_{metric}_count{{model="{model}"}} {total}')
        for metric in COUNTERS:
            lines.append(f"# TYPE twotower_{metric}_total counter")
            for (name, model), count in sorted(self._model_counters.items()):
                if name == metric:
                    lines.append(f'twotower_{metric}_total{{model="{model}"}} {count}')
        return lines

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
            lines.extend(self._render_model_metrics())
        lines.append("# TYPE twotower_loaded_version gauge")
        for model, version in sorted(loaded_versions().items()):
            lines.append(f'twotower_loaded_version{{model="{model}"}} {version}')
        return "\n".join(lines) + "\n"
