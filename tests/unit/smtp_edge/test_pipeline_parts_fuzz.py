"""Fuzzing the pure parts of the inbound pipeline (issue 17): the header reader and field remover
(tidings_runtime/headers.py), the DMARC record parser and alignment (dmarc.py), the DATA decoder
(smtp_edge/data_reader.py) against a reference model, and the small helpers that read what a client
sent (From domains, authserv-id, the Authentication-Results line). None may raise on any input.

Derandomized and database-less, so CI runs the same examples every time; the whole module takes a
few seconds. tests/smtp/test_pipeline_fuzz.py sends such messages to a real edge.
"""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from smtp_edge.data_reader import MAX_LINE, DataDecoder, DataProblem
from smtp_edge.pipeline import dmarc
from smtp_edge.pipeline.auth import authserv_id_of, claims, results_header
from smtp_edge.pipeline.dkim_check import DkimResult, _tags, _verify
from smtp_edge.pipeline.message import InboundMessage
from smtp_edge.pipeline.spf_check import SpfResult
from tidings_runtime.headers import read_header_section, remove_fields

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=300)

# -- header sections as bytes: field-ish lines, folds, odd bytes, mixed line endings -----------------

NAMES = [b"From", b"To", b"Subject", b"Date", b"Message-ID", b"DKIM-Signature", b"Authentication-Results",
         b"Received", b"X-Odd", b"from", b"FROM"]
name = st.one_of(st.sampled_from(NAMES), st.binary(min_size=1, max_size=12))
value = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b" "))
line_end = st.sampled_from([b"\r\n", b"\n", b"\r\n", b"\r\r\n"])
header_line = st.one_of(
    st.tuples(name, st.sampled_from([b":", b" :", b"\t:", b""]), value, line_end).map(b"".join),   # a field
    st.tuples(st.sampled_from([b" ", b"\t"]), value, line_end).map(b"".join),                      # a fold
    st.sampled_from([b"\0\r\n", b"\r\n", b"\n", b":\r\n", b" \r\n"]),
)
header_bytes = st.tuples(st.lists(header_line, max_size=25), st.binary(max_size=40)).map(
    lambda parts: b"".join(parts[0]) + parts[1])

_LINE_END = re.compile(rb"\r?\n")


@FUZZ
@given(raw=header_bytes)
def test_header_reader_never_raises_and_is_consistent(raw: bytes) -> None:
    section = read_header_section(raw)
    assert 0 <= section.size <= len(raw)
    assert section.has_nul == (b"\0" in raw[:section.size])
    for field_name, field_value in section.fields:
        assert field_name == field_name.lower() and field_name.isascii() and ":" not in field_name
        assert b"\n" not in field_value and b"\r\n" not in field_value    # unfolded
    # a reader of the prefix it consumed finds the same fields
    assert read_header_section(raw[:section.size]).fields == section.fields


@FUZZ
@given(raw=header_bytes, body=st.binary(max_size=40), dropped=st.sampled_from(["from", "subject", "x-odd",
                                                                                 "authentication-results"]))
def test_remove_fields_removes_exactly_the_named_fields(raw: bytes, body: bytes, dropped: str) -> None:
    message = raw + b"\r\n\r\n" + body
    assert remove_fields(message, lambda n, v: False) is message       # nothing dropped: the same bytes
    before = read_header_section(message)
    kept = remove_fields(message, lambda n, v: n == dropped)
    after = read_header_section(kept)
    assert [f for f in before.fields if f[0] != dropped] == list(after.fields)
    assert kept[after.size:] == message[before.size:]                 # the rest is untouched


@FUZZ
@given(value=st.binary(max_size=80), authserv=st.text(max_size=20))
def test_authserv_id_and_claims_never_raise(value: bytes, authserv: str) -> None:
    found = authserv_id_of(value)
    assert found == found.lower()
    assert claims(authserv)("authentication-results", value) == (found == authserv.lower())


@FUZZ
@given(domain=st.text(max_size=40), selector=st.text(max_size=20), b=st.text(max_size=20),
       spf=st.sampled_from(["pass", "fail", "none", "permerror"]), helo=st.booleans())
