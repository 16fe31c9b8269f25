"""The SMTP edge keeps a recipient found to be a user here for its lookup TTL (one
CheckRecipient a minute per address, not one a message); other answers are asked again."""
from __future__ import annotations

import asyncio
from typing import Any

from smtp_edge.mail_api import MailApi
from smtp_edge.model import Recipient
from tidings.v1 import mail_pb2

Status = mail_pb2.CheckRecipientResponse.Status


class CountingStub:
    def __init__(self) -> None:
        self.asked: list[str] = []
        self.users = {"bob@example.test"}

    async def CheckRecipient(self, request: mail_pb2.CheckRecipientRequest, timeout: float, metadata: Any = None) -> Any:
        self.asked.append(request.address)
        status = Status.LOCAL_USER if request.address in self.users else Status.UNKNOWN_USER
        return mail_pb2.CheckRecipientResponse(status=status)


def api_with(stub: CountingStub, ttl: float) -> MailApi:
    api = MailApi("127.0.0.1:1", rpc_timeout=1.0, deliver_timeout=1.0, max_message_bytes=1024, lookup_ttl=ttl)
    api._stub = stub  # type: ignore[assignment]
    return api


def test_a_user_is_asked_once_within_the_ttl_and_a_stranger_every_time() -> None:
    stub = CountingStub()
    api = api_with(stub, 60.0)

    async def run() -> None:
        for _ in range(3):
            assert await api.check_recipient("bob@example.test") is Recipient.LOCAL_USER
            assert await api.check_recipient("carol@example.test") is Recipient.UNKNOWN_USER
        stub.users.add("carol@example.test")      # a new account receives at once
        assert await api.check_recipient("carol@example.test") is Recipient.LOCAL_USER

    asyncio.run(run())
    assert stub.asked.count("bob@example.test") == 1
    assert stub.asked.count("carol@example.test") == 4


def test_ttl_zero_asks_every_time() -> None:
    stub = CountingStub()
    api = api_with(stub, 0.0)

    async def run() -> None:
        for _ in range(3):
            await api.check_recipient("bob@example.test")

    asyncio.run(run())
    assert len(stub.asked) == 3
