"""The IMAP edge against the real cluster (storage nodes, router, IMAP edge on port 0), driven by
Python's imaplib and by imapclient: login, LIST with SPECIAL-USE, SELECT, FETCH, STORE seen through
gRPC, MOVE with COPYUID, \\Deleted + EXPUNGE as our delete, APPEND with APPENDUID, SEARCH, IDLE
hearing a gRPC delivery within a second, two sessions seeing each other's changes, bad commands
answered BAD with their tag; and POP3 on the same edge (poplib): the Inbox read, a DELE moving
the message to Trash at QUIT, seen by IMAP; TLS: implicit on the TLS port, STARTTLS and STLS,
trusting the edge's development certificate."""
from __future__ import annotations

import imaplib
import itertools
import poplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import grpc
import pytest
from imapclient import IMAPClient

from tests.cluster.grid import PASSWORD, Grid, running
from tidings.v1 import mail_pb2
from tidings_client import new_entry_id

pytestmark = pytest.mark.timeout(120)
_users = itertools.count(1)


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(Path(tmp_path_factory.mktemp("imap-grid")), edges=("imap",), virus_scan=False) as g:
        yield g


@pytest.fixture
def user(grid: Grid) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        email = f"imap{next(_users)}@example.test"
        account = grid.add_user(email)
        return email, account.user_id
    return make


def mail(subject: str, body: str = "hello there", sender: str = "carol@example.org", to: str = "x@example.test") -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = f"Carol <{sender}>", to, subject
    message["Message-ID"] = f"<{new_entry_id()}@example.org>"
    message.set_content(body)
    return message.as_bytes().replace(b"\n", b"\r\n")


def deliver(grid: Grid, email: str, subject: str, body: str = "hello there", folder: str = "") -> str:
    answer = grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=mail(subject, body, to=email),
                                                       recipients=[email], folder_id=folder), timeout=30)
    return str(answer.deliveries[0].id)


def summary(grid: Grid, user_id: str, message_id: str):  # type: ignore[no-untyped-def]
    return grid.mail.GetMessage(mail_pb2.MessageRef(user_id=user_id, id=message_id), timeout=30).summary


def client(grid: Grid, email: str) -> IMAPClient:
    imap = IMAPClient(grid.host, port=grid.imap_port, ssl=False, timeout=30)
    imap.login(email, PASSWORD)
    return imap


