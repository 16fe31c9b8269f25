"""``python -m imap_edge --router 127.0.0.1:7000 --port 2143 --tls-port 2993 --pop3-port 2110``:
run the IMAP and POP3 edge until SIGTERM or SIGINT. Prints one line once it listens, e.g.
``imap_edge listening on 127.0.0.1:2143 (STARTTLS), TLS 2993, POP3 2110, metrics :9109``, and
writes ``{"imap": port, "imaps": port, "pop3": port, "metrics": port}`` to ``--ready-file``."""
from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence

from prometheus_client import start_http_server

from imap_edge.pop3.server import Pop3Server
from imap_edge.server import ImapServer, tls_context
from imap_edge.settings import Settings
from tidings_runtime import logs
from tidings_runtime.ready import write_ready


async def serve(settings: Settings) -> None:
    tls = tls_context(settings)
    server = ImapServer(settings, tls=tls)
    pop3 = None if settings.pop3_port is None else Pop3Server(
        settings.router, settings.host, settings.pop3_port, rpc_timeout=settings.rpc_timeout,
        plaintext_anywhere=settings.plaintext_anywhere, tls=tls)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    metrics_port: int | None = None
    if settings.metrics_port is not None:
        httpd, _ = start_http_server(settings.metrics_port, addr=settings.host)
        metrics_port = httpd.server_port
    try:
        await server.start()
        if pop3 is not None:
            await pop3.start()
        write_ready(settings.ready_file, {"imap": server.port, "imaps": server.tls_port,
                                          "pop3": pop3.port if pop3 else None, "metrics": metrics_port})
        metrics = f":{metrics_port}" if metrics_port is not None else "off"
        pop3_text = f"POP3 {pop3.port}" if pop3 else "POP3 off"
        imaps = f"TLS {server.tls_port}" if server.tls_port else "TLS port off"
        print(f"imap_edge listening on {settings.host}:{server.port} (STARTTLS), {imaps}, {pop3_text}, "
              f"metrics {metrics}", flush=True)
        await stopping.wait()
    finally:
        await server.stop()
        if pop3 is not None:
            await pop3.stop()


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings.load(argv)
    logs.setup("imap_edge", settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        print(f"imap_edge: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
