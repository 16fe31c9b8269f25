"""Crashes while mail is on its way out: every message cluster A acknowledged reaches the far
end, exactly once, when its delivery worker or one of its storage nodes is killed with
SIGKILL. The far end is the aiosmtpd sink of slow.test, which holds DATA before answering
(so a kill lands while a delivery is in progress) and counts the Message-IDs it accepted.

The one window where an MTA delivers twice is a crash after the far end's 250 but before
the queue records it (RFC 5321 6.1); these tests kill the worker while the far end still
holds DATA, before its 250, so a second delivery would be a bug, not that window.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from functools import partial

import pytest

from tests.outbound.conftest import LEASE_S, Net, eventually
from tidings.v1 import queue_pb2, types_pb2

State = types_pb2.QueueRecipient


def item(net: Net, item_id: str) -> queue_pb2.QueueItem:
    return net.a.queue.GetItem(queue_pb2.QueueItemRef(id=item_id), timeout=10)


def delivered(net: Net, item_id: str) -> queue_pb2.QueueItem | None:
    found = item(net, item_id)
    return found if all(r.state == State.DELIVERED for r in found.recipients) else None


@pytest.fixture
def slow(net: Net) -> Iterator[Net]:
    """slow.test's sink as each test sets it, back to answering at once afterwards."""
    yield net
    net.slow.hold_s, net.slow.holds = 0.0, 1 << 30


def test_a_worker_killed_mid_delivery_is_restarted_and_the_message_delivered_once(slow: Net) -> None:
    net = slow
    sink = net.slow
    sink.hold_s, sink.holds = 2.5, sink.data_commands + 1     # hold the next DATA only
    abandoned = sink.abandoned
    sent = net.alice.send(["dave@slow.test"], f"Hold on {uuid.uuid4().hex[:8]}")
    assert sink.holding.wait(15), net.logs()      # the worker's DATA is in, the far end has not answered
    leased = item(net, sent["id"])
    assert leased.lease_owner.endswith(f":{net.a.pid('outbound')}") and leased.recipients[0].attempts == 0

    net.a.kill("outbound")
    eventually(lambda: sink.abandoned > abandoned, "the far end saw the connection drop", timeout=5)
    assert sent["message_id"] not in sink.message_ids()
    net.a.restart_edge("outbound")

    done = eventually(lambda: delivered(net, sent["id"]), "delivered by the restarted worker", timeout=LEASE_S + 10)
    dave = done.recipients[0]
    assert dave.updated_ms >= leased.lease_until_ms       # not before the dead worker's lease ran out
    assert dave.attempts == 1 and dave.last_reply.startswith("250")   # the killed attempt was never reported
    time.sleep(2.5)
    assert sink.message_ids()[sent["message_id"]] == 1


def test_a_storage_node_killed_while_mail_is_queued_loses_and_doubles_nothing(slow: Net) -> None:
    net = slow
    sink = net.slow
    sink.hold_s, sink.holds = 0.8, 1 << 30           # 4 sessions at a time to the host: a queue builds up
    tag = uuid.uuid4().hex[:8]
    sent = [net.alice.send([f"user{n}@slow.test"], f"Queued {tag} {n}") for n in range(8)]
    at_the_far_end = sum(sink.message_ids()[m["message_id"]] for m in sent)
    net.a.kill_storage(2)
    try:
        assert at_the_far_end < len(sent)      # the node died with mail still queued or on its way
        sent += [net.alice.send([f"late{n}@slow.test"], f"Queued {tag} late {n}") for n in range(4)]
        for message in sent:
            eventually(partial(delivered, net, message["id"]), f"{message['id']} delivered", timeout=30)
        time.sleep(2.5)
        counts = sink.message_ids()
        assert {m["message_id"]: counts[m["message_id"]] for m in sent} == {m["message_id"]: 1 for m in sent}
    finally:
        net.a.start_storage(2)
