"""THREAD (RFC 5256) from our threads: base subjects, the trees of REFERENCES (the router's
thread ids) and ORDEREDSUBJECT, and THREAD / UID THREAD in a session against the fake router
(which threads a reply under the message its In-Reply-To names)."""
from __future__ import annotations

from imap_edge.responses import Encoder, ThreadNode
from imap_edge.threads import Item, base_subject, thread
from tests.fake_mail import FakeMail
from tests.unit.imap_edge.test_session import connect, login, with_fake


def test_base_subject() -> None:
    assert base_subject("Re: Fwd:  The   Plan") == "the plan"
    assert base_subject("RE[2]: [tidings-dev] Re: plan (fwd)") == "plan"
    assert base_subject("[only a tag]") == "[only a tag]"
    assert base_subject("") == ""


def test_threads_in_the_order_of_their_first_message_the_rest_as_children() -> None:
    items = [Item(1, "t1", "Plan", 100), Item(2, "t2", "Lunch", 200), Item(3, "t1", "Re: Plan", 300),
             Item(4, "t1", "Re: Plan", 250), Item(5, "t3", "re: lunch", 400)]
    tree = thread("REFERENCES", items)
    assert tree == [ThreadNode(1, (ThreadNode(4), ThreadNode(3))), ThreadNode(2), ThreadNode(5)]
    assert Encoder().thread(tree) == b"* THREAD (1 (4)(3))(2)(5)\r\n"
    assert Encoder().thread(thread("ORDEREDSUBJECT", items)) == b"* THREAD (1 (4)(3))(2 5)\r\n"
    assert thread("REFERENCES", [Item(7, "", "x", 1), Item(8, "", "x", 1)]) == [ThreadNode(7), ThreadNode(8)]
    assert thread("REFERENCES", []) == []


@with_fake
async def test_thread_and_uid_thread_in_a_session(fake: FakeMail) -> None:
    peer = await connect(fake)
    await login(peer)
    assert b"THREAD=REFERENCES THREAD=ORDEREDSUBJECT" in await peer.ask(b"c CAPABILITY\r\n")
    for n, raw in enumerate((b"Message-ID: <a@x>\r\nSubject: Plan\r\n\r\nfirst\r\n",
                             b"Message-ID: <c@x>\r\nSubject: Other\r\n\r\nthird\r\n",
                             b"Message-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\nSubject: Re: Plan\r\n\r\nsecond\r\n")):
        assert b"OK [APPENDUID" in await peer.ask(b"a%d APPEND INBOX {%d+}\r\n%s\r\n" % (n, len(raw), raw))
    assert b"s OK" in await peer.ask(b"s SELECT INBOX\r\n")
    answer = await peer.ask(b"t1 THREAD REFERENCES UTF-8 ALL\r\n")
    assert answer == b"* THREAD (1 3)(2)\r\nt1 OK THREAD completed\r\n", answer
    assert (await peer.ask(b"t2 UID THREAD ORDEREDSUBJECT US-ASCII NOT UID 2\r\n")
            ) == b"* THREAD (1 3)\r\nt2 OK UID THREAD completed\r\n"
    assert (await peer.ask(b"t3 THREAD ORDEREDSUBJECT UTF-8 SUBJECT nothingmatches\r\n")
            ).startswith(b"* THREAD\r\nt3 OK")
    assert (await peer.ask(b"t4 THREAD REFS UTF-8 ALL\r\n")).startswith(b"t4 BAD THREAD REFS is not supported")
