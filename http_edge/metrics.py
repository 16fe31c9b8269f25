"""Prometheus metrics of the HTTP edge: requests and latency by route and status.

The route label is the matched path template (`/v1/messages/{message_id}`), never
the raw path, so ids do not explode the label set; unmatched paths share one
label. Served on its own port by `__main__` (`prometheus_client.start_http_server`).
"""
from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            IN_FLIGHT.dec()
            route, method = route_label(scope), scope["method"]
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - start)
