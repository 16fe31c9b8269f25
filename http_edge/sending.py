"""The send flow of `POST /v1/messages`: decide, then do.

1. Reply headers: when `in_reply_to` names one of the user's messages, fetch it
   for its Message-ID and References.
2. Compose the MIME message (worker thread; raises ComposeError → 400/413).
3. Check every envelope recipient with `Mail.CheckRecipient`. Only users of
   hosted domains can be reached for now (there is no outbound queue yet):
   anything else is a 422 naming the rejected addresses, before any write.
4. `Mail.Deliver` once, with an entry id assigned here (the router writes each
   recipient's copy and the sender's Sent copy under it, so a retry of the
   call is harmless).

With an `Idempotency-Key` (1-255 printable ASCII, else 400), the call carries the key,
the SHA-256 of the request body (its canonical JSON) and the composed Message-ID; the
router records them as `idem:USER:KEY` for 24 h before delivering and, for the same key
and hash again, delivers under the first request's entry id (nothing is stored or queued
twice) and answers its ids: the same `id`, `message_id`, `thread_id`. The same key with
another body is a 422 `idempotency_key_reused` (router/idempotency.py has the race).

Drafts (`/v1/drafts`) take the same JSON: `save_draft` composes it as a draft (recipients
optional, Bcc kept as a field; no recipient check, nothing sent) and stores it with
`Mail.SaveDraft` under a new entry id, which is the draft's id, replacing the draft it
names. `send_draft` checks the draft's recipients as above, then `Mail.SendDraft`: the router
delivers the stored draft as `Mail.Deliver` would and expunges it (router/drafts.py); an
`Idempotency-Key` is honoured as for `POST /v1/messages`, the draft id standing for the body.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime

from tidings.v1 import mail_pb2, types_pb2
from tidings_client import AlreadyExists, MailClient, NotFound
from tidings_runtime.ids import new_entry_id

from .compose import AttachmentData, Composed, ComposeError, Draft, Mailbox, compose, normalize_message_id
from .errors import ApiError, invalid_request
from .schemas import AddressIn, ComposeRequest, DraftOut, DraftRequest, SendRequest, SendResponse, Summary
from .settings import Settings
from .tokens import Principal

DELIVER_TIMEOUT = 30.0
DRAFTS = "drafts"

# Hosted users get their copy at once; other domains' recipients go to the outgoing queue.
_DELIVERABLE = (mail_pb2.CheckRecipientResponse.LOCAL_USER, mail_pb2.CheckRecipientResponse.NOT_HOSTED)
_REJECT_REASONS = {
    mail_pb2.CheckRecipientResponse.UNKNOWN_USER: ("unknown_user", "no such user"),
    mail_pb2.CheckRecipientResponse.MALFORMED: ("malformed_address", "not a valid email address"),
}


async def reply_headers(client: MailClient, user: Principal, in_reply_to: str | None) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References) for a reply, or (None, []) for a new conversation."""
    if not in_reply_to:
        return None, []
    value = in_reply_to.strip()
    if "@" in value:  # an RFC 5322 Message-ID rather than one of our ids
        try:
            return normalize_message_id(value), []
        except ComposeError as exc:
            raise invalid_request(f"in_reply_to: {exc}") from None
    try:
        parent = await client.get_message(user.user_id, value)
    except NotFound:
        raise invalid_request("in_reply_to: no such message in your mailbox") from None
    references: list[str] = []
    for ref in parent.references:
        try:
            references.append(normalize_message_id(ref))
        except ComposeError:
            continue
    if not parent.message_id:
        return None, references
    try:
        parent_id = normalize_message_id(parent.message_id)
    except ComposeError:
        return None, references
    return parent_id, references


async def check_recipients(client: MailClient, recipients: list[str]) -> None:
    answers = await asyncio.gather(*(client.check_recipient(r) for r in recipients))
    rejected = []
    for address, answer in zip(recipients, answers):
        if answer.status in _DELIVERABLE:
            continue
        reason, text = _REJECT_REASONS.get(answer.status, ("rejected", "cannot be delivered"))
        if answer.reason:
            text = f"{text} ({answer.reason})"
        rejected.append({"email": address, "reason": reason, "text": text})
    if rejected:
        names = "; ".join(f"{r['email']}: {r['text']}" for r in rejected)
        raise ApiError(
            422,
            "recipients_rejected",
            f"cannot deliver to {names}",
            extra={"recipients": [{"email": r["email"], "reason": r["reason"]} for r in rejected]},
        )


IDEMPOTENCY_REUSED = "idempotency_key_reused"


