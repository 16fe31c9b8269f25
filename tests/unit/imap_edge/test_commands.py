"""Every command of issue 20, mostly the RFCs' own examples, and the exact BAD reasons."""
from __future__ import annotations

import datetime as dt

import pytest

from imap_edge.protocol import ParseError, UnknownCommand, parse_command
from imap_edge.protocol.commands import (
    Append,
    AppendMessage,
    Authenticate,
    Command,
    Compress,
    Copy,
    Create,
    Enable,
    Fetch,
    Id,
    List,
    ListReturn,
    Login,
    MailboxArgument,
    NoArguments,
    QResync,
    Rename,
    Search,
    Select,
    Status,
    Store,
    Thread,
    UidExpunge,
)
from imap_edge.protocol.fetch import FetchAttribute, Section
from imap_edge.protocol.search import And, FlagKey, ModSeqKey, Not, Or, SetKey, SizeKey, TextKey
from imap_edge.protocol.sequence import SequenceSet, parse_sequence_set


def parse(raw: bytes, utf8: bool = False) -> Command:
    return parse_command(raw, utf8=utf8)


def args(raw: bytes, utf8: bool = False) -> object:
    return parse(raw, utf8).arguments


def seq(text: str) -> SequenceSet:
    return parse_sequence_set(text)


@pytest.mark.parametrize("name", ["CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "NAMESPACE", "IDLE", "CHECK", "CLOSE",
                                  "UNSELECT", "EXPUNGE"])
def test_commands_without_arguments(name: str) -> None:
    assert parse(f"a1 {name.lower()}".encode()) == Command("a1", name, NoArguments())


def test_login_and_authenticate() -> None:
    assert args(b"a001 LOGIN SMITH SESAME") == Login("SMITH", "SESAME")
    assert args(b'a1 LOGIN "fred@example.test" "p\\"w\\\\"') == Login("fred@example.test", 'p"w\\')
    assert args(b"a1 LOGIN {4}\r\nfred {3}\r\nabc") == Login("fred", "abc")
    assert args(b"a1 AUTHENTICATE plain") == Authenticate("PLAIN")
    assert args(b"a1 AUTHENTICATE PLAIN AGZyZWQAc2VjcmV0") == Authenticate("PLAIN", b"\x00fred\x00secret")
    assert args(b"a1 AUTHENTICATE PLAIN =") == Authenticate("PLAIN", b"")


def test_id_enable_compress() -> None:
    assert args(b'a023 ID ("name" "sodr" "version" "19.34" "vendor" NIL)') == \
        Id((("name", "sodr"), ("version", "19.34"), ("vendor", None)))
    assert args(b"a1 ID NIL") == Id(None)
    assert args(b"a1 ID ()") == Id(())
    assert args(b"t2 ENABLE CONDSTORE qresync") == Enable(("CONDSTORE", "QRESYNC"))
    assert args(b"a1 COMPRESS DEFLATE") == Compress("DEFLATE")


def test_select_and_examine() -> None:
    assert args(b"A142 SELECT INBOX") == Select("INBOX")
    assert args(b"a1 select inbox") == Select("INBOX")
    assert parse(b"A932 EXAMINE blurdybloop").name == "EXAMINE"
    assert args(b"a1 SELECT INBOX (CONDSTORE)") == Select("INBOX", condstore=True)
    # RFC 7162 3.2.5.2
    assert args(b"A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))") == \
        Select("INBOX", qresync=QResync(67890007, 20050715194045000, seq("41,43:211,214:541")))
    assert args(b"B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 "
                b"15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))") == \
        Select("INBOX", qresync=QResync(67890007, 90060115194045000, seq("1:29997"),
                                        (seq("5000,7500,9000,9990:9999"),
                                         seq("15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,"
                                             "29994,29997"))))


def test_mailbox_names_modified_utf7_and_utf8() -> None:
    assert args(b"a1 CREATE ~peter/mail/&U,BTFw-/&ZeVnLIqe-") == Create("~peter/mail/台北/日本語")
    assert args(b'a1 CREATE "&-x"') == Create("&x")
    assert args("a1 CREATE \"日本語\"".encode(), utf8=True) == Create("日本語")
    assert args(b'a1 CREATE "&ZeVnLIqe-"', utf8=True) == Create("&ZeVnLIqe-")
    assert args(b"a1 CREATE Archive (USE (\\archive))") == Create("Archive", ("\\Archive",))
    assert args(b"a1 DELETE blurdybloop") == MailboxArgument("blurdybloop")
    assert args(b"a1 SUBSCRIBE #news.comp.mail.mime") == MailboxArgument("#news.comp.mail.mime")
    assert parse(b"a1 UNSUBSCRIBE x").name == "UNSUBSCRIBE"
    assert args(b"A683 RENAME blurdybloop sarasoop") == Rename("blurdybloop", "sarasoop")


