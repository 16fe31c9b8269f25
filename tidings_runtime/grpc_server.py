"""Running a grpc.aio server the way every Tidings gRPC process does: health checking,
server reflection, Prometheus /metrics on its own port, a clean stop on SIGINT/SIGTERM.

Shared by the storage node and the router.
"""
from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from tidings_runtime.logs import RequestIdServerInterceptor
from tidings_runtime.ready import write_ready

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


@dataclass(frozen=True)
class Mounted:
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    service_name: str


async def serve(mounted: list[Mounted], listen: str, metrics_port: int | None, banner: str,
                on_start: Callable[[], Awaitable[None]] | None = None,
                on_stop: Callable[[], Awaitable[None]] | None = None, ready_file: Path | None = None,
                on_stopping: Callable[[], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM. `listen` may have port 0 and `metrics_port` may be 0
    (any free port; None: no metrics); the bound ports are printed and, once serving,
    written to `ready_file` as {"grpc": ..., "metrics": ...}."""
    server = grpc.aio.server(options=CHANNEL_OPTIONS, interceptors=[RequestIdServerInterceptor()])
    for m in mounted:
        m.add_to_server(m.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [m.service_name for m in mounted]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise SystemExit(f"cannot listen on {listen}")
    host = listen.rpartition(":")[0]
    bound_metrics = None
    if metrics_port is not None:  # on the gRPC address: clusters on 127.0.0.1 and .2 share port numbers
        metrics_server, _ = start_http_server(metrics_port, addr=host.strip("[]"))
        bound_metrics = metrics_server.server_port
    if on_start is not None:
        await on_start()
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    write_ready(ready_file, {"grpc": port, "metrics": bound_metrics})
    print(f"{banner} listening on {host}:{port}" + (f", metrics :{bound_metrics}" if bound_metrics else ""),
          flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if on_stopping is not None:     # before the grace: long-lived streams end now, not at its end
        on_stopping()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.stop(grace=2)
    if on_stop is not None:
        await on_stop()
