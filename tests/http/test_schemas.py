"""The listings' JSON written from `fields_from_pb` (what their routes answer) is the document
their response models serialize to, field for field, for summaries with and without a sender,
with cc and keywords, and a non-ASCII subject."""
from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from http_edge.plain_json import PlainJSONResponse
from http_edge.schemas import FolderListOut, MessagePageOut, SearchPageOut, ThreadOut, rfc3339_ms
from tidings.v1 import mail_pb2, types_pb2


def _summary(i: int) -> types_pb2.MessageSummary:
    s = types_pb2.MessageSummary(id=f"m{i}", thread_id="t1", folder_id="inbox", subject=f"Grüße {i} \"quoted\"\n",
                                 snippet="line\tone", received_ms=1_764_000_000_123 + i, size=100 + i,
                                 unread=i % 2 == 0, starred=i % 3 == 0, has_attachments=i % 4 == 0,
                                 answered=i % 5 == 0, draft=False, keywords=["$forwarded"] if i % 2 else [])
    if i % 3:
        getattr(s, "from").CopyFrom(types_pb2.Address(name="Ann", email="ann@example.test"))
    s.to.add(name="", email="bob@example.test")
    if i % 2:
        s.cc.add(name="Cé", email="ce@example.test")
    return s


def _answered(fields: dict[str, Any]) -> Any:
    return json.loads(bytes(PlainJSONResponse(fields).body))


def _model_json(model: BaseModel) -> Any:
    return json.loads(model.model_dump_json(by_alias=True))


def test_pages_and_threads() -> None:
    page = mail_pb2.MessagePage(next_cursor="c1", state=42, total=7)
    page.messages.extend(_summary(i) for i in range(6))
    for model in (MessagePageOut, SearchPageOut):
        assert _answered(model.fields_from_pb(page)) == _model_json(model.from_pb(page))
    last = mail_pb2.MessagePage(state=3)
    assert _answered(MessagePageOut.fields_from_pb(last))["next_cursor"] is None
    thread = mail_pb2.Thread(id="t1", messages=[_summary(i) for i in range(3)])
    assert _answered(ThreadOut.fields_from_pb(thread)) == _model_json(ThreadOut.from_pb(thread))


def test_folders() -> None:
    listing = mail_pb2.FolderList(state=9)
    listing.folders.add(id="inbox", name="Inbox", role="inbox", total=3, unread=1)
    listing.folders.add(id="f0000000a", name="Reçus", role="", total=0, unread=0)
    assert _answered(FolderListOut.fields_from_pb(listing)) == _model_json(FolderListOut.from_pb(listing))


def test_rfc3339_ms() -> None:
    assert rfc3339_ms(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339_ms(1_764_086_399_999) == "2025-11-25T15:59:59.999Z"
