"""`tidings queue` output: the postqueue-like table and one item's detail, from QueueItem
messages at a fixed now."""
from __future__ import annotations

from tidings.v1 import queue_pb2, types_pb2
from tidings_cli.queue import at, item_detail, queue_table, relative, span

NOW = 1_767_268_800_000          # 2026-01-01 12:00:00Z
MINUTE = 60_000
State = types_pb2.QueueRecipient.State


def item(**changes: object) -> queue_pb2.QueueItem:
    fields: dict[str, object] = dict(
        id="0" * 31 + "1", mail_from="alice@example.test", sender_user_id="a1b2c3d4e5f60718", size=1234,
        created_ms=NOW - 5 * MINUTE, expires_ms=NOW + 5 * 1440 * MINUTE, due_ms=NOW + 4 * MINUTE, version=7,
        recipients=[
            types_pb2.QueueRecipient(address="bob@elsewhere.test", state=State.DEFERRED, attempts=2,
                                     next_attempt_ms=NOW + 4 * MINUTE, last_reply="451 4.7.1 try again later",
                                     remote_mta="mx.elsewhere.test", updated_ms=NOW - MINUTE),
            types_pb2.QueueRecipient(address="carol@other.test", state=State.DELIVERED, attempts=1,
                                     last_reply="250 2.0.0 ok", updated_ms=NOW - 4 * MINUTE),
        ])
    fields.update(changes)
    return queue_pb2.QueueItem(**fields)  # type: ignore[arg-type]


def test_times_read_from_now() -> None:
    assert span(4 * MINUTE + 10_000) == "4m 10s" and span(5 * 1440 * MINUTE + 3_600_000 + 5) == "5d 1h"
    assert span(0) == "0s"
    assert relative(NOW + 4 * MINUTE, NOW) == "in 4m" and relative(NOW - 90_000, NOW) == "1m 30s ago"
    assert relative(0, NOW) == "" and at(0, NOW) == "-"
    assert at(NOW + MINUTE, NOW) == "2026-01-01 12:01:00Z (in 1m)"


def test_the_table_shows_each_recipient_with_state_attempts_next_attempt_and_reply() -> None:
    lines = queue_table([item()], NOW)
    assert lines[0].startswith("-Queue ID-") and "-Sender/Recipient-" in lines[0]
    assert lines[1].split() == ["0" * 31 + "1", "1234", "2026-01-01", "11:55:00Z", "alice@example.test"]
    assert lines[2].split()[:2] == ["deferred", "bob@elsewhere.test"]
    assert "attempts 2, next 2026-01-01 12:04:00Z (in 4m)" in lines[2]
    assert lines[3].strip() == "(mx.elsewhere.test said: 451 4.7.1 try again later)"
    assert lines[4].split()[:4] == ["delivered", "carol@other.test", "attempts", "1"] and "next" not in lines[4]
    assert lines[-1] == "-- 1.2 KiB in 1 item, 1 recipient pending."


def test_a_leased_item_is_marked_and_a_bounce_has_a_null_sender() -> None:
    lines = queue_table([item(lease_owner="worker-1", lease_until_ms=NOW + 30_000),
                         item(id="2" * 32, mail_from="", is_bounce=True, sender_user_id="")], NOW)
    assert lines[1].split()[0] == "0" * 31 + "1*"
    bounce = next(line for line in lines if line.startswith("2" * 32))
    assert bounce.endswith("<> (bounce)")
    assert lines[-1] == "-- 2.4 KiB in 2 items, 2 recipients pending."
    assert queue_table([item(lease_owner="worker-1", lease_until_ms=NOW - 1)], NOW)[1].split()[0] == "0" * 31 + "1"


def test_an_empty_queue_says_so() -> None:
    assert queue_table([], NOW) == ["Mail queue is empty"]


def test_the_detail_names_every_field() -> None:
    lines = item_detail(item(lease_owner="worker-1", lease_until_ms=NOW + 30_000, sent_message_id="s" * 32), NOW)
    text = "\n".join(lines)
    assert "sender:    alice@example.test (user a1b2c3d4e5f60718)" in text
    assert "expires:   2026-01-06 12:00:00Z (in 5d)" in text
    assert "next due:  2026-01-01 12:04:00Z (in 4m)" in text
    assert "lease:     worker-1 until 2026-01-01 12:00:30Z (in 30s)" in text
    assert "sent copy: " + "s" * 32 in text and "version:   7" in text
    assert "updated 2026-01-01 11:59:00Z (1m ago)" in text
    done = "\n".join(item_detail(item(due_ms=0), NOW))
    assert "next due:  done" in done and "lease:     none" in done
