"""Issue 19's ingest load, run beside other measurements: the peer's messages
(bench.ingest_vs_postfix's generator, 3-8 KB) over SMTP on 8 connections into one
mailbox, each connection sending one after another until stopped."""
from __future__ import annotations

import smtplib
import threading
import time
from types import TracebackType

from bench.ingest_vs_postfix import CONNECTIONS, make_message

PREPARED = 2000   # distinct messages, sent round and round (the generator costs ~1 ms each)


class IngestLoad:
    """``with IngestLoad(host, port, recipient):`` the load runs inside the block; afterwards
    ``rate`` is the accepted msg/s over it and ``errors`` what was refused or failed."""

    def __init__(self, host: str, port: int, recipient: str, connections: int = CONNECTIONS) -> None:
        self.host, self.port, self.recipient, self.connections = host, port, recipient, connections
        self.messages = [make_message(i) for i in range(PREPARED)]
        self.accepted = 0
        self.errors: list[str] = []
        self.rate = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._send, args=(k,), daemon=True) for k in range(connections)]
        self._start = 0.0

    def _send(self, k: int) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=60) as session:
            i = k
            while not self._stop.is_set():
                sender, data = self.messages[i % len(self.messages)]
                i += self.connections
                try:
                    refused = session.sendmail(sender, [self.recipient], data)
                except smtplib.SMTPException as exc:
                    with self._lock:
                        self.errors.append(repr(exc))
                    continue
                with self._lock:
                    if refused:
                        self.errors.append(str(refused))
                    else:
                        self.accepted += 1

    def __enter__(self) -> IngestLoad:
        self._start = time.perf_counter()
        for thread in self._threads:
            thread.start()
        time.sleep(1.0)     # every connection open and sending before anything is timed
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.rate = self.accepted / (time.perf_counter() - self._start)