def test_results_header_is_one_ascii_field(domain: str, selector: str, b: str, spf: str, helo: bool) -> None:
    header = results_header(domain, SpfResult(spf, "helo" if helo else "mailfrom", domain),
                            [DkimResult("fail", domain, selector, b)],
                            [(domain, dmarc.Outcome("fail", "reject", "quarantine"))])
    section = read_header_section(header + b"\r\n")
    assert [name for name, _ in section.fields] == ["authentication-results"] and section.size == len(header)


# -- DMARC records (they come from DNS: anyone's text) ------------------------------------------

tag = st.one_of(
    st.sampled_from(["p", "sp", "pct", "adkim", "aspf", "rua", "ruf", "fo", "P", " p "]),
    st.text(max_size=6))
tag_value = st.one_of(
    st.sampled_from(["none", "quarantine", "reject", "REJECT", "s", "r", "100", "0", "50", "-1", "101", "²", "٣",
                     "1e3", "", " 20 ", "mailto:a@b.test"]),
    st.text(max_size=10))
record_text = st.tuples(st.sampled_from(["v=DMARC1", "v = DMARC1", "V=DMARC1", "v=DMARC1 ", "v=dmarc1", ""]),
                        st.lists(st.tuples(tag, st.sampled_from(["=", "", "=="]), tag_value), max_size=8),
                        st.sampled_from(["", ";", "; ", ";;"])).map(
    lambda t: t[0] + "".join(f"; {a}{eq}{v}" for a, eq, v in t[1]) + t[2])


@FUZZ
@given(text=st.one_of(record_text, st.text(max_size=80)))
def test_dmarc_record_parser_never_raises(text: str) -> None:
    record = dmarc.parse_record(text)
    if record is not None:
        assert record.policy in dmarc.POLICIES
        assert record.subdomain_policy in (None, *dmarc.POLICIES)
        assert 0 <= record.pct <= 100 and record.adkim in "rs" and record.aspf in "rs"
    assert dmarc.select_record([text, "unrelated"]) == record or record is None


def test_non_ascii_digits_in_pct_are_the_default_not_a_crash() -> None:
    """Found by the fuzzer: ``str.isdigit`` is true for "²" and "٣", which ``int`` refuses; a record
    with ``pct=²`` raised ValueError in sender authentication (the edge's 451 "local error")."""
    assert dmarc.parse_record("v=DMARC1; p=reject; pct=²") == dmarc.DmarcRecord("reject", None, 100)
    assert dmarc.parse_record("v=DMARC1; p=reject; pct=٣") == dmarc.DmarcRecord("reject", None, 100)
    assert dmarc.parse_record("v=DMARC1; p=quarantine; pct=20") == dmarc.DmarcRecord("quarantine", None, 20)


domain_text = st.one_of(
    st.text(alphabet="abc.-_xn0é", max_size=30),
    st.text(max_size=30),
    st.sampled_from(["", ".", "..", "co.uk", "a.co.uk", "example.test.", "EXAMPLE.TEST", "xn--", "-a-.test"]))


@FUZZ
@given(identifier=domain_text, from_domain=domain_text, mode=st.sampled_from(["r", "s", "x"]),
       sample=st.floats(0, 1, exclude_max=True), pct=st.integers(0, 100))
def test_alignment_and_evaluation_never_raise(identifier: str, from_domain: str, mode: str, sample: float,
                                              pct: int) -> None:
    organizational = dmarc.organizational_domain(from_domain)
    assert isinstance(organizational, str)
    aligned = dmarc.aligned(identifier, from_domain, mode)
    if aligned and mode == "s":
        assert identifier.lower().rstrip(".") == from_domain.lower().rstrip(".")
    record = dmarc.DmarcRecord("reject", "quarantine", pct)
    outcome = dmarc.evaluate(from_domain, None, record, spf_domain=identifier, dkim_domains=[identifier],
                             sample=sample)
    assert outcome.result in ("pass", "fail", "none") and outcome.disposition in dmarc.POLICIES


# -- From domains of whatever a From field holds ---------------------------------------------------

from_value = st.one_of(
    st.binary(max_size=60),
    st.tuples(st.sampled_from([b"", b"\"Q\" ", b"=?utf-8?b?w6k=?= ", b"=?x?q?=ZZ?= ", b"(c) ", b"\xff\xfe "]),
              st.sampled_from([b"<a@b.test>", b"a@b.test", b"<@>", b"<a@[1.2.3.4]>", b"a@", b"@b", b"<>",
                               b"g: a@b.test, c@d.test;", b"a@b.test, a@B.TEST", b"\"x@y\"@z.test", b"<a@\xc3\xa9.test>"]),
              st.binary(max_size=10)).map(b"".join))


