"""StoreMessage over gRPC on a real in-process node: an inline body is parsed and compressed
inside the group commit (one thread hop), a large one goes to the object store first; a bad
request in a group fails alone."""
from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from storage_node.engine import INLINE_BODY_LIMIT
from tests.unit.storage_node.fixtures import USER, mid, raw_mail
from tests.unit.storage_node.test_replication_rpcs import Running, run
from tidings.v1 import storage_pb2


def _request(n: int, raw: bytes, message_id: str | None = None) -> storage_pb2.StoreMessageRequest:
    return storage_pb2.StoreMessageRequest(user_id=USER, id=message_id or mid(n), raw=raw, folder_id="inbox",
                                           unread=True, received_ms=1000 + n, version=1)


def test_stored_once_searchable_and_read_back_and_a_bad_id_fails_alone(tmp_path: Path) -> None:
    async def body() -> None:
        async with Running(tmp_path, "a") as node:
            raws = [raw_mail(f"subject {n}", f"quarterly budget number {n}") for n in range(8)]
            good = [node.stub.StoreMessage(_request(n, raws[n])) for n in range(8)]
            bad = node.stub.StoreMessage(_request(99, raws[0], message_id="not-hex"))
            answers = await asyncio.gather(*good, bad, return_exceptions=True)
            assert all(isinstance(a, storage_pb2.StoreMessageResponse) and a.created for a in answers[:8])
            assert isinstance(answers[8], grpc.aio.AioRpcError)
            assert answers[8].code() == grpc.StatusCode.INVALID_ARGUMENT
            again = await node.stub.StoreMessage(_request(3, raws[3]))
            assert not again.created and again.summary.subject == "subject 3"
            held = await node.stub.GetMessage(storage_pb2.NodeMessageRef(user_id=USER, id=mid(5)))
            assert held.raw == raws[5] and held.summary.subject == "subject 5"
            found = await node.stub.Search(storage_pb2.NodeSearchRequest(user_id=USER, query="budget"))
            assert found.total == 8

    run(body)


@pytest.mark.parametrize("size", [INLINE_BODY_LIMIT - 2000, INLINE_BODY_LIMIT + 2000])
def test_a_body_either_side_of_the_inline_limit_reads_back(tmp_path: Path, size: int) -> None:
    async def body() -> None:
        async with Running(tmp_path, "a") as node:
            raw = raw_mail("big", "x" * 70 + "\n")
            raw = raw + b"y" * (size - len(raw))
            stored = await node.stub.StoreMessage(_request(1, raw))
            assert stored.created and stored.summary.size == len(raw)
            held = await node.stub.GetMessage(storage_pb2.NodeMessageRef(user_id=USER, id=mid(1)))
            assert held.raw == raw

    run(body)