def test_login_capability_and_list_with_special_use(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    grid.mail.CreateFolder(mail_pb2.CreateFolderRequest(user_id=user_id, name="Projects/Tidings"), timeout=30)
    imap = imaplib.IMAP4(grid.host, grid.imap_port, timeout=30)
    assert "IDLE" in imap.capabilities and "AUTH=PLAIN" in imap.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap.login(email, "wrong")
    status, _ = imap.login(email, PASSWORD)
    assert status == "OK"
    status, lines = imap.list()
    assert status == "OK"
    listed = {line.decode() for line in lines if isinstance(line, bytes)}
    assert any(line.endswith(' "/" INBOX') for line in listed), listed
    for name, use in (("Sent", "\\Sent"), ("Drafts", "\\Drafts"), ("Junk", "\\Junk"), ("Trash", "\\Trash"),
                      ("Archive", "\\Archive")):
        assert any(use in line and line.endswith(f'"{name}"') for line in listed), (name, listed)
    assert any(line.endswith('"Projects/Tidings"') and "\\HasNoChildren" in line for line in listed), listed
    assert any(line.endswith('"Projects"') and "\\HasChildren" in line for line in listed), listed
    status, lines = imap.list('""', "%")
    assert not any("Tidings" in line.decode() for line in lines if isinstance(line, bytes))
    status, lines = imap.logout()
    assert status == "BYE"


def test_select_fetch_envelope_body_and_flags(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    first = deliver(grid, email, "first one", "the first body")
    deliver(grid, email, "second one")
    with client(grid, email) as imap:
        selected = imap.select_folder("INBOX")
        assert selected[b"EXISTS"] == 2 and selected[b"UIDVALIDITY"] > 0 and selected[b"UIDNEXT"] == 3
        assert selected[b"HIGHESTMODSEQ"] > 0 and b"\\Seen" in selected[b"PERMANENTFLAGS"]
        fetched = imap.fetch([1, 2], ["UID", "FLAGS", "ENVELOPE", "RFC822.SIZE", "INTERNALDATE", "BODYSTRUCTURE",
                                     "BODY.PEEK[]", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "BODY.PEEK[1]<0.9>"])
        assert sorted(fetched) == [1, 2]
        one = fetched[1]
        assert one[b"ENVELOPE"].subject == b"first one"
        assert one[b"ENVELOPE"].from_[0].mailbox == b"carol" and one[b"ENVELOPE"].from_[0].host == b"example.org"
        assert one[b"FLAGS"] == ()
        raw = one[b"BODY[]"]
        assert b"the first body" in raw and one[b"RFC822.SIZE"] == len(raw)
        assert one[b"BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: first one\r\n\r\n"
        assert one[b"BODY[1]<0>"] == b"the first"
        assert one[b"BODYSTRUCTURE"][0].upper() == b"TEXT" and one[b"BODYSTRUCTURE"][1].upper() == b"PLAIN"
        assert summary(grid, user_id, first).unread  # PEEK leaves it unread
        imap.fetch("1", ["BODY[TEXT]"])
        assert not summary(grid, user_id, first).unread  # BODY[] sets \Seen
        assert imap.get_flags(1)[1] == (b"\\Seen",)


def test_store_flags_are_seen_through_grpc(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    message_id = deliver(grid, email, "flag me")
    with client(grid, email) as imap:
        imap.select_folder("INBOX")
        assert imap.add_flags([1], ["\\Seen", "\\Flagged"], silent=False)[1] == (b"\\Seen", b"\\Flagged")
        stored = summary(grid, user_id, message_id)
        assert not stored.unread and stored.starred
        imap.remove_flags([1], ["\\Flagged"])
        stored = summary(grid, user_id, message_id)
        assert not stored.unread and not stored.starred
        imap.set_flags([1], [])
        assert summary(grid, user_id, message_id).unread


def test_move_answers_copyuid_and_moves_in_the_store(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    message_id = deliver(grid, email, "move me")
    deliver(grid, email, "stay here")
    with client(grid, email) as imap:
        imap.create_folder("Projects/2026")
        imap.select_folder("INBOX")
        imap._imap.send(b"m1 UID MOVE 1 \"Projects/2026\"\r\n")
        answer = _read_until(imap, b"m1 ")
        assert b"[COPYUID " in answer and b" 1 1]" in answer, answer
        assert b"* 1 EXPUNGE" in answer and answer.rstrip().endswith(b"m1 OK UID MOVE completed")
        assert imap.search("ALL") == [2]
        folders = {f.name: f.id for f in grid.mail.ListFolders(mail_pb2.UserRef(user_id=user_id), timeout=30).folders}
        assert summary(grid, user_id, message_id).folder_id == folders["Projects/2026"]
        moved = imap.select_folder("Projects/2026")
        assert moved[b"EXISTS"] == 1
        assert imap.fetch("1", ["UID", "ENVELOPE"])[1][b"ENVELOPE"].subject == b"move me"
        imap.select_folder("INBOX")
        imap._imap.send(b"c1 UID COPY 2 Archive\r\n")
        answer = _read_until(imap, b"c1 ")
        assert answer.startswith(b"c1 OK [COPYUID ") and answer.rstrip().endswith(b" 2 1] UID COPY completed"), answer
        assert imap.select_folder("Archive")[b"EXISTS"] == 1


def _read_until(imap: IMAPClient, tag: bytes) -> bytes:
    """The raw answer to a command sent by hand, through its tagged line."""
    out = b""
    while True:
        line = imap._imap.readline()
        out += line
        if line.startswith(tag) or not line:
            return out


def test_deleted_then_expunge_is_our_delete(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    message_id = deliver(grid, email, "delete me")
    deliver(grid, email, "keep me")
    with client(grid, email) as imap:
        imap.select_folder("INBOX")
        imap.add_flags([1], ["\\Deleted"])
        assert b"\\Deleted" in imap.get_flags([1])[1]
        assert imap.search("DELETED") == [1]
        marked = summary(grid, user_id, message_id)
        assert (marked.folder_id, marked.deleted) == ("inbox", True)  # only marked, in the store
        imap.expunge()
        assert imap.search("ALL") == [2]  # UIDs: imapclient's default
        moved = summary(grid, user_id, message_id)
        assert (moved.folder_id, moved.deleted) == ("trash", False)  # an EXPUNGE of Trash does not take it at once
        imap.select_folder("Trash")
        imap.add_flags([1], ["\\Deleted"])
        imap.close_folder()  # CLOSE expunges too: from Trash, for good
        with pytest.raises(grpc.RpcError) as gone:
            summary(grid, user_id, message_id)
        assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        assert imap.select_folder("Trash")[b"EXISTS"] == 0


def test_append_then_fetch_and_nothing_sent(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    with client(grid, email) as imap:
        raw = mail("my draft", "draft body", sender=email, to="someone@example.org")
        answer = imap.append("Drafts", raw, flags=["\\Seen"])
        assert b"[APPENDUID " in answer, answer
        uidvalidity, uid = answer.split(b"[APPENDUID ")[1].split(b"]")[0].split()
        selected = imap.select_folder("Drafts")
        assert selected[b"UIDVALIDITY"] == int(uidvalidity)
        fetched = imap.fetch([int(uid)], ["BODY.PEEK[]", "FLAGS"])
        [(_, items)] = fetched.items()
        assert items[b"BODY[]"] == raw and items[b"FLAGS"] == (b"\\Seen",)
        assert imap.select_folder("Sent")[b"EXISTS"] == 0
        with pytest.raises(IMAPClient.Error, match="TRYCREATE"):
            imap.append("Nowhere", raw)
        imap.create_folder("Kept")
        answer = imap.append("Kept", mail("kept one"))
        assert b"[APPENDUID " in answer
        assert imap.select_folder("Kept")[b"EXISTS"] == 1
    folders = grid.mail.ListFolders(mail_pb2.UserRef(user_id=user_id), timeout=30).folders
    assert {f.role: f.total for f in folders if f.role}["inbox"] == 0


def test_search_flags_text_and_uids_within_the_folder(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    deliver(grid, email, "quarterly report", "numbers inside")
    deliver(grid, email, "lunch plans", "pizza on friday")
    deliver(grid, email, "quarterly report", "elsewhere", folder="archive")  # never a hit in INBOX
    with client(grid, email) as imap:
        imap.select_folder("INBOX")
        imap.add_flags([2], ["\\Flagged", "\\Seen"])
        assert imap.search("ALL") == [1, 2]
        assert imap.search("UNSEEN") == [1] and imap.search("SEEN") == [2] and imap.search("FLAGGED") == [2]
        assert imap.search(["SUBJECT", "quarterly"]) == [1]
        assert imap.search(["SUBJECT", "quart"]) == [1]
        assert imap.search(["BODY", "pizza"]) == [2]
        assert imap.search(["TEXT", "friday", "FLAGGED"]) == [2]
        assert imap.search(["FROM", "carol@example.org"]) == [1, 2]
        assert imap.search(["OR", "SUBJECT", "lunch", "SUBJECT", "quarterly"]) == [1, 2]
        assert imap.search(["NOT", "SUBJECT", "lunch"]) == [1]
        assert imap.search(["UID", "2:*"]) == [2]
        assert imap.search(["LARGER", "10", "SMALLER", "100000"]) == [1, 2]
        uids = imap.search(["SINCE", "1-Jan-2020"])
        assert uids == [1, 2]
        assert imap.search(["HEADER", "Subject", "lunch"]) == [2]


def test_idle_hears_a_delivery_within_a_second(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    deliver(grid, email, "before")
    with client(grid, email) as imap:
        imap.select_folder("INBOX")
        imap.idle()
        time.sleep(0.2)
        started = time.monotonic()
        deliver(grid, email, "during idle")
        responses = imap.idle_check(timeout=5)
        heard = time.monotonic() - started
        imap.idle_done()
        assert (2, b"EXISTS") in responses, responses
        assert heard < 1.0, heard
        assert imap.fetch("2", ["ENVELOPE"])[2][b"ENVELOPE"].subject == b"during idle"


def test_two_sessions_see_each_others_flags_and_expunges(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    deliver(grid, email, "shared one")
    deliver(grid, email, "shared two")
    with client(grid, email) as first, client(grid, email) as second:
        first.select_folder("INBOX")
        second.select_folder("INBOX")
        second.fetch([1, 2], ["FLAGS"])
        first.add_flags([1], ["\\Flagged"])
        noop = second.noop()
        assert (1, b"FETCH", (b"UID", 1, b"FLAGS", (b"\\Flagged",))) in noop[1] or \
            any(item[:2] == (1, b"FETCH") and b"\\Flagged" in item[2][item[2].index(b"FLAGS") + 1]
                for item in noop[1] if isinstance(item, tuple)), noop
        first.add_flags([2], ["\\Deleted"])
        first.expunge()
        noop = second.noop()
        assert (2, b"EXPUNGE") in noop[1], noop
        assert second.search("ALL") == [1]  # UIDs


def test_two_sessions_see_each_others_answered_and_keywords(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    message_id = deliver(grid, email, "flag me")
    with client(grid, email) as first, client(grid, email) as second:
        selected = first.select_folder("INBOX")
        assert set(selected[b"PERMANENTFLAGS"]) == {b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen",
                                                   b"\\Draft", b"\\*"}
        second.select_folder("INBOX")
        second.fetch([1], ["FLAGS"])
        first.add_flags([1], ["\\Answered", "$Forwarded", "$label1"])
        second.noop()
        assert set(second.get_flags([1])[1]) == {b"\\Answered", b"$Forwarded", b"$label1"}
        second.remove_flags([1], ["$label1"])
        second.add_flags([1], ["\\Draft"])
        first.noop()
        assert set(first.get_flags([1])[1]) == {b"\\Answered", b"\\Draft", b"$Forwarded"}
        stored = summary(grid, user_id, message_id)
        assert (stored.answered, stored.draft, list(stored.keywords)) == (True, True, ["$Forwarded"])
        first.set_flags([1], ["\\Seen", "$Junk"])          # FLAGS replaces: the rest cleared
        assert set(first.get_flags([1])[1]) == {b"\\Seen", b"$Junk"}
        assert first.search(["KEYWORD", "$Junk"]) == [1] and first.search("UNANSWERED") == [1]
    with client(grid, email) as third:                       # a new session reads them back
        third.select_folder("INBOX")
        assert set(third.get_flags([1])[1]) == {b"\\Seen", b"$Junk"}
        with pytest.raises(IMAPClient.Error):
            third.add_flags([1], [f"k{i}" for i in range(40)])   # over the store's 32 keywords: NO


def test_deleted_set_in_one_session_is_expunged_by_another(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    doomed = deliver(grid, email, "doomed")
    kept = deliver(grid, email, "kept")
    with client(grid, email) as first:
        first.select_folder("INBOX")
        first.add_flags([1], ["\\Deleted"])
    assert summary(grid, user_id, doomed).deleted                # it outlives the session that set it
    with client(grid, email) as second, client(grid, email) as watcher:
        watcher.select_folder("INBOX")
        second.select_folder("INBOX")
        assert second.search("DELETED") == [1]
        second.expunge()
        assert second.search("ALL") == [2]
        assert (2 - 1, b"EXPUNGE") in watcher.noop()[1]
    assert summary(grid, user_id, doomed).folder_id == "trash" and summary(grid, user_id, kept).folder_id == "inbox"


def test_append_keeps_the_flags_given(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    with client(grid, email) as imap:
        imap.append("Drafts", mail("a draft", to=email), flags=["\\Draft", "\\Seen", "$label2"])
        imap.select_folder("Drafts")
        assert set(imap.get_flags([1])[1]) == {b"\\Draft", b"\\Seen", b"$label2"}
        imap.copy([1], "INBOX")
        imap.select_folder("INBOX")
        assert set(imap.get_flags([1])[1]) == {b"\\Draft", b"\\Seen", b"$label2"}


def _raw(grid: Grid) -> socket.socket:
    sock = socket.create_connection((grid.host, grid.imap_port), timeout=10)
    assert sock.recv(4096).startswith(b"* OK ")
    return sock


def _ask(sock: socket.socket, line: bytes, tag: bytes) -> bytes:
    sock.sendall(line)
    out = b""
    while not any(row.startswith(tag + b" ") for row in out.split(b"\r\n")):
        data = sock.recv(65536)
        if not data:
            break
        out += data
    return out


def test_bad_commands_are_answered_with_their_tag(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    sock = _raw(grid)
    assert _ask(sock, b"a1 FROBNICATE\r\n", b"a1").startswith(b"a1 BAD unknown command FROBNICATE")
    assert _ask(sock, b"a2 FETCH 1 FLAGS\r\n", b"a2").startswith(b"a2 BAD FETCH is not allowed in the not "
                                                                  b"authenticated state")
    assert _ask(sock, b"a3 LOGIN onlyone\r\n", b"a3").startswith(b"a3 BAD ")
    assert _ask(sock, b"a4 SELECT INBOX\r\n", b"a4").startswith(b"a4 BAD SELECT is not allowed")
    assert b"a5 OK" in _ask(sock, f"a5 LOGIN {email} \"{PASSWORD}\"\r\n".encode(), b"a5")
    assert _ask(sock, b"a6 FETCH 1 FLAGS\r\n", b"a6").startswith(b"a6 BAD FETCH is not allowed in the authenticated")
    assert b"a7 NO [NONEXISTENT]" in _ask(sock, b"a7 SELECT Nowhere\r\n", b"a7")
    assert b"a8 OK" in _ask(sock, b"a8 SELECT INBOX\r\n", b"a8")
    assert _ask(sock, b"a9 FETCH 5 FLAGS\r\n", b"a9").split(b"\r\n")[-2].startswith(b"a9 BAD no message 5")
    assert _ask(sock, b"b1 FETCH 1 (FLAGS\r\n", b"b1").startswith(b"b1 BAD ")
    sock.sendall(b"b2 NOOP " + b"x" * 70_000 + b"\r\n")
    time.sleep(0.2)
    rest = b""
    while data := sock.recv(65536):
        rest += data
    assert b"* BYE" in rest, rest
    sock.close()


def test_authenticate_plain_and_namespace(grid: Grid, user: Callable[[], tuple[str, str]]) -> None:
    email, _ = user()
    imap = imaplib.IMAP4(grid.host, grid.imap_port, timeout=30)
    status, _ = imap.authenticate("PLAIN", lambda _: f"\0{email}\0{PASSWORD}".encode())
    assert status == "OK"
    status, data = imap.namespace()
    assert data == [b'(("" "/")) NIL NIL']
    status, data = imap.status("INBOX", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ)")
    assert status == "OK" and b"MESSAGES 0" in data[0] and b"UIDNEXT 1" in data[0], data
    status, data = imap.xatom("ID", "NIL")
    imap.logout()


def test_pop3_reads_the_inbox_and_a_deleted_message_goes_to_trash(grid: Grid, user: Callable[[], tuple[str, str]]
                                                                    ) -> None:
    email, user_id = user()
    ids = [deliver(grid, email, f"pop {i}") for i in range(3)]
    pop = poplib.POP3(grid.host, grid.pop3_port, timeout=30)
    pop.user(email)
    pop.pass_(PASSWORD)
    count, octets = pop.stat()
    assert count == 3 and octets == sum(summary(grid, user_id, i).size for i in ids)
    listed = [line.split()[1] for line in pop.uidl()[1]]
    assert len(set(listed)) == 3
    _, lines, _ = pop.retr(1)
    assert b"Subject: pop 0" in lines
    pop.dele(1)
    assert pop.quit().startswith(b"+OK 1 messages moved to Trash")
    assert summary(grid, user_id, ids[0]).folder_id == "trash"
    again = poplib.POP3(grid.host, grid.pop3_port, timeout=30)
    again.user(email)
    again.pass_(PASSWORD)
    assert again.stat()[0] == 2 and [line.split()[1] for line in again.uidl()[1]] == listed[1:]   # ids kept
    again.quit()
    with client(grid, email) as imap:
        imap.select_folder("Trash")
        assert len(imap.search("ALL")) == 1


def _trusting(grid: Grid) -> ssl.SSLContext:
    """A client context trusting the edge's development certificate (made under its --data-dir)."""
    return ssl.create_default_context(cafile=str(grid.layout.base_dir / "imap" / "tls" / "cert.pem"))


def test_implicit_tls_on_the_tls_port_and_starttls_on_the_imap_port(grid: Grid, user: Callable[[], tuple[str, str]]
                                                                    ) -> None:
    email, _ = user()
    deliver(grid, email, "over tls")
    with imaplib.IMAP4_SSL(grid.host, grid.imaps_port, ssl_context=_trusting(grid), timeout=30) as imap:
        assert "STARTTLS" not in imap.capabilities and "LOGINDISABLED" not in imap.capabilities
        imap.login(email, PASSWORD)
        imap.select("INBOX")
        status, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert status == "OK" and b"Subject: over tls" in data[0][1]
    with imaplib.IMAP4(grid.host, grid.imap_port, timeout=30) as imap:
        assert "STARTTLS" in imap.capabilities
        imap.starttls(_trusting(grid))
        assert "STARTTLS" not in imap.capabilities
        imap.login(email, PASSWORD)
        assert imap.select("INBOX")[0] == "OK"
    pop = poplib.POP3(grid.host, grid.pop3_port, timeout=30)
    assert "STLS" in pop.capa()
    pop.stls(_trusting(grid))
    pop.user(email)
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 1
    pop.quit()