def test_list_and_lsub() -> None:
    assert args(b'A101 LIST "" ""') == List("", ("",))
    assert args(b"A202 LIST ~/Mail/ %") == List("~/Mail/", ("%",))
    assert args(b'a1 LIST "" *') == List("", ("*",))
    assert args(b'A01 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"') == \
        List("", ("%",), frozenset({"SUBSCRIBED", "RECURSIVEMATCH"}))
    assert args(b'A02 LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE CHILDREN)') == \
        List("", ("*",), frozenset({"SPECIAL-USE"}), ListReturn(children=True, special_use=True))
    assert args(b'A04 LIST "" ("INBOX" "Drafts" "Sent/%") RETURN (SUBSCRIBED STATUS (MESSAGES UNSEEN))') == \
        List("", ("INBOX", "Drafts", "Sent/%"), returns=ListReturn(subscribed=True, status=("MESSAGES", "UNSEEN")))
    assert args(b'a1 LIST "" Sent]*') == List("", ("Sent]*",))
    assert args(b'A002 LSUB "#news." "comp.mail.*"') == List("#news.", ("comp.mail.*",), frozenset({"SUBSCRIBED"}))


def test_status() -> None:
    assert args(b"A042 STATUS blurdybloop (UIDNEXT MESSAGES)") == Status("blurdybloop", ("UIDNEXT", "MESSAGES"))
    assert args(b"a1 STATUS INBOX (HIGHESTMODSEQ size deleted)") == Status("INBOX", ("HIGHESTMODSEQ", "SIZE", "DELETED"))


def test_append() -> None:
    message = b"Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nSubject: afternoon meeting\r\n\r\nHello Joe\r\n"
    raw = b'A003 APPEND saved-messages (\\Seen) "07-Feb-1994 21:52:25 -0800" {%d}\r\n' % len(message) + message
    when = dt.datetime(1994, 2, 7, 21, 52, 25, tzinfo=dt.timezone(-dt.timedelta(hours=8)))
    assert args(raw) == Append("saved-messages", (AppendMessage(("\\Seen",), when, message),))
    assert args(b"a1 APPEND INBOX {3}\r\nabc") == Append("INBOX", (AppendMessage((), None, b"abc"),))
    assert args(b'a1 APPEND INBOX " 7-Feb-1994 21:52:25 +0000" ~{3}\r\na\x00c') == \
        Append("INBOX", (AppendMessage((), dt.datetime(1994, 2, 7, 21, 52, 25, tzinfo=dt.UTC), b"a\x00c", True),))
    multi = args(b"a1 APPEND Drafts (\\Draft $MDNSent) {1+}\r\nx () {1+}\r\ny")
    assert isinstance(multi, Append) and [m.data for m in multi.messages] == [b"x", b"y"]
    assert multi.messages[0].flags == ("\\Draft", "$MDNSent")


def test_fetch() -> None:
    assert args(b"A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])") == Fetch(
        seq("2:4"), (FetchAttribute("FLAGS"),
                     FetchAttribute("BODY", Section((), "HEADER.FIELDS", ("DATE", "FROM")))))
    command = parse(b"a1 UID FETCH 1:*,3,5:7 (UID BODY.PEEK[1.2.HEADER.FIELDS (From Subject)]<0.100>)")
    assert command.uid and command.name == "FETCH"
    attribute = command.arguments.attributes[1]  # type: ignore[union-attr]
    assert attribute == FetchAttribute("BODY", Section((1, 2), "HEADER.FIELDS", ("From", "Subject")), (0, 100), True)
    assert str(attribute) == "BODY.PEEK[1.2.HEADER.FIELDS (From Subject)]<0.100>"
    assert attribute.response_name() == "BODY[1.2.HEADER.FIELDS (From Subject)]<0>"
    assert not attribute.sets_seen
    fast = args(b"a1 FETCH 1 fast")
    assert isinstance(fast, Fetch) and [str(a) for a in fast.attributes] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    full = args(b"a1 FETCH 1 FULL")
    assert isinstance(full, Fetch) and [str(a) for a in full.attributes][-2:] == ["ENVELOPE", "BODY"]
    several = args(b"a1 FETCH $ (BODY[] BODY[TEXT] BODY[1.MIME] BODY[2.HEADER.FIELDS.NOT (X-A)] BINARY[1]<5.10> "
                   b"BINARY.PEEK[] BINARY.SIZE[1.2] RFC822.SIZE BODYSTRUCTURE MODSEQ EMAILID)")
    assert isinstance(several, Fetch) and several.sequence.saved
    assert [str(a) for a in several.attributes] == [
        "BODY[]", "BODY[TEXT]", "BODY[1.MIME]", "BODY[2.HEADER.FIELDS.NOT (X-A)]", "BINARY[1]<5.10>",
        "BINARY.PEEK[]", "BINARY.SIZE[1.2]", "RFC822.SIZE", "BODYSTRUCTURE", "MODSEQ", "EMAILID"]
    assert args(b"s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)") == \
        Fetch(seq("1:*"), (FetchAttribute("FLAGS"),), changedsince=12345)
    assert args(b"A03 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)") == \
        Fetch(seq("1:*"), (FetchAttribute("FLAGS"),), changedsince=12345, vanished=True)


