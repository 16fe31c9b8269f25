"""The response encoder: exact bytes for the RFCs' examples, and round trips through a reader."""
from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from imap_edge import responses as r
from imap_edge.protocol.tokens import ATOM, Reader

E = r.Encoder()


def read(reader: Reader) -> object:
    """A generic IMAP value: NIL, a number, a string, an atom or a parenthesized list."""
    if reader.take_nil():
        return None
    first = reader.peek()
    if first == b"(":  # items are apart by a space, or by none between lists (addresses, body parts)
        reader.pos += 1
        items: list[object] = []
        while not reader.take(b")"):
            if items and not reader.take_sp() and reader.peek() != b"(":
                raise reader.error("a space or ')'")
            items.append(read(reader))
        return items
    if first in (b'"', b"{"):
        return reader.string()
    if first == b"~":
        return reader.literal(binary=True)
    digits = reader.match(ATOM)
    assert digits is not None, reader.data[reader.pos:]
    return int(digits) if digits.isdigit() else digits.decode()


def decode(data: bytes) -> object:
    reader = Reader(data)
    value = read(reader)
    reader.end()
    return value


def test_status_lines_with_codes() -> None:
    assert E.tagged("A142", "OK", "SELECT completed", r.READ_WRITE) == b"A142 OK [READ-WRITE] SELECT completed\r\n"
    assert E.untagged("OK", "Predicted next UID", r.uidnext(4392)) == b"* OK [UIDNEXT 4392] Predicted next UID\r\n"
    assert E.untagged("OK", "UIDs valid", r.uidvalidity(3857529045)) == b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n"
    assert E.untagged("OK", "Highest", r.highestmodseq(715194045007)) == b"* OK [HIGHESTMODSEQ 715194045007] Highest\r\n"
    assert E.tagged("A003", "OK", "APPEND completed", r.appenduid(38505, [3955])) == \
        b"A003 OK [APPENDUID 38505 3955] APPEND completed\r\n"
    assert E.tagged("A004", "OK", "Done", r.copyuid(38505, [304, 319, 320, 321, 322], "3956:3960")) == \
        b"A004 OK [COPYUID 38505 304,319:322 3956:3960] Done\r\n"
    assert E.untagged("OK", "Limited", r.permanentflags(["\\Deleted", "\\Seen", "\\*"])) == \
        b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n"
    assert E.tagged("d105", "OK", "Conditional STORE failed", r.modified([7, 9])) == \
        b"d105 OK [MODIFIED 7,9] Conditional STORE failed\r\n"
    assert E.tagged("a1", "NO", "unknown charset", r.badcharset()) == \
        b'a1 NO [BADCHARSET (US-ASCII UTF-8)] unknown charset\r\n'
    assert E.untagged("BYE", "bye") == b"* BYE bye\r\n"
    assert E.continuation() == b"+ Ready\r\n"


def test_text_cannot_end_a_line_early() -> None:
    assert E.tagged("a1", "NO", "evil\r\na2 OK forged") == b"a1 NO evil  a2 OK forged\r\n"


def test_untagged_data() -> None:
    assert E.capability(["IMAP4rev1", "IMAP4rev2", "LITERAL+"]) == b"* CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+\r\n"
    assert E.enabled(["CONDSTORE"]) == b"* ENABLED CONDSTORE\r\n"
    assert E.flags(["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"]) == \
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
    assert E.exists(172) + E.recent(1) + E.expunge(3) == b"* 172 EXISTS\r\n* 1 RECENT\r\n* 3 EXPUNGE\r\n"
    assert E.vanished([41, 43, 44, 45, 99], earlier=True) == b"* VANISHED (EARLIER) 41,43:45,99\r\n"
    assert E.search([2, 3, 6]) == b"* SEARCH 2 3 6\r\n"
    assert E.search([2, 5], modseq=917162500) == b"* SEARCH 2 5 (MODSEQ 917162500)\r\n"
    assert E.esearch("A285", uid=True, min=7, max=3800) == b'* ESEARCH (TAG "A285") UID MIN 7 MAX 3800\r\n'
    assert E.esearch("A284", uid=False, count=0, all=[]) == b'* ESEARCH (TAG "A284") COUNT 0\r\n'
    assert E.esearch("a", uid=True, all=[1, 2, 3, 5], modseq=9) == b'* ESEARCH (TAG "a") UID ALL 1:3,5 MODSEQ 9\r\n'
    assert E.status("blurdybloop", {"MESSAGES": 231, "UIDNEXT": 44292}) == \
        b'* STATUS "blurdybloop" (MESSAGES 231 UIDNEXT 44292)\r\n'
    assert E.namespace([("", "/")], None, [("Public Folders/", "/")]) == \
        b'* NAMESPACE (("" "/")) NIL (("Public Folders/" "/"))\r\n'
    assert E.id({"name": "Tidings", "version": None}) == b'* ID ("name" "Tidings" "version" NIL)\r\n'
    assert E.id(None) == b"* ID NIL\r\n"


def test_list_lines() -> None:
    assert E.list(["\\HasNoChildren", "\\Sent"], "/", "Sent") == b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n'
    assert E.list([], "/", "INBOX") == b'* LIST () "/" INBOX\r\n'
    assert E.list(["\\Noselect"], None, "") == b'* LIST (\\Noselect) NIL ""\r\n'
    assert E.list([], "/", "~peter/mail/台北/日本語") == b'* LIST () "/" "~peter/mail/&U,BTFw-/&ZeVnLIqe-"\r\n'
    assert r.Encoder(utf8=True).list([], "/", "日本語") == '* LIST () "/" "日本語"\r\n'.encode()
    assert E.list(["\\Subscribed"], "/", "Foo", extended=["CHILDINFO", ["SUBSCRIBED"]]) == \
        b'* LIST (\\Subscribed) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))\r\n'
    assert E.list([], "/", "x", command="LSUB") == b'* LSUB () "/" "x"\r\n'


