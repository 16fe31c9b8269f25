"""Request and response models of the REST API, and protobuf → JSON views.

Field names follow CONTRACT.md exactly (`from` is spelled `from_` in Python
and serialised by alias). Request bodies forbid unknown fields, so a typo
(`"too": [...]`) is a 400 rather than a silently dropped recipient.

The listings (folders, a folder's page, a search, a thread) have `fields_from_pb`: their JSON
document as plain data, which their routes answer as it is (`PlainJSONResponse`, the model kept as
`response_model=`, the route's schema): building and validating 50 summaries' models cost more
CPU than the rest of the request. `from_pb` validates the same data into the model, and
tests/http/test_schemas.py holds both to one document.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from tidings.v1 import mail_pb2, types_pb2
from tidings_runtime import keywords

from .compose import ComposeError, check_display_name, parse_addr_spec, parse_mailbox

MAX_RECIPIENTS = 100
MAX_ATTACHMENTS = 100


def rfc3339_ms(ms: int) -> str:
    """RFC 3339 UTC with millisecond precision, e.g. `2026-11-24T10:26:00.123Z` (gmtime and
    strftime: a quarter of the cost of datetime's isoformat, 50 of them a page)."""
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ms // 1000))}.{ms % 1000:03d}Z"


def rfc3339_s(seconds: int) -> str:
    dt = datetime.fromtimestamp(seconds, tz=UTC)
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusOut(BaseModel):
    """`/healthz` and `/readyz`."""

    status: Literal["ok", "ready"]


# ---- auth ----------------------------------------------------------------


class TokenRequest(_Request):
    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class TokenResponse(BaseModel):
    token: str
    expires_at: str = Field(description="RFC 3339, UTC")


# ---- addresses and summaries ----------------------------------------------


class AddressOut(BaseModel):
    name: str
    email: str

    @classmethod
    def from_pb(cls, a: types_pb2.Address) -> AddressOut:
        return cls(name=a.name, email=a.email)


def _address(a: types_pb2.Address) -> dict[str, str]:
    return {"name": a.name, "email": a.email}


class Summary(BaseModel):
    """CONTRACT.md SUMMARY."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    id: str
    thread_id: str
    folder_id: str
    from_: AddressOut | None = Field(alias="from")
    to: list[AddressOut]
    cc: list[AddressOut]
    subject: str
    snippet: str
    received_at: str = Field(description="RFC 3339, UTC")
    size: int
    unread: bool
    starred: bool
    has_attachments: bool
    answered: bool = Field(description="replied to (IMAP's \\Answered)")
    draft: bool = Field(description="IMAP's \\Draft")
    keywords: list[str] = Field(description="IMAP keywords, e.g. `$Forwarded` (at most 32, lowercase order)")

    @classmethod
    def fields_from_pb(cls, s: types_pb2.MessageSummary) -> dict[str, Any]:
        """The fields as plain data by their JSON names (addresses as dicts)."""
        return {
            "id": s.id,
            "thread_id": s.thread_id,
            "folder_id": s.folder_id,
            "from": _address(getattr(s, "from")) if s.HasField("from") else None,
            "to": [_address(a) for a in s.to],
            "cc": [_address(a) for a in s.cc],
            "subject": s.subject,
            "snippet": s.snippet,
            "received_at": rfc3339_ms(s.received_ms),
            "size": s.size,
            "unread": s.unread,
            "starred": s.starred,
            "has_attachments": s.has_attachments,
            "answered": s.answered,
            "draft": s.draft,
            "keywords": list(s.keywords),
        }

    @classmethod
    def from_pb(cls, s: types_pb2.MessageSummary) -> Summary:
        return cls(**cls.fields_from_pb(s))


class AttachmentOut(BaseModel):
    id: str
    filename: str
    content_type: str
    size: int


class DeliveryOut(BaseModel):
    """One outside recipient of a sent message, as the outgoing queue tracks it."""

    email: str
    state: Literal["queued", "deferred", "delivered", "failed", "bounced"]
    attempts: int
    next_attempt_at: str | None = Field(description="RFC 3339, UTC; while deferred")
    last_reply: str | None = Field(description="the far end's last reply, or why there was none")

    @classmethod
    def from_pb(cls, r: types_pb2.QueueRecipient) -> DeliveryOut:
        state = types_pb2.QueueRecipient.State.Name(r.state).lower()
        deferred = r.state == types_pb2.QueueRecipient.DEFERRED
        return cls(email=r.address, state=state, attempts=r.attempts,
                   next_attempt_at=rfc3339_ms(r.next_attempt_ms) if deferred and r.next_attempt_ms else None,
                   last_reply=r.last_reply or None)


class SpamRuleOut(BaseModel):
    name: str
    score: float
    detail: str | None = None


class SpamOut(BaseModel):
    """A received message's spam verdict, as its copy keeps it (the X-Tidings-Spam header)."""

    score: float
    verdict: Literal["spam", "ham"]
    reasons: list[SpamRuleOut]

    @classmethod
    def from_pb(cls, v: types_pb2.SpamVerdict) -> SpamOut:
        return cls(score=round(v.score, 2), verdict="spam" if v.spam else "ham",
                   reasons=[SpamRuleOut(name=r.name, score=r.score, detail=r.detail or None) for r in v.reasons])


class MessageDetailOut(Summary):
    message_id: str
    in_reply_to: str | None
    references: list[str]
    text: str
    html: str | None = Field(description="sanitised with nh3")
    attachments: list[AttachmentOut]
    bcc: list[AddressOut] = Field(default_factory=list, description="only on the sender's own copy")
    delivery: list[DeliveryOut] = Field(default_factory=list,
                                        description="a sent message's recipients outside our domains")
    spam: SpamOut | None = Field(default=None, description="a received message's spam verdict")

    @classmethod
    def from_pb_detail(cls, d: types_pb2.MessageDetail, sanitized_html: str | None) -> MessageDetailOut:
        return cls(
            **Summary.fields_from_pb(d.summary),
            message_id=d.message_id,
            in_reply_to=d.in_reply_to or None,
            references=list(d.references),
            text=d.text,
            html=sanitized_html,
            attachments=[
                AttachmentOut(id=a.id, filename=a.filename, content_type=a.content_type, size=a.size)
                for a in d.attachments
            ],
            bcc=[AddressOut.from_pb(a) for a in d.bcc],
            delivery=[DeliveryOut.from_pb(r) for r in d.delivery],
            spam=SpamOut.from_pb(d.spam) if d.HasField("spam") else None,
        )


class MessagePageOut(BaseModel):
    messages: list[Summary]
    next_cursor: str | None
    state: str = Field(description="the mailbox state the listing was read at: `GET /v1/changes?since=` it "
                                   "reports every later change (one already listed may come again)")

    @classmethod
    def fields_from_pb(cls, page: mail_pb2.MessagePage) -> dict[str, Any]:
        return {"messages": [Summary.fields_from_pb(s) for s in page.messages],
                "next_cursor": page.next_cursor or None, "state": str(page.state)}

    @classmethod
    def from_pb(cls, page: mail_pb2.MessagePage) -> Self:
        return cls.model_validate(cls.fields_from_pb(page))


class SearchPageOut(MessagePageOut):
    total: int

    @classmethod
    def fields_from_pb(cls, page: mail_pb2.MessagePage) -> dict[str, Any]:
        return {**super().fields_from_pb(page), "total": page.total}


class ThreadOut(BaseModel):
    id: str
    messages: list[Summary] = Field(description="oldest first")

    @classmethod
    def fields_from_pb(cls, t: mail_pb2.Thread) -> dict[str, Any]:
        return {"id": t.id, "messages": [Summary.fields_from_pb(s) for s in t.messages]}

    @classmethod
    def from_pb(cls, t: mail_pb2.Thread) -> ThreadOut:
        return cls.model_validate(cls.fields_from_pb(t))


class FolderOut(BaseModel):
    id: str = Field(description="a role (`inbox`) for a system folder; `f` and 8 hex digits for a custom one")
    name: str
    role: str = Field(description="`inbox sent drafts spam trash archive`; empty for a custom folder")
    total: int
    unread: int

    @classmethod
    def fields_from_pb(cls, f: types_pb2.Folder) -> dict[str, Any]:
        return {"id": f.id, "name": f.name, "role": f.role, "total": f.total, "unread": f.unread}

    @classmethod
    def from_pb(cls, f: types_pb2.Folder) -> FolderOut:
        return cls.model_validate(cls.fields_from_pb(f))


class FolderListOut(BaseModel):
    folders: list[FolderOut] = Field(description="the system folders, then the custom ones by name")
    state: str = Field(description="the mailbox state the folders were read at (as a listing's `state`)")

    @classmethod
    def fields_from_pb(cls, listing: mail_pb2.FolderList) -> dict[str, Any]:
        return {"folders": [FolderOut.fields_from_pb(f) for f in listing.folders], "state": str(listing.state)}

    @classmethod
    def from_pb(cls, listing: mail_pb2.FolderList) -> FolderListOut:
        return cls.model_validate(cls.fields_from_pb(listing))


def _folder_name(value: str) -> str:
    """What the edge checks of a folder name (the router applies every rule)."""
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError("a folder name has no control characters or line breaks")
    return value


class FolderIn(_Request):
    name: Annotated[str, Field(min_length=1, max_length=128,
                               description="unique among your folders ignoring case; `/` separates levels "
                                           "(`Projects/2026`); no control characters"),
                    AfterValidator(_folder_name)]


# ---- changing a message ----------------------------------------------------


def _keywords(names: list[str]) -> list[str]:
    try:
        return list(keywords.canonical(names))
    except keywords.BadKeyword as exc:
        raise ValueError(str(exc)) from None


Keywords = Annotated[list[str], Field(max_length=keywords.MAX_KEYWORDS,
                                      description="IMAP keywords (atoms of at most 64 characters)"),
                     AfterValidator(_keywords)]


class MessagePatch(_Request):
    unread: StrictBool | None = None
    starred: StrictBool | None = None
    folder_id: Annotated[str | None, Field(min_length=1, max_length=128)] = None
    answered: StrictBool | None = None
    draft: StrictBool | None = None
    add_keywords: Keywords = []
    remove_keywords: Keywords = []

    @property
    def is_empty(self) -> bool:
        return (self.unread is None and self.starred is None and self.folder_id is None and self.answered is None
                and self.draft is None and not self.add_keywords and not self.remove_keywords)


# ---- sending ------------------------------------------------------------------


class AddressIn(_Request):
    name: Annotated[str, Field(max_length=200)] = ""
    email: str

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        try:
            return parse_addr_spec(v)
        except ComposeError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        try:
            return check_display_name(v)
        except ComposeError as exc:
            raise ValueError(str(exc)) from None


def _recipient_input(value: Any) -> Any:
    """A string recipient becomes `{"name", "email"}`; objects pass to AddressIn."""
    if isinstance(value, str):
        try:
            mailbox = parse_mailbox(value)
        except ComposeError as exc:
            raise ValueError(str(exc)) from None
        return {"name": mailbox.name, "email": mailbox.email}
    if isinstance(value, (dict, AddressIn)):
        return value
    raise ValueError('a recipient is "user@domain", "Name <user@domain>" or {"name", "email"}')


Recipient = Annotated[
    AddressIn,
    BeforeValidator(_recipient_input, json_schema_input_type=str | AddressIn),
    Field(description='`"ann@example.test"`, `"Ann <ann@example.test>"` or `{"name", "email"}`'),
]


class AttachmentIn(_Request):
    filename: Annotated[str, Field(min_length=1, max_length=255)]
    content_type: Annotated[str, Field(max_length=255)] = "application/octet-stream"
    content_base64: str

    @field_validator("filename")
    @classmethod
    def _filename(cls, v: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise ValueError("filename must not contain control characters")
        return v


class ComposeRequest(_Request):
    """What a message is made of (`POST /v1/messages`, and drafts)."""

    to: Annotated[list[Recipient], Field(max_length=MAX_RECIPIENTS)] = []
    cc: Annotated[list[Recipient], Field(max_length=MAX_RECIPIENTS)] = []
    bcc: Annotated[list[Recipient], Field(max_length=MAX_RECIPIENTS)] = []
    subject: Annotated[str, Field(max_length=2000)] = ""
    text: str = ""
    html: str | None = None
    in_reply_to: Annotated[str | None, Field(max_length=998)] = Field(
        default=None, description="the id of one of your messages (or an RFC 5322 Message-ID)"
    )
    attachments: Annotated[list[AttachmentIn], Field(max_length=MAX_ATTACHMENTS)] = []

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str) -> str:
        if "\r" in v or "\n" in v or "\x00" in v:
            raise ValueError("subject must not contain line breaks")
        return v

    @model_validator(mode="after")
    def _recipient_count(self) -> Self:
        if len(self.to) + len(self.cc) + len(self.bcc) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients in all")
        return self


class SendRequest(ComposeRequest):
    @model_validator(mode="after")
    def _some_recipient(self) -> Self:
        if not (self.to or self.cc or self.bcc):
            raise ValueError("at least one recipient (to, cc or bcc) is required")
        return self


class DraftRequest(ComposeRequest):
    """A draft: as a message to send, but its recipients may be none yet, and Bcc is kept."""


class SendResponse(BaseModel):
    id: str = Field(description="the id of the sender's copy in Sent")
    message_id: str = Field(description="the RFC 5322 Message-ID, without angle brackets")
    thread_id: str


class DraftOut(Summary):
    """A saved draft: its SUMMARY, and the draft it replaced."""

    message_id: str = Field(description="the draft's RFC 5322 Message-ID, without angle brackets")
    replaces: str | None = Field(default=None, description="the id of the draft this one replaced (that id is "
                                 "gone: a draft is a message, and messages are immutable, so every save has a "
                                 "new id)")


# ---- the change feed (GET /v1/changes) -------------------------------------------


class FolderChangesOut(BaseModel):
    created: list[str] = Field(description="always empty: a folder's change does not tell creation from renaming, "
                                           "so a new folder is in `updated`")
    updated: list[str] = Field(description="folders created or renamed in the window (and still there)")
    destroyed: list[str] = Field(description="folders changed in the window that are gone now")


class ChangesOut(BaseModel):
    """JMAP `/changes` (RFC 8620 section 5.2) over the user's messages, and their folders."""

    old_state: str = Field(description="the `since` asked for")
    new_state: str = Field(description="ask `since=` this next")
    has_more: bool = Field(description="more changes after `new_state`: ask again at once")
    created: list[str] = Field(description="message ids that arrived (and were not destroyed) in the window")
    updated: list[str] = Field(description="message ids whose flags or folder changed")
    destroyed: list[str] = Field(description="message ids expunged")
    folders: FolderChangesOut
    folders_changed: list[str] = Field(description="every folder id in `folders`, as one list")
