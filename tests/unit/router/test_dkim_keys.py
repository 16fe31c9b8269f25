"""DKIM keys of hosted domains: made once per domain (lazily for one hosted before), stored in
the directory, refused for a domain we do not host, and good enough for dkimpy to sign and
verify a message against the published record."""
from __future__ import annotations

import asyncio
import base64
import re

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from router.dkim_keys import ED25519_SHA256, RSA_SHA256, DkimKeys, SigningKey
from router.errors import NotFound

MESSAGE = (b"From: Alice <alice@example.test>\r\nTo: bob@elsewhere.test\r\nSubject: Hello\r\n"
           b"Date: Thu, 01 Jan 2026 12:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nHi Bob\r\n")


class FakeDirectory:
    """The directory's entries in memory, with the calls counted."""

    def __init__(self, hosted: set[str]) -> None:
        self.hosted = hosted
        self.entries: dict[str, bytes] = {}
        self.puts = 0

    async def get(self, key: str) -> bytes | None:
        return self.entries.get(key)

    async def put(self, key: str, value: bytes) -> None:
        self.puts += 1
        self.entries[key] = value

    async def is_hosted(self, domain: str) -> bool:
        return domain in self.hosted


@pytest.fixture(scope="module")
def keys() -> list[SigningKey]:
    """One domain's keys, made once for the module (RSA generation takes a moment)."""
    return asyncio.run(DkimKeys(FakeDirectory({"example.test"})).signing_keys("example.test"))


def test_a_hosted_domain_without_keys_gets_an_rsa_and_an_ed25519_key(keys: list[SigningKey]) -> None:
    assert [k.algorithm for k in keys] == [RSA_SHA256, ED25519_SHA256]
    rsa_key, ed_key = keys
    assert re.fullmatch(r"rsa\d{4}a", rsa_key.selector) and re.fullmatch(r"ed\d{4}a", ed_key.selector)
    assert rsa_key.record_name == f"{rsa_key.selector}._domainkey.example.test"
    assert rsa_key.record_value.startswith("v=DKIM1; k=rsa; p=")
    assert ed_key.record_value.startswith("v=DKIM1; k=ed25519; p=")
    assert all(k.private_pem.startswith(b"-----BEGIN PRIVATE KEY-----") for k in keys)  # PKCS#8


def test_the_ed25519_record_is_the_raw_public_key(keys: list[SigningKey]) -> None:
    ed_key = keys[1]
    private = serialization.load_pem_private_key(ed_key.private_pem, password=None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert ed_key.record_value.endswith("p=" + base64.b64encode(raw).decode()) and len(raw) == 32


def test_the_keys_are_made_once_and_kept() -> None:
    directory = FakeDirectory({"example.test"})
    dkim_keys = DkimKeys(directory)

    async def twice() -> tuple[list[SigningKey], list[SigningKey], list[SigningKey]]:
        first, second = await asyncio.gather(dkim_keys.create("example.test"), dkim_keys.signing_keys("Example.TEST."))
        return first, second, await DkimKeys(directory).signing_keys("example.test")

    first, second, later = asyncio.run(twice())
    assert first == second == later and directory.puts == 1
    assert list(directory.entries) == ["dkim:example.test"]


def test_a_domain_we_do_not_host_has_no_keys() -> None:
    directory = FakeDirectory({"example.test"})
    with pytest.raises(NotFound, match="elsewhere.test is not hosted"):
        asyncio.run(DkimKeys(directory).signing_keys("elsewhere.test"))
    assert directory.entries == {}


def test_records_carry_no_private_key_and_nothing_prints_one(keys: list[SigningKey]) -> None:
    directory = FakeDirectory({"example.test"})
    records = asyncio.run(DkimKeys(directory).records("example.test"))
    assert [r.private_pem for r in records] == [b"", b""]
    assert all("PRIVATE" not in repr(k) and k.private_pem.decode() not in repr(k) for k in keys)


@pytest.mark.parametrize("index", [0, 1], ids=["rsa-sha256", "ed25519-sha256"])
def test_dkimpy_verifies_a_message_signed_with_each_key(keys: list[SigningKey], index: int) -> None:
    key = keys[index]
    if key.algorithm == ED25519_SHA256:  # dkimpy takes an Ed25519 key as its base64 raw seed
        private = serialization.load_pem_private_key(key.private_pem, password=None)
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
        private_key = base64.b64encode(seed)
    else:
        private_key = key.private_pem
    signature = dkim.sign(MESSAGE, key.selector.encode(), b"example.test", private_key,
                          signature_algorithm=key.algorithm.encode(), include_headers=[b"from", b"to", b"subject"])
    signed = signature + MESSAGE

    def dns(name: bytes, timeout: int = 5) -> bytes:
        return key.record_value.encode() if name == f"{key.record_name}.".encode() else b""

    assert dkim.verify(signed, dnsfunc=dns)
    assert not dkim.verify(signed.replace(b"Hi Bob", b"Hi Eve"), dnsfunc=dns)