def test_strings_quoted_or_literal() -> None:
    assert E.string("plain") == b'"plain"'
    assert E.string('a "b" \\c') == b'"a \\"b\\" \\\\c"'
    assert E.string("two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert E.string("café") == b"{5}\r\ncaf\xc3\xa9"
    assert r.Encoder(utf8=True).string("café") == '"café"'.encode()
    assert E.string("x" * 1001) == b"{1001}\r\n" + b"x" * 1001
    assert E.literal(b"a\x00b") == b"{3}\r\na\x80b"
    assert E.literal(b"a\x00b", binary=True) == b"~{3}\r\na\x00b"
    assert E.astring("INBOX") == b"INBOX" and E.astring("NIL") == b'"NIL"' and E.astring("a b") == b'"a b"'


def test_fetch_items() -> None:
    when = dt.datetime(1996, 7, 17, 2, 44, 25, tzinfo=dt.timezone(-dt.timedelta(hours=7)))
    line = E.fetch(12, [("UID", 4827313), ("FLAGS", E.flags_value(["\\Seen"])), ("INTERNALDATE", when),
                        ("RFC822.SIZE", 44827), ("MODSEQ", [12121231000]), ("BODY[]<0>", r.Literal(b"Hi\r\n"))])
    assert line == (b'* 12 FETCH (UID 4827313 FLAGS (\\Seen) INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
                    b"RFC822.SIZE 44827 MODSEQ (12121231000) BODY[]<0> {4}\r\nHi\r\n)\r\n")


ENVELOPE = r.Envelope(
    date="Wed, 17 Jul 1996 02:23:25 -0700 (PDT)", subject="IMAP4rev1 WG mtg summary and minutes",
    from_=(r.Address("Terry Gray", None, "gray", "cac.washington.edu"),),
    sender=(r.Address("Terry Gray", None, "gray", "cac.washington.edu"),),
    reply_to=(r.Address("Terry Gray", None, "gray", "cac.washington.edu"),),
    to=(r.Address(None, None, "imap", "cac.washington.edu"),),
    cc=(r.Address(None, None, "minutes", "CNRI.Reston.VA.US"), r.Address("John Klensin", None, "KLENSIN", "MIT.EDU")),
    message_id="<B27397-0100000@cac.washington.edu>")


def test_envelope_as_in_rfc_3501() -> None:
    assert E.envelope(ENVELOPE) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
        b'"<B27397-0100000@cac.washington.edu>")')


def test_bodystructure_and_body() -> None:
    text = r.BodyPart("text", "plain", (("CHARSET", "US-ASCII"),), encoding="7bit", size=3028, lines=92)
    assert E.body_structure(text, extended=False) == b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)'
    attachment = r.BodyPart("application", "pdf", (("NAME", "a.pdf"),), encoding="base64", size=100,
                            disposition=("attachment", (("FILENAME", "a.pdf"),)), language=("en",))
    mixed = r.Multipart((text, attachment), "mixed", (("BOUNDARY", "xyz"),))
    assert E.body_structure(mixed) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92 NIL NIL NIL NIL)'
        b'("APPLICATION" "PDF" ("NAME" "a.pdf") NIL NIL "BASE64" 100 NIL ("attachment" ("FILENAME" "a.pdf")) "en" NIL)'
        b' "MIXED" ("BOUNDARY" "xyz") NIL NIL NIL)')
    rfc822 = r.BodyPart("message", "rfc822", encoding="7bit", size=500, lines=20, envelope=ENVELOPE, body=text)
    decoded = decode(E.body_structure(rfc822, extended=False))
    assert isinstance(decoded, list) and decoded[:2] == [b"MESSAGE", b"RFC822"] and decoded[-1] == 20
    assert decoded[8] == [b"TEXT", b"PLAIN", [b"CHARSET", b"US-ASCII"], None, None, b"7BIT", 3028, 92]


def test_thread_responses() -> None:
    tree = [r.ThreadNode(2), r.ThreadNode(3, (r.ThreadNode(6, (r.ThreadNode(4, (r.ThreadNode(23),)),
                                                               r.ThreadNode(44, (r.ThreadNode(7, (r.ThreadNode(96),)),)))),)),
            r.ThreadNode(None, (r.ThreadNode(5), r.ThreadNode(8)))]
    assert E.thread(tree) == b"* THREAD (2)(3 6 (4 23)(44 7 96))((5)(8))\r\n"
    assert E.thread([]) == b"* THREAD\r\n"


@given(st.binary(max_size=300))
def test_any_bytes_come_back_through_string(data: bytes) -> None:
    assert decode(E.string(data.replace(b"\x00", b""))) == data.replace(b"\x00", b"")


@given(st.text(max_size=100))
def test_any_text_comes_back_through_string(text: str) -> None:
    text = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    for encoder in (E, r.Encoder(utf8=True), r.Encoder(max_quoted=5)):
        assert decode(encoder.string(text)) == text.encode("utf-8")


@given(st.recursive(st.none() | st.integers(0, 2**63) | st.binary(max_size=20).map(lambda b: b.replace(b"\x00", b"")),
                    lambda inner: st.lists(inner, max_size=4), max_leaves=20))
def test_nested_values_round_trip(value: object) -> None:
    assert decode(E.value(value)) == value  # type: ignore[arg-type]
