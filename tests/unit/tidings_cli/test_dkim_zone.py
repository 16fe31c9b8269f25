"""The DKIM records as zone-file text: strings of at most 255 characters that join back to
the record, the tags apart from the key, quotes escaped, the name absolute."""
from __future__ import annotations

import re

from tidings_cli.dkim import txt_strings, zone_record

RSA_VALUE = "v=DKIM1; k=rsa; p=" + "M" * 392   # a 2048-bit key's base64 SubjectPublicKeyInfo
ED_VALUE = "v=DKIM1; k=ed25519; p=" + "A" * 44


def strings_of(record: str) -> list[str]:
    return [s.replace('\\"', '"').replace("\\\\", "\\") for s in re.findall(r'"((?:[^"\\]|\\.)*)"', record)]


def test_a_long_key_is_cut_into_strings_of_at_most_255_that_join_back() -> None:
    strings = txt_strings(RSA_VALUE)
    assert strings[0] == "v=DKIM1; k=rsa; "
    assert strings[1].startswith("p=") and len(strings) == 3
    assert all(len(s) <= 255 for s in strings) and "".join(strings) == RSA_VALUE


def test_a_short_record_keeps_its_tags_and_key_apart() -> None:
    assert txt_strings(ED_VALUE) == ["v=DKIM1; k=ed25519; ", "p=" + "A" * 44]
    assert txt_strings("x" * 300) == ["x" * 255, "x" * 45]


def test_the_zone_record_is_absolute_and_parenthesised() -> None:
    record = zone_record("rsa2026a._domainkey.example.test", RSA_VALUE)
    assert record.startswith('rsa2026a._domainkey.example.test. IN TXT ( "v=DKIM1; k=rsa; "\n')
    assert record.endswith('" )') and record.count("\n") == 2
    assert "".join(strings_of(record)) == RSA_VALUE
    assert zone_record("ed2026a._domainkey.example.test.", ED_VALUE).startswith("ed2026a._domainkey.example.test. IN")


def test_quotes_and_backslashes_are_escaped() -> None:
    record = zone_record("x.example.test", 'a"b\\c')
    assert record == 'x.example.test. IN TXT ( "a\\"b\\\\c" )'
    assert strings_of(record) == ['a"b\\c']
