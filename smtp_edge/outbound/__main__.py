"""``python -m smtp_edge.outbound``: run the delivery worker until SIGTERM or SIGINT.

Prints one line once it runs, e.g.
``smtp_edge.outbound worker mx1.example:1234 on router 127.0.0.1:7000, metrics :9106``.
"""
from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any

from prometheus_client import start_http_server

from smtp_edge.outbound.delivery import Deliverer
from smtp_edge.outbound.dkim import Signer
from smtp_edge.outbound.mx import MxResolver, make_resolver
from smtp_edge.outbound.queue_api import QueueApi
from smtp_edge.outbound.settings import Settings
from smtp_edge.outbound.worker import Worker
from tidings_runtime import logs
from tidings_runtime.periodic import Periodic
from tidings_runtime.ready import write_ready


def build(settings: Settings, api: QueueApi) -> Worker:
    deliverer = Deliverer(MxResolver(make_resolver(settings.resolvers)), hostname=settings.hostname,
                          port=settings.outbound_port, timeouts=settings.timeouts, relay=settings.relay,
                          host_concurrency=settings.host_concurrency)
    return Worker(api, deliverer, Signer(api.signing_keys), worker_id=settings.worker_id,
                  hostname=settings.hostname, schedule=settings.schedule, lifetime_ms=settings.lifetime_ms,
                  lease_s=settings.lease_s, poll_interval_s=settings.poll_interval_s,
                  concurrency=settings.concurrency, send_bounce=api.send_bounce)


async def serve(settings: Settings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    api = QueueApi(settings.router, rpc_timeout=settings.rpc_timeout)
    periodic = Periodic()
    metrics: Any = None
    await api.open()
    worker = build(settings, api)
    try:
        metrics_port = None
        if settings.metrics_port is not None:
            metrics, _ = start_http_server(settings.metrics_port, addr=settings.metrics_host)
            metrics_port = metrics.server_port
        worker.start(periodic)
        write_ready(settings.ready_file, {"metrics": metrics_port})
        shown = f" :{metrics_port}" if metrics_port else " off"
        print(f"{Settings.prog} worker {settings.worker_id} on router {settings.router}, metrics{shown}", flush=True)
        await stopping.wait()
    finally:
        await periodic.stop()
        await worker.stop()
        await api.close()
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings.load(argv)
    logs.setup("delivery_worker", settings.log_level, settings.log_format)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
