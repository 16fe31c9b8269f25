"""tidings_runtime.addresses: what is a mailbox, its canonical form, the length limits."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings_runtime.addresses import (
    AddressError,
    canonical,
    parse_address,
    parse_domain,
    same_mailbox,
)


@pytest.mark.parametrize("text, sent, key", [
    ("alice@example.test", "alice@example.test", "alice@example.test"),
    ("Alice@Example.TEST", "Alice@example.test", "alice@example.test"),
    ("  alice@example.test ", "alice@example.test", "alice@example.test"),
    ('"alice"@example.test', "alice@example.test", "alice@example.test"),   # minimal quoting
    ('"John Doe"@example.test', '"John Doe"@example.test', '"john doe"@example.test'),
    ('"a\\"b"@example.test', '"a\\"b"@example.test', '"a\\"b"@example.test'),
    ('"a@b"@example.test', '"a@b"@example.test', '"a@b"@example.test'),
    ("user+tag@example.test", "user+tag@example.test", "user+tag@example.test"),
    ("a/b=c@example.test", "a/b=c@example.test", "a/b=c@example.test"),
    ("Δοκιμή@example.test", "Δοκιμή@example.test", "δοκιμή@example.test"),
    ("u@Bücher.Example", "u@xn--bcher-kva.example", "u@xn--bcher-kva.example"),
    ("u@XN--BCHER-KVA.example", "u@xn--bcher-kva.example", "u@xn--bcher-kva.example"),
    ("nobody@example.t", "nobody@example.t", "nobody@example.t"),
])
def test_accepts_and_canonicalises(text: str, sent: str, key: str) -> None:
    address = parse_address(text)
    assert (str(address), address.canonical, canonical(text)) == (sent, key, key)


def test_nfc_unifies_spellings() -> None:
    composed, decomposed = "jos\u00e9@example.test", "jose\u0301@example.test"
    assert canonical(composed) == canonical(decomposed) == composed
    assert parse_address(decomposed).smtputf8


@pytest.mark.parametrize("text", [
    "", "alice", "@example.test", "alice@", "a..b@example.test", ".a@example.test",
    "a b@example.test", "a\"b@example.test", "a@b@example.test", "Alice <alice@example.test>",
    "alice@[192.0.2.1]", "alice@[IPv6:::1]",                  # address literals: refused
    "alice@localhost", "alice@host", "alice@example.local", "alice@example.invalid",
    "alice@-bad.example", "alice@bad-.example", "alice@exa_mple.test", "alice@123.456",
    "alice@example.test.", "alice@example..test",
    "x" * 65 + "@example.test",                               # local part over 64 octets
    "é" * 33 + "@example.test",                               # 33 characters, 66 octets
    "a@" + "b" * 64 + ".test",                                # a label over 63
    "a" * 10 + "@" + ".".join(["b" * 60] * 4) + ".test",      # 259 octets in all
    '"\x07"@example.test', "a\udcff@example.test",            # control, undecodable byte
])
def test_refuses(text: str) -> None:
    with pytest.raises(AddressError) as refused:
        parse_address(text)
    assert refused.value.reason and refused.value.text == text
    assert repr(text) in str(refused.value)


def test_length_limits_are_octets() -> None:
    assert parse_address("x" * 64 + "@example.test")
    assert parse_address("é" * 32 + "@example.test")
    longest = "ab@" + ".".join(["b" * 62] * 3) + "." + "c" * 57 + ".test"
    assert len(longest) == 254 and str(parse_address(longest)) == longest
    with pytest.raises(AddressError):
        parse_address(longest[:2] + "b" + longest[2:])


def test_local_text_unquotes_for_header_builders() -> None:
    assert parse_address('"a\\"b c"@example.test').local_text == 'a"b c'
    assert parse_address("alice@example.test").local_text == "alice"


@pytest.mark.parametrize("text, name", [
    ("example.test", "example.test"), ("Example.TEST.", "example.test"),
    (" bücher.example ", "xn--bcher-kva.example"),
])
def test_domains(text: str, name: str) -> None:
    assert parse_domain(text) == name


@pytest.mark.parametrize("text", ["", ".", "localhost", "a@example.test", "[127.0.0.1]",
                                  "bad..domain", "-x.example", "x" * 64 + ".test"])
def test_bad_domains(text: str) -> None:
    with pytest.raises(AddressError, match="malformed domain"):
        parse_domain(text)


def test_same_mailbox() -> None:
    assert same_mailbox("Alice@Example.TEST", '"alice"@example.test')
    assert not same_mailbox("alice@example.test", "alicia@example.test")
    assert not same_mailbox("not an address", "not an address")


_ATEXT = st.text(st.sampled_from("abcXYZ019!#$%&'*+/=?^_`{|}~-é"), min_size=1, max_size=20)
_LABEL = st.text(st.sampled_from("abcxyz019"), min_size=1, max_size=10)


@given(st.lists(_ATEXT, min_size=1, max_size=3), st.lists(_LABEL, min_size=1, max_size=3))
def test_canonical_is_idempotent_and_case_blind(atoms: list[str], labels: list[str]) -> None:
    text = ".".join(atoms) + "@" + ".".join(labels) + ".test"
    key = canonical(text)
    assert canonical(key) == key
    assert canonical(text.upper()) == key
    assert canonical(f'"{text.rpartition("@")[0]}"@{text.rpartition("@")[2]}') == key


@given(st.text(max_size=40))
def test_never_raises_anything_but_address_error(text: str) -> None:
    try:
        address = parse_address(text)
    except AddressError:
        return
    assert canonical(str(address)) == address.canonical
