"""Search through the router on the shared cluster: what got `250` is findable at once,
flag changes show in `is:` queries, and bad queries are INVALID_ARGUMENT with a position."""
from __future__ import annotations

import smtplib
from collections.abc import Callable
from email.message import EmailMessage

import grpc
import pytest

from tests.cluster.grid import Grid
from tidings.v1 import mail_pb2
from tidings_cli.cluster import HOST


def send(grid: Grid, to: str, subject: str, body: str, attachment: tuple[str, bytes] | None = None) -> None:
    m = EmailMessage()
    m["From"] = "Zoë Sender <zoe@outside.test>"
    m["To"] = to
    m["Subject"] = subject
    m.set_content(body)
    if attachment:
        m.add_attachment(attachment[1], maintype="application", subtype="pdf", filename=attachment[0])
    with smtplib.SMTP(HOST, grid.smtp_port, timeout=30) as client:
        client.send_message(m)


def search(grid: Grid, user_id: str, q: str, **kw: object) -> mail_pb2.MessagePage:
    return grid.mail.Search(mail_pb2.SearchRequest(user_id=user_id, query=q, **kw), timeout=30)


def test_acknowledged_mail_is_searchable_at_once(grid: Grid, new_user: Callable[[str], str]) -> None:
    email = new_user("searcher")
    user_id = grid.mail.CheckRecipient(mail_pb2.CheckRecipientRequest(address=email)).account.user_id
    send(grid, email, "Quarterly Résumé review", "the budget spreadsheet is attached", ("budget-2026.pdf", b"%PDF-1.4"))
    send(grid, email, "Lunch", "shall we meet at noon")
    assert [m.subject for m in search(grid, user_id, "resume").messages] == ["Quarterly Résumé review"]
    assert search(grid, user_id, "from:zoe@outside.test").total == 2
    assert [m.subject for m in search(grid, user_id, "has:attachment filename:budget-2026.pdf").messages] == [
        "Quarterly Résumé review"]
    assert [m.subject for m in search(grid, user_id, '"meet at noon" -budget').messages] == ["Lunch"]


def test_flags_and_moves_show_in_search(grid: Grid, new_user: Callable[[str], str]) -> None:
    email = new_user("flagger")
    user_id = grid.mail.CheckRecipient(mail_pb2.CheckRecipientRequest(address=email)).account.user_id
    send(grid, email, "flag me", "pineapple")
    [hit] = search(grid, user_id, "pineapple is:unread").messages
    grid.mail.UpdateMessage(mail_pb2.UpdateRequest(user_id=user_id, id=hit.id, unread=False, folder_id="archive"))
    assert search(grid, user_id, "pineapple is:unread").total == 0
    assert search(grid, user_id, "pineapple in:archive is:read").total == 1


def test_paging_through_results(grid: Grid, new_user: Callable[[str], str]) -> None:
    email = new_user("pager")
    user_id = grid.mail.CheckRecipient(mail_pb2.CheckRecipientRequest(address=email)).account.user_id
    for i in range(5):
        send(grid, email, f"report {i}", "weekly numbers")
    seen, cursor = [], ""
    while True:
        page = search(grid, user_id, "weekly", limit=2, cursor=cursor)
        assert page.total == 5
        seen += [m.subject for m in page.messages]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == [f"report {i}" for i in reversed(range(5))]


def test_unparseable_query_names_the_position(grid: Grid, new_user: Callable[[str], str]) -> None:
    user_id = grid.add_user(f"q{id(grid)}@example.test").user_id
    with pytest.raises(grpc.RpcError) as err:
        search(grid, user_id, "budget (unclosed")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "position" in err.value.details()
