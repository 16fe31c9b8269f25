"""Continuous load for fault tests: SMTP senders and an API flag-changer in threads,
recording exactly what was acknowledged, and checks that all of it is still there."""
from __future__ import annotations

import itertools
import smtplib
import threading
import time
from email.message import EmailMessage

import grpc

from tests.cluster.grid import Grid
from tidings.v1 import mail_pb2, storage_pb2, storage_pb2_grpc
from tidings_cli.cluster import HOST


def message(subject: str, recipient: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "sender@outside.test"
    m["To"] = recipient
    m["Subject"] = subject
    m.set_content(f"body of {subject}\n" * 20)
    return m


_runs = itertools.count(1)


class Load:
    """Threads sending over SMTP (round-robin over recipients) and, optionally, one thread
    starring delivered messages over the router's Mail API, until stopped."""

    def __init__(self, grid: Grid, recipients: dict[str, str], senders: int = 4, api: bool = False) -> None:
        self.grid = grid
        self.recipients = recipients  # email -> user id
        self.acked: list[tuple[str, str]] = []  # (recipient, subject) that got 250
        self.refused: list[str] = []
        self.starred: list[tuple[str, str]] = []  # (user id, message id) whose star was acknowledged
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next = itertools.count()
        self._run = next(_runs)  # subjects are unique across the loads of one test session
        self._threads = [threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(senders)]
        if api:
            self._threads.append(threading.Thread(target=self._star, daemon=True))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def _send(self, worker: int) -> None:
        emails = sorted(self.recipients)
        while not self._stop.is_set():
            n = next(self._next)
            recipient, subject = emails[n % len(emails)], f"r{self._run}-w{worker}-m{n}"
            try:
                with smtplib.SMTP(HOST, self.grid.smtp_port, timeout=30) as client:
                    client.send_message(message(subject, recipient))
            except (smtplib.SMTPException, OSError):
                with self._lock:
                    self.refused.append(subject)
                continue
            with self._lock:
                self.acked.append((recipient, subject))

    def _star(self) -> None:
        done: set[str] = set()
        users = itertools.cycle(sorted(self.recipients.values()))
        while not self._stop.is_set():
            user_id = next(users)
            try:
                page = self.grid.mail.ListMessages(mail_pb2.ListMessagesRequest(
                    user_id=user_id, folder_id="inbox", limit=5), timeout=10)
                todo = [m.id for m in page.messages if m.id not in done][:1]
                for message_id in todo:
                    self.grid.mail.UpdateMessage(mail_pb2.UpdateRequest(user_id=user_id, id=message_id, starred=True),
                                                 timeout=10)
                    done.add(message_id)
                    with self._lock:
                        self.starred.append((user_id, message_id))
            except grpc.RpcError:
                pass
            time.sleep(0.02)

    def wait_for(self, count: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            assert time.monotonic() < deadline, f"only {len(self.acked)} of {count} messages accepted"
            time.sleep(0.05)

    def wait_more(self, count: int, timeout: float = 90) -> None:
        self.wait_for(len(self.acked) + count, timeout)


def inbox(grid: Grid, user_id: str) -> list[mail_pb2.MessageSummary]:
    listed = []
    cursor = ""
    while True:
        page = grid.mail.ListMessages(mail_pb2.ListMessagesRequest(
            user_id=user_id, folder_id="inbox", limit=200, cursor=cursor), timeout=30)
        listed += list(page.messages)
        cursor = page.next_cursor
        if not cursor:
            return listed


def assert_nothing_lost(grid: Grid, load: Load) -> None:
    """Every acknowledged message is listed once, every acknowledged star is there."""
    starred = set(load.starred)
    for email, user_id in load.recipients.items():
        listed = inbox(grid, user_id)
        subjects = [m.subject for m in listed]
        assert len(subjects) == len(set(subjects)), f"listed twice: {sorted(s for s in set(subjects) if subjects.count(s) > 1)}"
        acked = {s for r, s in load.acked if r == email}
        assert acked <= set(subjects), f"acknowledged but lost for {email}: {sorted(acked - set(subjects))[:10]}"
        unstarred = {(user_id, m.id) for m in listed if not m.starred} & starred
        assert not unstarred, f"acknowledged stars lost: {sorted(unstarred)[:5]}"


def node_items(address: str) -> int:
    """Messages (live or tombstones) a storage node holds, over the whole ring."""
    with grpc.insecure_channel(address) as channel:
        stub = storage_pb2_grpc.StorageNodeStub(channel)
        answer = stub.RangeEntries(storage_pb2.RangeEntriesRequest(ranges=[storage_pb2.TokenRange(start=0, end=0)]),
                                   timeout=60)
    return sum(1 for item in answer.items if item.ref.user_id)


def wait_converged(grid: Grid, timeout: float) -> float:
    """Poll digest comparison (no repair) until every replica set agrees; returns seconds taken."""
    started = time.monotonic()
    while True:
        report = grid.admin.Repair(mail_pb2.RepairRequest(check_only=True), timeout=120)
        if report.converged:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, (
            f"not converged after {timeout}s: {report.ranges_differing} of {report.ranges} ranges differ, "
            f"unreachable {list(report.unreachable_nodes)}")
        time.sleep(1)
