"""Drafts: the messages of a user's Drafts folder, saved and sent through the router.

A draft is stored like any copy (coordinator._store: threaded, indexed, ordered), read, in
Drafts, under the entry id the edge gave it; nothing is sent or queued. Messages are
immutable, so saving a draft again stores a new message (a new id) and then expunges the one
it replaces: a failure between the two leaves both, never neither, and a retry of the same
save (same entry id) after the old one went finds the new one and succeeds.

Sending a draft is Deliver for its user: to its To, Cc and Bcc; the bytes sent are the
draft's without its Bcc field and with Date set to the new entry id's time (a retry under
that id sends the same bytes); the Message-ID stays. An Idempotency-Key is claimed as
`POST /v1/messages` claims it (`idem:USER:KEY`, router/idempotency.py), the request's hash
being the draft id's. Once delivered the draft is expunged; a retry after that finds no draft
and gets, with the key, the first send's answer (its claim and Sent copy), else NOT_FOUND.
"""
from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from email.utils import format_datetime

from router import idempotency
from router.coordinator import Coordinator, Delivered, Outcome, sent_copy_id
from router.errors import FailedPrecondition, InvalidArgument, NotFound
from router.replicas import newest
from router.spam import strip_header
from tidings.v1 import storage_pb2, types_pb2
from tidings_runtime.headers import header_fields, remove_fields
from tidings_runtime.ids import entry_id_ms, is_entry_id
from tidings_runtime.mime import parse_mail, thread_candidates

DRAFTS = "drafts"
_LEFT_OUT = ("bcc", "date")     # fields of a draft not sent as they are


def outgoing(raw: bytes, sent_ms: int) -> bytes:
    """The bytes a draft is sent as: its fields but Bcc and Date, then Date of `sent_ms`."""
    kept = remove_fields(raw, lambda name, _: name in _LEFT_OUT)
    _, size = header_fields(kept)
    head, rest = kept[:size], kept[size:]
    if head and not head.endswith(b"\n"):
        head += b"\r\n"
    date = format_datetime(datetime.fromtimestamp(sent_ms / 1000, UTC), usegmt=True)
    return head + f"Date: {date}\r\n".encode() + (rest or b"\r\n")


def request_hash(draft_id: str) -> bytes:
    return hashlib.sha256(f"draft:{draft_id}".encode()).digest()


class Drafts:
    def __init__(self, coordinator: Coordinator, claims: idempotency.Store) -> None:
        self.coordinator = coordinator
        self.claims = claims

    async def _summary(self, user_id: str, message_id: str) -> types_pb2.MessageSummary | None:
        """The message's newest summary among R replicas, if it is a draft (not deleted)."""
        request = storage_pb2.NodeMessageRefs(user_id=user_id, ids=[message_id])
        outcome = await self.coordinator.replicas.read(user_id, lambda stub: stub.GetSummaries(request))
        if any(message_id in a.tombstones for _, a in outcome.answers):
            return None
        held = newest([s for _, a in outcome.answers for s in a.messages if s.id == message_id], lambda s: s.version)
        return held if held is not None and held.folder_id == DRAFTS else None

    async def save(self, user_id: str, entry_id: str, raw: bytes, replaces: str = "") -> types_pb2.MessageSummary:
        if not is_entry_id(entry_id):
            raise InvalidArgument(f"malformed entry id {entry_id!r}")
        if not raw:
            raise InvalidArgument("empty draft")
        if replaces == entry_id:
            raise InvalidArgument("a draft cannot replace itself")
        if replaces and await self._summary(user_id, replaces) is None:
            done = await self._summary(user_id, entry_id)     # a retry: the first attempt replaced it
            if done is None:
                raise NotFound(f"no draft {replaces}")
            return done
        raw = strip_header(raw)     # no verdict of ours on a draft
        candidates, root = await asyncio.to_thread(thread_candidates, raw)
        await self.coordinator.store_copy(user_id, entry_id, raw, DRAFTS, False, entry_id_ms(entry_id), candidates, root)
        if replaces:
            await self.coordinator.update(user_id, replaces, expunge=True)
        saved = await self._summary(user_id, entry_id)
        if saved is None:       # expunged at once by another request
            raise NotFound(f"no draft {entry_id}")
        return saved

    async def send(self, user_id: str, draft_id: str, entry_id: str, mail_from: str,
                   idempotency_key: str = "") -> tuple[Outcome, idempotency.Claim | None, str]:
        """Deliver the draft, then expunge it: what was delivered, the claim adopted (if any),
        and the entry id delivered under."""
        if not is_entry_id(entry_id):
            raise InvalidArgument(f"malformed entry id {entry_id!r}")
        if not mail_from:
            raise InvalidArgument("a draft is sent from its user's address (mail_from)")
        entry = idempotency.idempotency_entry(user_id, idempotency_key) if idempotency_key else ""
        draft = await self._summary(user_id, draft_id)
        if draft is None:
            claimed = await idempotency.held(self.claims, entry, request_hash(draft_id),
                                             idempotency.IDEMPOTENCY_TTL_MS) if entry else None
            if claimed is None:
                raise NotFound(f"no draft {draft_id}")
            return await self._replayed(user_id, draft_id, claimed), claimed, claimed.entry_id
        raw = bytes((await self.coordinator.stored(user_id, draft_id)).raw)
        parsed = await asyncio.to_thread(parse_mail, raw)
        recipients = list(dict.fromkeys(email for _, email in (*parsed.to, *parsed.cc, *parsed.bcc) if email))
        if not recipients:
            raise InvalidArgument("the draft has no recipients (To, Cc or Bcc)")
        claimed = None
        if entry:
            claimed = await idempotency.claim(self.claims, entry, request_hash(draft_id), entry_id,
                                              parsed.rfc822_msgid, idempotency.IDEMPOTENCY_TTL_MS)
            entry_id = claimed.entry_id
        try:
            outcome = await self.coordinator.deliver(entry_id, outgoing(raw, entry_id_ms(entry_id)), recipients,
                                                     "", user_id, mail_from)
        except NotFound as exc:  # an unknown recipient is the caller's mistake here
            raise FailedPrecondition(str(exc)) from exc
        await self.coordinator.update(user_id, draft_id, expunge=True)
        return outcome, claimed, entry_id

    async def _replayed(self, user_id: str, draft_id: str, claimed: idempotency.Claim) -> Outcome:
        """The first send's answer, as far as its Sent copy tells it."""
        try:
            sent = (await self.coordinator.stored(user_id, sent_copy_id(claimed.entry_id))).summary
        except NotFound:
            raise NotFound(f"no draft {draft_id}") from None
        return Outcome([], Delivered("", user_id, sent.id, sent.thread_id), [])
