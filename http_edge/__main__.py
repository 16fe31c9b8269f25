"""`python -m http_edge --router 127.0.0.1:7000 --port 8080 --metrics-port 9105 ...`

Binds the listening socket itself (so port 0 works and the printed address is
the real one), starts the metrics endpoint, runs uvicorn, and stops cleanly
(exit 0) on SIGINT or SIGTERM.
"""
from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Sequence

import uvicorn
from prometheus_client import start_http_server

from tidings_runtime import event_loop, logs
from tidings_runtime.ready import write_ready

from .app import create_app
from .settings import Settings


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on the accepted sockets only when their
    # proto says TCP, and without it an answer's second write (uvicorn sends the headers and the
    # body apart) waits for the client's delayed ACK: 40 ms on every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _serve(settings: Settings, sock: socket.socket, metrics_port: int | None) -> None:
    config = uvicorn.Config(
        create_app(settings),
        log_level=settings.log_level,
        log_config=None,     # uvicorn's loggers go to ours (tidings_runtime/logs.py)
        access_log=False,    # the access line is http_edge/access_log.py's
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        http="httptools",   # the C parser (pinned in pyproject), not h11 in Python: ~0.1 ms CPU less a request
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not task.done():
        await asyncio.sleep(0.02)
    if server.started:
        port = sock.getsockname()[1]
        metrics = f":{metrics_port}" if metrics_port is not None else "off"
        write_ready(settings.ready_file, {"http": port, "metrics": metrics_port})
        print(f"http_edge listening on http://{_url_host(settings.host)}:{port}, metrics {metrics}", flush=True)
    await task


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings.load(argv)
    logs.setup("http_edge", settings.log_level, settings.log_format)
    try:
        sock = _bind(settings.host, settings.port)
        metrics_port = None
        if settings.metrics_port is not None:
            httpd, _ = start_http_server(settings.metrics_port, addr=settings.metrics_host or settings.host)
            metrics_port = httpd.server_port
    except OSError as exc:
        print(f"http_edge: cannot listen: {exc}", file=sys.stderr)
        return 1
    # uvicorn handles SIGINT/SIGTERM (graceful shutdown, lifespan closes the
    # router channel) and re-raises the signal afterwards to the handler found
    # here: a no-op, so the process then exits 0 instead of dying by signal.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: None)
    try:
        event_loop.run(_serve(settings, sock, metrics_port))
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
