"""`tidings queue list|show|retry|delete`: the outgoing queue for operators, over the router's
tidings.v1.Queue; `list` prints a table like Postfix's `postqueue -p`."""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import grpc

from tidings.v1 import queue_pb2, queue_pb2_grpc, types_pb2

RPC_TIMEOUT = 30.0
HEADER = f"{'-Queue ID-':<33} {'--Size--':>8} {'----Arrival Time----':<20} -Sender/Recipient-------"
RECIPIENT_INDENT = " " * 2


def state_name(state: int) -> str:
    return str(types_pb2.QueueRecipient.State.Name(state)).lower()


def timestamp(ms: int) -> str:
    """A queue time in UTC, or "-" for none (0)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if ms else "-"


def span(ms: int) -> str:
    """A duration, to the two largest units: `4d 23h`, `5m 10s`, `42s`."""
    seconds = max(ms, 0) // 1000
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def relative(ms: int, now_ms: int) -> str:
    """`ms` as seen from `now_ms`: `in 4m 10s`, `2m ago`; "" for none (0)."""
    if not ms:
        return ""
    return f"in {span(ms - now_ms)}" if ms > now_ms else f"{span(now_ms - ms)} ago"


def at(ms: int, now_ms: int) -> str:
    """A time with its distance from now: `2026-01-01 12:00:00Z (in 4m)`, or "-"."""
    return f"{timestamp(ms)} ({relative(ms, now_ms)})" if ms else "-"


def size(octets: int) -> str:
    if octets < 1024:
        return f"{octets} B"
    if octets < 1 << 20:
        return f"{octets / 1024:.1f} KiB"
    return f"{octets / (1 << 20):.1f} MiB"


def sender(item: Any) -> str:
    return item.mail_from or "<> (bounce)"


def pending(recipient: Any) -> bool:
    return bool(recipient.state in (types_pb2.QueueRecipient.QUEUED, types_pb2.QueueRecipient.DEFERRED))


def leased(item: Any, now_ms: int) -> bool:
    return bool(item.lease_owner) and item.lease_until_ms > now_ms


def recipient_lines(recipient: Any, now_ms: int) -> list[str]:
    """A recipient's state, attempts and next attempt, then its last reply in parentheses."""
    facts = [f"attempts {recipient.attempts}"]
    if pending(recipient) and recipient.next_attempt_ms:
        facts.append(f"next {at(recipient.next_attempt_ms, now_ms)}")
    lines = [f"{RECIPIENT_INDENT}{state_name(recipient.state):<9} {recipient.address}  {', '.join(facts)}"]
    if recipient.last_reply:
        said = f"{recipient.remote_mta} said: " if recipient.remote_mta else ""
        lines.append(f"{RECIPIENT_INDENT}{'':<9} ({said}{recipient.last_reply})")
    return lines


def queue_table(items: Iterable[Any], now_ms: int) -> list[str]:
    """The queue as `postqueue -p` shows it: an item's id (`*`: a worker holds it now), size,
    arrival and sender, then each recipient with its state; a total at the end."""
    items = list(items)
    if not items:
        return ["Mail queue is empty"]
    lines = [HEADER]
    for item in items:
        marked = item.id + ("*" if leased(item, now_ms) else "")
        lines.append(f"{marked:<33} {item.size:>8} {timestamp(item.created_ms):<20} {sender(item)}")
        for recipient in item.recipients:
            lines += recipient_lines(recipient, now_ms)
        lines.append("")
    waiting = sum(pending(r) for item in items for r in item.recipients)
    count = len(items)
    lines.append(f"-- {size(sum(i.size for i in items))} in {count} item{'s' if count != 1 else ''}, "
                 f"{waiting} recipient{'s' if waiting != 1 else ''} pending.")
    return lines


def item_detail(item: Any, now_ms: int) -> list[str]:
    """Everything the queue knows of one item."""
    lease = f"{item.lease_owner} until {at(item.lease_until_ms, now_ms)}" if leased(item, now_ms) else "none"
    fields = [("id", item.id), ("sender", sender(item) + (f" (user {item.sender_user_id})" if item.sender_user_id else "")),
              ("size", f"{item.size} bytes"), ("created", at(item.created_ms, now_ms)),
              ("expires", at(item.expires_ms, now_ms)), ("next due", at(item.due_ms, now_ms) if item.due_ms else "done"),
              ("lease", lease), ("bounce", "yes (never bounced itself)" if item.is_bounce else "no"),
              ("sent copy", item.sent_message_id or "-"), ("version", str(item.version))]
    lines = [f"{name + ':':<11}{value}" for name, value in fields]
    lines.append("recipients:")
    for recipient in item.recipients:
        lines += recipient_lines(recipient, now_ms)
        if recipient.updated_ms:
            lines.append(f"{RECIPIENT_INDENT}{'':<9} updated {at(recipient.updated_ms, now_ms)}")
    return lines


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _print(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


def _call(args: argparse.Namespace, method: str, request: Any) -> Any:
    with grpc.insecure_channel(args.router) as channel:
        return getattr(queue_pb2_grpc.QueueStub(channel), method)(request, timeout=RPC_TIMEOUT)


def cmd_list(args: argparse.Namespace) -> int:
    answer = _call(args, "ListItems", queue_pb2.ListQueueRequest(limit=args.limit, include_done=args.all))
    _print(queue_table(answer.items, _now_ms()))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _print(item_detail(_call(args, "GetItem", queue_pb2.QueueItemRef(id=args.id)), _now_ms()))
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    if bool(args.id) == args.all:
        print("name one queue item, or --all", file=sys.stderr)
        return 2
    answer = _call(args, "RetryNow", queue_pb2.RetryRequest(id=args.id or "", all=args.all))
    count = len(answer.items)
    print(f"{count} item{'s' if count != 1 else ''} due now" + "".join(f"\n  {i.id}" for i in answer.items))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    item = _call(args, "DeleteItem", queue_pb2.QueueItemRef(id=args.id))
    print(f"dropped {item.id}; its pending recipients failed and the sender is sent a bounce")
    _print(item_detail(item, _now_ms()))
    return 0


def add_parser(sub: Any) -> None:
    """`tidings queue ...` under the command's subparsers."""
    queue = sub.add_parser("queue", help="the outgoing queue").add_subparsers(dest="action", required=True)
    listing = queue.add_parser("list", help="items with their recipients, attempts, next attempt and last reply")
    listing.add_argument("--limit", type=int, default=100, help="at most this many items (default 100)")
    listing.add_argument("--all", action="store_true", help="also items with nothing left to do")
    listing.set_defaults(func=cmd_list)
    show = queue.add_parser("show", help="one item in full")
    show.add_argument("id")
    show.set_defaults(func=cmd_show)
    retry = queue.add_parser("retry", help="try an item (or every deferred one) now")
    retry.add_argument("id", nargs="?")
    retry.add_argument("--all", action="store_true", help="every item with recipients deferred")
    retry.set_defaults(func=cmd_retry)
    delete = queue.add_parser("delete", help="drop an item: its pending recipients fail and are bounced")
    delete.add_argument("id")
    delete.set_defaults(func=cmd_delete)
