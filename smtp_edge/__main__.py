"""``python -m smtp_edge``: run the SMTP edge until SIGTERM or SIGINT.

Prints one line when both listeners are up, e.g.
``smtp_edge listening on 127.0.0.1:2525 (submission 2587), metrics :9104``.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from smtp_edge.config import Settings
from smtp_edge.server import SmtpEdge
from tidings_runtime import event_loop, logs
from tidings_runtime.ready import write_ready


async def serve(settings: Settings) -> None:
    edge = SmtpEdge(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await edge.start()
        write_ready(settings.ready_file, {"smtp": edge.mx_port, "submission": edge.submission_port,
                                          "metrics": edge.metrics_port or None})
        print(edge.banner(), flush=True)
        await stopping.wait()
    finally:
        await edge.stop()


def main(argv: Sequence[str] | None = None) -> int:
    settings = Settings.load(argv)
    logs.setup("smtp_edge", settings.log_level, settings.log_format)
    logging.getLogger("mail.log").setLevel(logging.WARNING)   # aiosmtpd: one line per command
    event_loop.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
