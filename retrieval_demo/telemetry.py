"""Request counts and latency of the search server, in the Prometheus text exposition format (``GET /metrics``).

Counters and a latency histogram per route template (``/thumb/{rel:path}``, never the concrete path, so the
number of series stays bounded) and status code; the buckets follow Prometheus's defaults from 1 ms to 10 s.
No dependency: the format is a few lines of text (prometheus.io/docs/instrumenting/exposition_formats).
"""
from __future__ import annotations

import bisect
import threading
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    """Thread-safe: the server's worker threads call :meth:`observe`, ``/metrics`` calls :meth:`render`."""

    def __init__(self, gauges: dict[str, float] | None = None) -> None:
        self._lock = threading.Lock()
        self._count: dict[tuple[str, str, int], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self._sum: dict[str, float] = defaultdict(float)
        self._n: dict[str, int] = defaultdict(int)
        self.gauges = dict(gauges or {})

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._count[(method, route, status)] += 1
            i = bisect.bisect_left(BUCKETS, seconds)
            if i < len(BUCKETS):
                self._buckets[route][i] += 1
            self._sum[route] += seconds
            self._n[route] += 1

    def total(self, route: str | None = None) -> int:
        with self._lock:
            return sum(n for (_, r, _), n in self._count.items() if route is None or r == route)

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP edgedistill_requests_total Requests answered, by method, route and status code.",
                     "# TYPE edgedistill_requests_total counter"]
            for (method, route, status), n in sorted(self._count.items()):
                lines.append(f'edgedistill_requests_total{{method="{method}",route="{_esc(route)}",'
                             f'status="{status}"}} {n}')
            lines += ["# HELP edgedistill_request_duration_seconds Time to answer a request, by route.",
                      "# TYPE edgedistill_request_duration_seconds histogram"]
            for route in sorted(self._n):
                label = f'route="{_esc(route)}"'
                cumulative = 0
                for le, n in zip(BUCKETS, self._buckets[route]):
                    cumulative += n
                    lines.append(f'edgedistill_request_duration_seconds_bucket{{{label},le="{le}"}} {cumulative}')
                lines.append(f'edgedistill_request_duration_seconds_bucket{{{label},le="+Inf"}} {self._n[route]}')
                lines.append(f"edgedistill_request_duration_seconds_sum{{{label}}} {self._sum[route]:.6f}")
                lines.append(f"edgedistill_request_duration_seconds_count{{{label}}} {self._n[route]}")
            for name, value in sorted(self.gauges.items()):
                lines += [f"# TYPE edgedistill_{name} gauge", f"edgedistill_{name} {value}"]
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
