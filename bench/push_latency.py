"""Push latency: from the SMTP `250` of a message to its `message.new` Server-Sent Event at
the HTTP edge, on a real local cluster (3 storage nodes, router, SMTP and HTTP edges).

One user holds one `GET /v1/events` stream (read by a thread that timestamps each event as
its last line arrives); the driver sends N messages to that user one after another on one
SMTP connection and, after each `250`, waits for the event before sending the next, so each
latency is one message's alone. Between them: the router's ordering of the delivery (a
Paxos slot on the storage nodes), the storage nodes' notice to every router's watchers,
the change-feed read, the edge's Watch stream and the SSE write. `--streams K` opens K more
idle streams of other users first (the edge and the router serve them too). A negative
latency means the event beat the `250` to the driver (the router wakes the watchers as it
commits, while the `250` still travels back through the SMTP edge). Also printed: from the
start of the transaction (MAIL FROM) to the event. Aim: p99 under 1 s.
"""
from __future__ import annotations

import argparse
import queue
import smtplib
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from email.message import EmailMessage
from pathlib import Path

import httpx

from tests.cluster.grid import PASSWORD, Grid
from tests.http.sse import SyncReader

RECIPIENT = "push@example.test"


def message(i: int, recipient: str = RECIPIENT, what: str = "push") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "sender@outside.test", recipient, f"{what} latency {i}"
    m.set_content(f"message {i} of the {what} benchmark\n" * 20)
    return m.as_bytes()


def token(http: httpx.Client, email: str) -> dict[str, str]:
    r = http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def open_stream(stack: ExitStack, http: httpx.Client, auth: dict[str, str]) -> SyncReader:
    response = stack.enter_context(http.stream("GET", "/v1/events", headers=auth,
                                               timeout=httpx.Timeout(30, read=None)))
    response.raise_for_status()
    reader = SyncReader(response.iter_lines())
    reader.block()  # the first comment: from here on every change is delivered
    return reader


def listen(reader: SyncReader, arrivals: queue.Queue[tuple[float, str]]) -> None:
    """Every `message.new` of the Inbox, stamped when it arrived (until the stream is closed)."""
    try:
        while (block := reader.block()) is not None:
            if block.name == "message.new" and block.data["folder_id"] == "inbox":
                arrivals.put((time.perf_counter(), block.data["id"]))
    except httpx.HTTPError:
        pass


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if len(values) > 1 else values[0] * 1000


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--warm-up", type=int, default=20, help="messages sent first, not timed")
    parser.add_argument("--streams", type=int, default=0, help="idle event streams of other users, open meanwhile")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as d, ExitStack() as stack:
        grid = Grid(Path(d), edges=("smtp", "http"), virus_scan=False).start()
        stack.callback(grid.stop)
        grid.add_user(RECIPIENT)
        http = stack.enter_context(httpx.Client(base_url=grid.http_url, timeout=30))
        for k in range(args.streams):
            other = f"idle{k}@example.test"
            grid.add_user(other)
            open_stream(stack, http, token(http, other))
        arrivals: queue.Queue[tuple[float, str]] = queue.Queue()
        reader = open_stream(stack, http, token(http, RECIPIENT))
        threading.Thread(target=listen, args=(reader, arrivals), daemon=True).start()
        smtp = stack.enter_context(smtplib.SMTP(grid.host, grid.smtp_port, timeout=60))
        latencies: list[float] = []   # 250 -> event
        end_to_end: list[float] = []  # MAIL FROM -> event
        seen: set[str] = set()
        for i in range(args.warm_up + args.messages):
            raw = message(i)
            start = time.perf_counter()
            smtp.sendmail("sender@outside.test", [RECIPIENT], raw)
            accepted = time.perf_counter()
            arrived, id = arrivals.get(timeout=30)
            assert id not in seen, f"event for {id} twice"
            seen.add(id)
            if i >= args.warm_up:
                latencies.append(arrived - accepted)
                end_to_end.append(arrived - start)
        assert arrivals.empty()
    print(f"push latency: {args.messages} messages over SMTP, one at a time, to a user with an open "
          f"GET /v1/events ({args.streams} other streams open); N=3 W=2")
    print(f"250 -> message.new event: p50 {pct(latencies, 50):.1f} ms, p90 {pct(latencies, 90):.1f} ms, "
          f"p99 {pct(latencies, 99):.1f} ms, max {max(latencies) * 1000:.1f} ms, "
          f"min {min(latencies) * 1000:.1f} ms (aim: p99 < 1000 ms)")
    print(f"MAIL FROM -> message.new event: p50 {pct(end_to_end, 50):.1f} ms, p99 {pct(end_to_end, 99):.1f} ms")


if __name__ == "__main__":
    main()
