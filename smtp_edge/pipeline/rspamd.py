"""An adapter to rspamd (``TIDINGS_RSPAMD=http://127.0.0.1:11333``; off by default).

When configured, each message received on port 2525 is posted to rspamd's ``/checkv2``
(the raw message as the body; the envelope and session as the headers ``IP``, ``From``,
``Rcpt`` (one per recipient), ``Helo``, ``Hostname``) and rspamd's action maps onto ours:

| rspamd action | Tidings |
|---|---|
| ``reject`` | ``550 5.7.1`` |
| ``add header``, ``rewrite subject`` | the rule ``RSPAMD_SPAM``: filed to Spam (see below) |
| ``soft reject``, ``greylist`` | ``451 4.7.1`` |
| ``no action`` | nothing |
| rspamd unreachable, a non-200 answer, no action in it | ``451 4.7.0`` (fail closed) |

``RSPAMD_SPAM`` scores rspamd's score held between 5 and 9.9, the router's default spam
and reject thresholds (TIDINGS_SPAM_THRESHOLD, TIDINGS_REJECT_THRESHOLD), so rspamd's
"add header" files the message to Spam and never turns into a rejection: only rspamd's
own ``reject`` refuses. Its detail keeps rspamd's action, score and required score.

Feedback: :func:`learn` posts a message to ``/learnspam`` or ``/learnham`` (rspamd's
controller, by default port 11334 of the same host; ``TIDINGS_RSPAMD_CONTROLLER``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import httpx

from smtp_edge import replies
from smtp_edge.pipeline.message import InboundMessage

log = logging.getLogger(__name__)

SPAM_RULE = "RSPAMD_SPAM"
SPAM_SCORE_RANGE = (5.0, 9.9)   # the router's default spam threshold, and below its reject threshold
SPAM_ACTIONS = ("add header", "rewrite subject")
DEFER_ACTIONS = ("soft reject", "greylist")


class RspamdUnavailable(Exception):
    """No verdict from rspamd."""


@dataclass(frozen=True)
class RspamdVerdict:
    action: str
    score: float
    required_score: float = 0.0
    symbols: tuple[str, ...] = field(default=())

    @property
    def spam(self) -> bool:
        return self.action in SPAM_ACTIONS


def request_headers(message: InboundMessage, *, hostname: str | None = None,
                    user: str | None = None) -> list[tuple[str, str]]:
    """rspamd's request headers for ``message`` (its protocol: one ``Rcpt`` per recipient).

    ``Hostname`` is the client's verified reverse name, which the edge does not look up:
    left out, rspamd resolves it itself."""
    headers: list[tuple[str, str]] = []
    if message.mail_from != "<>":
        headers.append(("From", message.mail_from))
    headers += [("Rcpt", recipient) for recipient in message.recipients]
    for name, value in (("IP", message.client_ip), ("Helo", message.helo), ("Hostname", hostname),
                        ("User", user)):
        if value:
            headers.append((name, value))
    return headers


class RspamdClient:
    def __init__(self, url: str, timeout: float = 10.0, controller: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.controller = (controller or _controller_url(self.url)).rstrip("/")
        self.timeout = timeout
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def check(self, raw: bytes, headers: list[tuple[str, str]]) -> RspamdVerdict:
        try:
            response = await self._client().post(f"{self.url}/checkv2", content=raw, headers=headers)
        except httpx.HTTPError as error:
            raise RspamdUnavailable(f"rspamd at {self.url}: {error!r}") from error
        if response.status_code != 200:
            raise RspamdUnavailable(f"rspamd answered {response.status_code}: {response.text[:200]}")
        try:
            body = response.json()
            return RspamdVerdict(action=str(body["action"]), score=float(body.get("score", 0.0)),
                                 required_score=float(body.get("required_score", 0.0)),
                                 symbols=tuple(sorted(body.get("symbols") or {})))
        except (ValueError, KeyError, TypeError) as error:
            raise RspamdUnavailable(f"rspamd's answer has no action: {response.text[:200]}") from error

    async def learn(self, raw: bytes, spam: bool) -> None:
        """Train rspamd's classifier; RspamdUnavailable when it did not take it.

        A message already learnt as that class is not an error (rspamd 3.4 answers it with 404
        "has been already learned as ..."; later versions with 208)."""
        path = "learnspam" if spam else "learnham"
        try:
            response = await self._client().post(f"{self.controller}/{path}", content=raw)
        except httpx.HTTPError as error:
            raise RspamdUnavailable(f"rspamd controller at {self.controller}: {error!r}") from error
        if response.status_code == 404 and "already learned" in response.text:
            return
        if response.status_code not in (200, 208):
            raise RspamdUnavailable(f"rspamd /{path} answered {response.status_code}: {response.text[:200]}")


def _controller_url(url: str) -> str:
    """rspamd's controller beside the normal worker: port 11333 -> 11334 (the Debian defaults)."""
    parsed = httpx.URL(url)
    if parsed.port == 11333:
        return str(parsed.copy_with(port=11334))
    return url


def reply_for(verdict: RspamdVerdict) -> str | None:
    """The SMTP reply for rspamd's action (``None``: deliver; a spam action is filed, not refused)."""
    if verdict.action == "reject":
        return replies.spam_rejected(verdict.score)
    if verdict.action in DEFER_ACTIONS:
        return replies.SPAM_GREYLISTED
    return None


_client: RspamdClient | None = None


def configure(url: str | None, timeout: float = 10.0, controller: str | None = None) -> None:
    """Check with rspamd at ``url`` from now on; ``None``: off (the default)."""
    global _client
    _client = RspamdClient(url, timeout, controller) if url else None


def client() -> RspamdClient | None:
    return _client


async def check_rspamd(message: InboundMessage) -> str | None:
    """The pipeline check (port 2525): rspamd's verdict as a reply, or ``None``."""
    if _client is None:
        return None
    try:
        verdict = await _client.check(message.raw, request_headers(message))
    except RspamdUnavailable as error:
        log.warning("rspamd check failed, answering 4.7.0: %s", error)
        return replies.SPAM_SCANNER_UNAVAILABLE
    if verdict.spam:
        low, high = SPAM_SCORE_RANGE
        message.findings.add(SPAM_RULE, min(max(verdict.score, low), high),
                             f"rspamd {verdict.action}: {verdict.score:.2f} / {verdict.required_score:.2f}")
    return reply_for(verdict)


async def learn(raw: bytes, spam: bool, *, url: str | None = None, timeout: float = 10.0) -> None:
    """Feedback for rspamd's classifier (a message moved into or out of Spam): ``/learnspam``
    or ``/learnham`` on rspamd's controller. ``url`` is rspamd's (as TIDINGS_RSPAMD: the
    controller is port 11334 beside 11333); by default the one the edge was configured with
    (`--rspamd`). A no-op when there is none; RspamdUnavailable when rspamd did not take the
    message."""
    if url is None:
        if _client is not None:
            await _client.learn(raw, spam)
        return
    one = RspamdClient(url, timeout)
    try:
        await one.learn(raw, spam)
    finally:
        await one.close()