@FUZZ
@given(value=from_value, mail_from=st.sampled_from(["<>", "", "a@b.test", "x@", "@", "a@[1.2.3.4]"]))
def test_from_domains_never_raise(value: bytes, mail_from: str) -> None:
    message = InboundMessage(raw=b"From: " + value.replace(b"\n", b" ") + b"\r\n\r\nbody\r\n", mail_from=mail_from,
                             recipients=("alice@example.test",), max_size=1 << 20)
    domains = message.from_domains
    assert len(set(domains)) == len(domains) and all(d == d.lower() for d in domains)
    assert isinstance(message.mail_from_domain, str)
    assert message.screening().sender_domain == (domains[0] if domains else "")


# -- the DATA decoder against a reference model ----------------------------------------------------

def reference(wire: bytes, size_limit: int | None) -> tuple[bool, DataProblem | None, bytes]:
    """RFC 5321 DATA as docs/architecture.md states it: (ended, problem, content)."""
    content = bytearray()
    problem: DataProblem | None = None
    after_crlf, size = True, 0
    for raw in re.findall(rb"[^\n]*\n", wire):
        text = raw[:-1]
        crlf = text.endswith(b"\r")
        line = text[:-1] if crlf else text
        if crlf and after_crlf and line == b".":
            return True, problem, bytes(content) if problem is None else b""
        after_crlf = crlf
        if line[:1] == b"." and len(line) > 1:
            line = line[1:]
        if len(line) > MAX_LINE and problem is None:
            problem = DataProblem.LINE_TOO_LONG
        size += len(line) + 2
        if size_limit and size > size_limit and problem is None:
            problem = DataProblem.TOO_MUCH_DATA
        content += line + b"\r\n"
    return False, problem, b""


wire_line = st.one_of(
    st.tuples(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), line_end).map(b"".join),
    st.sampled_from([b".\r\n", b".\n", b"..\r\n", b".x\r\n", b"\r\n", b"\n", b"\r", b".\r\r\n"]),
    st.tuples(st.sampled_from([b"", b"."]), st.integers(MAX_LINE - 2, MAX_LINE + 3),
              st.sampled_from([b"\r\n", b"\n"])).map(lambda t: t[0] + b"y" * t[1] + t[2]),
)


@FUZZ
@given(lines=st.lists(wire_line, max_size=30), end=st.booleans(), cuts=st.lists(st.integers(1, 1200), max_size=40),
       size_limit=st.one_of(st.none(), st.integers(1, 3000)))
def test_data_decoder_matches_the_reference(lines: list[bytes], end: bool, cuts: list[int],
                                            size_limit: int | None) -> None:
    wire = b"".join(lines) + (b"\r\n.\r\n" if end else b"")
    decoder = DataDecoder(size_limit)
    ended, taken = False, 0
    cut_sizes = iter(cuts)
    for line in re.findall(rb"[^\n]*\n|[^\n]+$", wire):       # whole lines, each in arbitrary pieces
        start = 0
        while start < len(line):
            step = next(cut_sizes, len(line))
            piece = line[start:start + step]
            start += len(piece)
            taken += len(piece)
            if decoder.feed(piece):
                ended = True
                break
        if ended:
            break
    want_ended, want_problem, want_content = reference(wire, size_limit)
    assert ended == want_ended
    if ended:
        assert decoder.problem == want_problem
        if want_problem is None:
            assert decoder.content == want_content
            assert decoder.size == len(want_content)


def test_a_header_dkimpy_cannot_read_is_a_permerror_not_a_crash() -> None:
    """Found by tests/smtp/test_pipeline_fuzz.py: ``dkim.DKIM(raw)`` raised MessageFormatError on a header
    line such as ``\\0: `` (past the end of the section as our reader sees it), outside verify's try."""
    value = b"v=1; a=rsa-sha256; d=pass.test; s=sel; h=from; bh=x; b=y"
    raw = b"DKIM-Signature: " + value + b"\r\nFrom: <a@pass.test>\r\n\x00: \r\n\r\nhi\r\n"
    assert _verify(raw, [_tags(value)], {}) == [DkimResult("permerror", "pass.test", "sel", "y")]