def check_idempotency_key(key: str | None) -> str:
    """The key as given ("" when absent); 400 unless 1-255 printable ASCII characters."""
    if key is None:
        return ""
    if not 1 <= len(key) <= 255 or not all(" " <= c <= "~" for c in key):
        raise invalid_request("Idempotency-Key must be 1-255 printable ASCII characters")
    return key


def request_hash(request: SendRequest) -> bytes:
    """SHA-256 of the request's canonical JSON: the same body, however spelled, hashes alike."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


def _mailboxes(items: list[AddressIn]) -> list[Mailbox]:
    return [Mailbox(email=a.email, name=a.name) for a in items]


async def build(client: MailClient, user: Principal, request: ComposeRequest, settings: Settings, *,
                as_draft: bool = False) -> Composed:
    """The MIME message of a request (a worker thread composes it)."""
    in_reply_to, references = await reply_headers(client, user, request.in_reply_to)
    draft = Draft(
        sender=Mailbox(email=user.email),
        to=_mailboxes(request.to),
        cc=_mailboxes(request.cc),
        bcc=_mailboxes(request.bcc),
        subject=request.subject,
        text=request.text,
        html=request.html,
        attachments=[
            AttachmentData(filename=a.filename, content_type=a.content_type, content_base64=a.content_base64)
            for a in request.attachments
        ],
        in_reply_to=in_reply_to,
        references=references,
        date=datetime.now(UTC),
    )
    return await asyncio.to_thread(compose, draft, max_bytes=settings.max_message_bytes, as_draft=as_draft)


def _refusal(exc: AlreadyExists) -> Exception:
    """A reused Idempotency-Key's 422; any other AlreadyExists as it is."""
    if IDEMPOTENCY_REUSED not in str(exc):
        return exc
    return ApiError(422, IDEMPOTENCY_REUSED, "this Idempotency-Key was used for a different request in the last 24 hours")


def _sent(result: mail_pb2.DeliverResponse, message_id: str) -> SendResponse:
    return SendResponse(
        id=result.sent_copy.id,
        message_id=message_id.strip("<>"),  # as the router reports Message-IDs: no angle brackets
        thread_id=result.sent_copy.thread_id,
    )


async def send(client: MailClient, user: Principal, request: SendRequest, settings: Settings,
               idempotency_key: str = "") -> SendResponse:
    composed = await build(client, user, request, settings)
    await check_recipients(client, composed.envelope_recipients)
    try:
        result = await client.deliver(
            new_entry_id(),
            composed.raw,
            composed.envelope_recipients,
            sender_user_id=user.user_id,
            mail_from=user.email,
            idempotency_key=idempotency_key,
            request_hash=request_hash(request) if idempotency_key else b"",
            message_id=composed.message_id if idempotency_key else "",
            timeout=max(settings.rpc_timeout, DELIVER_TIMEOUT),
        )
    except AlreadyExists as exc:
        raise _refusal(exc) from None
    return _sent(result, result.message_id or composed.message_id)   # a replay: the first request's


async def save_draft(client: MailClient, user: Principal, request: DraftRequest, settings: Settings,
                     replaces: str = "") -> DraftOut:
    """Store the draft (a new one, or in place of `replaces`: then under a new id)."""
    composed = await build(client, user, request, settings, as_draft=True)
    summary = await client.save_draft(user.user_id, new_entry_id(), composed.raw, replaces=replaces)
    return DraftOut(**Summary.fields_from_pb(summary), message_id=composed.message_id.strip("<>"),
                    replaces=replaces or None)


async def send_draft(client: MailClient, user: Principal, draft_id: str, settings: Settings,
                     idempotency_key: str = "") -> SendResponse:
    """Send a stored draft; a draft gone already is the router's to judge (404, or with the
    key the first send's answer)."""
    try:
        detail: types_pb2.MessageDetail | None = await client.get_message(user.user_id, draft_id)
    except NotFound:
        detail = None
    if detail is not None:
        if detail.summary.folder_id != DRAFTS:
            raise ApiError(404, "not_found", f"no draft {draft_id}")
        named = [a.email for a in (*detail.summary.to, *detail.summary.cc, *detail.bcc)]
        if not named:
            raise invalid_request("the draft has no recipients (to, cc or bcc): add some with PUT /v1/drafts/{id}")
        await check_recipients(client, list(dict.fromkeys(named)))
    try:
        result = await client.send_draft(user.user_id, draft_id, new_entry_id(), mail_from=user.email,
                                         idempotency_key=idempotency_key,
                                         timeout=max(settings.rpc_timeout, DELIVER_TIMEOUT))
    except AlreadyExists as exc:
        raise _refusal(exc) from None
    return _sent(result, result.message_id or (detail.message_id if detail is not None else ""))