def test_store() -> None:
    assert args(b"A003 STORE 2:4 +FLAGS (\\Deleted)") == Store(seq("2:4"), "+", False, ("\\Deleted",))
    assert args(b"a1 STORE 1 -flags.silent \\seen $Junk") == Store(seq("1"), "-", True, ("\\Seen", "$Junk"))
    assert args(b"a1 STORE 1:* FLAGS ()") == Store(seq("1:*"), "", False, ())
    assert args(b"a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\\Deleted)") == \
        Store(seq("6,4,8"), "+", True, ("\\Deleted",), 12121230045)


def test_copy_move_expunge() -> None:
    assert args(b"A003 COPY 2:4 MEETING") == Copy(seq("2:4"), "MEETING")
    command = parse(b"a UID MOVE 42:69 foo")
    assert (command.name, command.uid, command.arguments) == ("MOVE", True, Copy(seq("42:69"), "foo"))
    assert parse(b"A202 UID EXPUNGE 3000:3002") == Command("A202", "EXPUNGE", UidExpunge(seq("3000:3002")), True)


def test_search() -> None:
    assert args(b'A282 SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"') == Search(And((
        FlagKey("\\Flagged", True), parse_key('SINCE 1-Feb-1994'), Not(TextKey("FROM", "Smith")))))
    assert args(b"A283 SEARCH RETURN () FLAGGED") == Search(FlagKey("\\Flagged", True), returns=())
    assert args(b"A284 SEARCH RETURN (MIN MAX COUNT) UNSEEN") == \
        Search(FlagKey("\\Seen", False), returns=("MIN", "MAX", "COUNT"))
    assert args(b"a1 UID SEARCH RETURN (SAVE) CHARSET UTF-8 TEXT {6}\r\nXXXXXX") == \
        Search(TextKey("TEXT", "XXXXXX"), "UTF-8", ("SAVE",))
    assert args(b"a1 SEARCH OR SMALLER 100 (UID 1:5 $) MODSEQ 620162338") == Search(And((
        Or(SizeKey(False, 100), And((SetKey(seq("1:5"), uid=True), SetKey(SequenceSet(saved=True))))),
        ModSeqKey(620162338))))
    assert args(b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338') == \
        Search(ModSeqKey(620162338, "/flags/\\draft", "all"))
    latin = args(b"a1 SEARCH CHARSET ISO-8859-1 SUBJECT {4}\r\ncaf\xe9")
    assert isinstance(latin, Search) and latin.key == TextKey("SUBJECT", "café")


def parse_key(text: str) -> object:
    from imap_edge.protocol.search import parse_search_key
    return parse_search_key(text)


def test_thread() -> None:
    assert args(b"A283 THREAD REFERENCES UTF-8 SINCE 5-MAR-2000") == \
        Thread("REFERENCES", "UTF-8", parse_key("SINCE 5-Mar-2000"))  # type: ignore[arg-type]
    assert parse(b"a UID THREAD ORDEREDSUBJECT US-ASCII ALL").uid


BAD = {
    b"a1 FOO": "unknown command FOO",
    b"a1 UID NOOP": "UID NOOP is not a command, at position 7",
    b"a1": "expected a space at end of command",
    b"a1 LOGIN fred": "expected a space at end of command",
    b"a1 NOOP extra": "unexpected text at position 7",
    b"a1 LOGIN fred \"unterminated": "bad quoted string at position 14",
    b"a1 LOGIN fred \"bad\\escape\"": "bad quoted string at position 14",
    b"a1 FETCH 0 FLAGS": "0 is not a valid sequence number, at position 9",
    b"a1 FETCH 1:99999999999 FLAGS": "number too large in sequence set at position 11",
    b"a1 FETCH 1 (FLAGS BODY[HEADER.FIELDS ()])": "empty list at position 37",
    b"a1 FETCH 1 BODY[MIME]": "MIME needs a part number, at position 15",
    b"a1 FETCH 1 BODY[1.FOO]": "expected HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT or MIME at position 18",
    b"a1 FETCH 1 FROB": "unknown fetch attribute FROB at position 11",
    b"a1 FETCH 1 BODY.PEEK": "expected '[' at end of command",
    b"a1 FETCH 1 BODY[]<0.0>": "expected a partial length at position 20, got 0",
    b"a1 UID FETCH 1 FLAGS (VANISHED)": "VANISHED needs CHANGEDSINCE",
    b"a1 STORE 1 +FLAGS (\\Recent)": "\\Recent cannot be set, at position 19",
    b"a1 STORE 1 FLAGZ (\\Seen)": "expected FLAGS, +FLAGS or -FLAGS at position 11",
    b"a1 SEARCH FROB": "unknown search key FROB at position 10",
    b"a1 SEARCH SINCE 30-Feb-2024": "bad date at position 16",
    b"a1 SEARCH SINCE 1-Fob-2024": "bad month at position 16",
    b"a1 SEARCH RETURN (PARTIAL) ALL": "unknown SEARCH return option PARTIAL at position 18",
    b"a1 SEARCH OR SEEN": "expected a space at end of command",
    b"a1 SEARCH MODSEQ \"/x\" all 5": 'entry name must be "/flags/<flag>", at position 17',
    b"a1 SELECT INBOX (FOO)": "unknown SELECT parameter FOO at position 17",
    b"a1 SELECT x (QRESYNC (1 2 1:*))": "known UIDs cannot contain '*', at position 26",
    b"a1 SELECT &Jjo": "mailbox name is not valid modified UTF-7: unterminated '&' sequence",
    b"a1 SELECT &AGE-": "mailbox name is not valid modified UTF-7: printable US-ASCII must not be base64-encoded",
    b"a1 LIST (RECURSIVEMATCH) \"\" *": "RECURSIVEMATCH needs another selection option",
    b"a1 LIST \"\" * RETURN (FOO)": "unknown LIST return option FOO at position 21",
    b"a1 STATUS INBOX (MESSAGES FOO)": "unknown status item FOO at position 26",
    b"a1 APPEND INBOX \"x\"": "expected a date-time (\"dd-Mon-yyyy hh:mm:ss +zzzz\") at position 16",
    b"a1 APPEND INBOX (\\Seen)": "expected a space at end of command",
    b"a1 APPEND INBOX {3}\r\na\x00c": "NUL in a literal at position 16",
    b"a1 LOGIN ~{1}\r\na p": "literal8 not allowed here at position 9",
    b"a1 ID (\"name\")": "ID fields must come in pairs, at position 6",
    b"a1 AUTHENTICATE PLAIN ***": "expected base64 data or '=' at position 22",
    b"a1 AUTHENTICATE PLAIN AB=C": "bad base64 at position 22",
    b"a1 SEARCH " + b"(" * 40 + b"ALL" + b")" * 40: "nested deeper than 32 levels",
    b"a1 SEARCH " + b"NOT " * 40 + b"ALL": "nested deeper than 32 levels",
}


@pytest.mark.parametrize("raw", BAD, ids=[key.decode("latin-1")[:40] for key in BAD])
def test_bad_commands_name_the_reason_and_the_tag(raw: bytes) -> None:
    with pytest.raises(ParseError) as caught:
        parse(raw)
    assert caught.value.reason == BAD[raw]
    assert caught.value.tag == "a1"


def test_unknown_commands_have_their_own_type_and_bad_charsets_are_no() -> None:
    with pytest.raises(UnknownCommand):
        parse(b"a1 XYZZY")
    with pytest.raises(ParseError) as caught:
        parse(b"a1 SEARCH CHARSET X-NOPE ALL")
    assert (caught.value.status, caught.value.code) == ("NO", "BADCHARSET (US-ASCII UTF-8)")


def test_a_trailing_space_is_forgiven() -> None:
    assert parse(b"a1 LOGOUT ") == Command("a1", "LOGOUT")
