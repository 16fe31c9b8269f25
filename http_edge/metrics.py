"""Prometheus metrics of the HTTP edge: requests and latency by route and status.

The route label is the matched path template (`/v1/messages/{message_id}`), never
the raw path, so ids do not explode the label set; unmatched paths share one
label. Served on its own port by `__main__` (`prometheus_client.start_http_server`).
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import Scope

REQUESTS = Counter(
    "tidings_http_requests_total", "HTTP requests answered, by method, route and status", ["method", "route", "status"]
)
LATENCY = Histogram(
    "tidings_http_request_duration_seconds",
    "HTTP request latency, by method and route",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
IN_FLIGHT = Gauge("tidings_http_requests_in_flight", "HTTP requests being served")


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def record(method: str, route: str, status: int, seconds: float) -> None:
    """One answered request (observe.py's middleware, which also keeps IN_FLIGHT)."""
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)
