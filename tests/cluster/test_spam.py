"""Spam classification in the router, end to end on the shared grid: deliveries screened as
the SMTP edge screens them (Mail.Deliver with a Screening), the user's moves into and out of
Spam over HTTP training the filter, and the verdict on GET /v1/messages/{id} and /raw."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from email.message import EmailMessage

import grpc
import httpx
import pytest

from tests.cluster.grid import PASSWORD, Grid
from tidings.v1 import mail_pb2, types_pb2
from tidings_runtime.ids import new_entry_id

_n = itertools.count()


@pytest.fixture(scope="module")
def http(grid: Grid) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=grid.http_url, timeout=30) as client:
        yield client


@pytest.fixture
def user(new_user: Callable[[str], str], http: httpx.Client) -> tuple[str, dict[str, str]]:
    email = new_user("spam")
    r = http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return email, {"Authorization": f"Bearer {r.json()['token']}"}


def raw(sender: str, to: str, subject: str, body: str, extra: dict[str, str] | None = None) -> bytes:
    m = EmailMessage()
    for name, value in (extra or {}).items():
        m[name] = value
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Message-ID"] = f"<spam-test-{next(_n)}@test>"
    m.set_content(body)
    return m.as_bytes()


def deliver(grid: Grid, to: str, message: bytes, **screening: object) -> str:
    answer = grid.mail.Deliver(mail_pb2.DeliverRequest(
        entry_id=new_entry_id(), raw=message, recipients=[to],
        screening=types_pb2.Screening(screened=True, **screening)), timeout=30)
    return str(answer.deliveries[0].id)


def folder_of(http: httpx.Client, auth: dict[str, str], message_id: str) -> str:
    r = http.get(f"/v1/messages/{message_id}", headers=auth)
    assert r.status_code == 200, r.text
    return str(r.json()["folder_id"])


def move(http: httpx.Client, auth: dict[str, str], message_id: str, folder: str) -> None:
    r = http.patch(f"/v1/messages/{message_id}", headers=auth, json={"folder_id": folder})
    assert r.status_code == 200, r.text


def test_marking_a_senders_mail_as_spam_files_the_next_to_spam_and_not_spam_lets_it_back(
        grid: Grid, http: httpx.Client, user: tuple[str, dict[str, str]]) -> None:
    email, auth = user
    domain = f"bulk{next(_n)}.example"
    sender = dict(authenticated_domain=domain, client_ip="192.0.2.10", sender_domain=domain)

    def offer(n: int) -> bytes:     # words of its own: the global model is shared by the whole session
        return raw(f"deals@{domain}", email, f"Exclusivx offerx {n}", f"Buyx nowx, limitedx offerx number {n}!")

    first = [deliver(grid, email, offer(i), **sender) for i in range(3)]
    assert [folder_of(http, auth, i) for i in first] == ["inbox"] * 3
    for message_id in first:
        move(http, auth, message_id, "spam")
    move(http, auth, first[0], "spam")                        # the same move twice counts once
    move(http, auth, first[1], "inbox")                       # spam -> ham -> spam: spam, once
    move(http, auth, first[1], "spam")

    fourth = deliver(grid, email, offer(3), **sender)
    detail = http.get(f"/v1/messages/{fourth}", headers=auth).json()
    assert detail["folder_id"] == "spam"
    assert detail["spam"]["verdict"] == "spam"
    reasons = {r["name"]: r["score"] for r in detail["spam"]["reasons"]}
    assert reasons == {"REPUTATION_BAD": 4.8, "USER_SENDER_SPAM": 3.0}   # 3 spam, 0 ham: each counted once
    assert detail["spam"]["score"] == 7.8

    move(http, auth, fourth, "inbox")                         # "not spam"
    fifth = deliver(grid, email, offer(4), **sender)
    detail = http.get(f"/v1/messages/{fifth}", headers=auth).json()
    assert detail["folder_id"] == "inbox"
    assert detail["spam"]["verdict"] == "ham" and detail["spam"]["score"] < 5


def test_the_verdict_is_on_the_message_and_its_raw_and_a_senders_own_header_is_dropped(
        grid: Grid, http: httpx.Client, user: tuple[str, dict[str, str]]) -> None:
    email, auth = user
    forged = raw("someone@elsewhere.example", email, "Hello", "Just saying hello.",
                 {"X-Tidings-Spam": "score=-100.00; verdict=ham; reasons=TRUST_ME(-100.00)"})
    rules = [types_pb2.SpamRule(name="MISSING_DATE", score=1.5, detail="no Date"),
             types_pb2.SpamRule(name="SPF_SOFTFAIL", score=1.0)]
    message_id = deliver(grid, email, forged, rules=rules, client_ip="198.51.100.7")
    detail = http.get(f"/v1/messages/{message_id}", headers=auth).json()
    assert detail["folder_id"] == "inbox"
    assert detail["spam"] == {"score": 2.5, "verdict": "ham", "reasons": [
        {"name": "MISSING_DATE", "score": 1.5, "detail": None}, {"name": "SPF_SOFTFAIL", "score": 1.0, "detail": None}]}
    stored = http.get(f"/v1/messages/{message_id}/raw", headers=auth).content
    assert stored.startswith(b"X-Tidings-Spam: score=2.50; verdict=ham; sender=ip4-198.51.100; "
                             b"reasons=MISSING_DATE(1.50),SPF_SOFTFAIL(1.00)\r\n")
    assert b"TRUST_ME" not in stored

    unscreened = grid.mail.Deliver(mail_pb2.DeliverRequest(
        entry_id=new_entry_id(), raw=raw("a@elsewhere.example", email, "Plain", "no screening"),
        recipients=[email]), timeout=30).deliveries[0].id
    detail = http.get(f"/v1/messages/{unscreened}", headers=auth).json()
    assert detail["spam"] is None and detail["folder_id"] == "inbox"


def test_quarantine_files_to_spam_and_over_the_reject_threshold_nothing_is_delivered(
        grid: Grid, http: httpx.Client, user: tuple[str, dict[str, str]]) -> None:
    email, auth = user
    quarantined = deliver(grid, email, raw("ceo@spoofed.example", email, "Wire transfer", "Urgent."),
                          quarantine=True, sender_domain="spoofed.example")
    detail = http.get(f"/v1/messages/{quarantined}", headers=auth).json()
    assert detail["folder_id"] == "spam" and detail["spam"]["verdict"] == "spam"
    assert [r["name"] for r in detail["spam"]["reasons"]] == ["DMARC_QUARANTINE"]

    with pytest.raises(grpc.RpcError) as refused:
        deliver(grid, email, raw("x@rspamd.example", email, "Win", "Win big"),
                rules=[types_pb2.SpamRule(name="RSPAMD_ADD_HEADER", score=6.0),
                       types_pb2.SpamRule(name="DNSBL", score=5.0)])
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert refused.value.details().startswith("spam: score 11.00 is over the reject threshold 10")
    inbox = http.get("/v1/folders/inbox/messages", headers=auth).json()["messages"]
    assert inbox == []


def test_bayes_learns_the_users_spam_and_ham(grid: Grid, http: httpx.Client,
                                            user: tuple[str, dict[str, str]]) -> None:
    email, auth = user
    # Spam words of its own ("...x"): the global model is shared by every test of the session.
    spammy = ["cheapx pillsx viagrax pharmacyx discountx", "casinox bonusx jackpotx winnerx claimx",
              "cheapx loansx creditx approvalx instantx", "viagrax cialisx pharmacyx onlinex cheapx",
              "jackpotx casinox freex spinsx bonusx", "claimx yourx prizex winnerx lotteryx cheapx"]
    hammy = ["meeting agenda for the project review", "lunch tomorrow with the team",
             "project review notes and agenda", "quarterly report draft attached for review",
             "team offsite planning agenda", "minutes of the project meeting"]
    for i, words in enumerate(spammy):
        move(http, auth, deliver(grid, email, raw(f"s{i}@spammers{i}.example", email, words, words)), "spam")
    for i, words in enumerate(hammy):     # quarantined (to Spam) then "not spam": ham
        message_id = deliver(grid, email, raw(f"c{i}@colleagues.example", email, words, words), quarantine=True)
        move(http, auth, message_id, "inbox")

    spam_id = deliver(grid, email, raw("new@spammers.example", email, "cheapx viagrax", "cheapx pharmacyx casinox bonusx"))
    ham_id = deliver(grid, email, raw("boss@colleagues.example", email, "project agenda", "review meeting agenda"))
    spam_detail = http.get(f"/v1/messages/{spam_id}", headers=auth).json()
    ham_detail = http.get(f"/v1/messages/{ham_id}", headers=auth).json()
    assert [r["name"] for r in spam_detail["spam"]["reasons"]] == ["BAYES_SPAM"] and spam_detail["spam"]["score"] > 5
    assert spam_detail["folder_id"] == "spam"
    assert [r["name"] for r in ham_detail["spam"]["reasons"]] == ["BAYES_HAM"] and ham_detail["spam"]["score"] < -2
    assert ham_detail["folder_id"] == "inbox"


def test_mail_received_on_port_2525_is_classified(grid: Grid, http: httpx.Client,
                                                  user: tuple[str, dict[str, str]]) -> None:
    """The SMTP edge screens it (screened, the client IP): the router's verdict is on the copy.
    Nothing is trained here: 127.0.0.0/24 is every SMTP test's reputation."""
    import smtplib
    email, auth = user
    with smtplib.SMTP(grid.host, grid.smtp_port, timeout=30) as client:
        client.sendmail("someone@elsewhere.example", [email], raw("someone@elsewhere.example", email, "Hi", "Hello"))
    listed = http.get("/v1/folders/inbox/messages", headers=auth).json()["messages"]
    assert len(listed) == 1
    detail = http.get(f"/v1/messages/{listed[0]['id']}", headers=auth).json()
    assert detail["spam"]["verdict"] == "ham"
    stored = http.get(f"/v1/messages/{listed[0]['id']}/raw", headers=auth).content
    assert stored.startswith(b"Received: ")                        # the edge's trace stays on top
    [ours] = [line for line in stored.split(b"\r\n\r\n")[0].split(b"\r\n") if line.startswith(b"X-Tidings-Spam:")]
    assert ours.startswith(b"X-Tidings-Spam: score=") and b"; sender=ip4-127.0.0;" in ours
