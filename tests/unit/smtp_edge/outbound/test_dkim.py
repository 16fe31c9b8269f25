"""DKIM: the router's PKCS#8 keys signed with, both algorithms, verified by dkimpy."""
from __future__ import annotations

import asyncio
import base64

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from smtp_edge.outbound.dkim import Key, KeyFormatError, Signer, dkimpy_key, from_domain, sign
from tests.mailnet import verify_signatures

RAW = (b"From: Alice <alice@example.test>\r\nTo: bob@far.example\r\nSubject: hello\r\n"
       b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <m1@example.test>\r\n\r\nHi Bob.\r\n")


def pkcs8(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def keys() -> tuple[list[Key], dict[bytes, bytes]]:
    """Both keys in dkimpy's form, and their DNS records by name."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    rsa_public = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
    ed_public = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    records = {b"rsa2026._domainkey.example.test.": b"v=DKIM1; k=rsa; p=" + base64.b64encode(rsa_public),
               b"ed2026._domainkey.example.test.": b"v=DKIM1; k=ed25519; p=" + base64.b64encode(ed_public)}
    return ([dkimpy_key("rsa2026", "rsa-sha256", pkcs8(rsa_key)),
             dkimpy_key("ed2026", "ed25519-sha256", pkcs8(ed_key))], records)


verify_all = verify_signatures


def test_both_signatures_verify(keys: tuple[list[Key], dict[bytes, bytes]]) -> None:
    signing, records = keys
    signed = sign(RAW, "example.test", signing)
    assert signed.endswith(RAW)
    assert b"a=rsa-sha256" in signed and b"a=ed25519-sha256" in signed
    assert verify_all(signed, records) == [True, True]
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: records.get(name))


def test_the_listed_headers_are_signed(keys: tuple[list[Key], dict[bytes, bytes]]) -> None:
    signed = sign(RAW, "example.test", keys[0][:1])
    header = signed.split(b"\r\nFrom:")[0].replace(b"\r\n", b"").replace(b" ", b"")
    assert b"h=from:to:cc:subject:date:message-id:mime-version:content-type:in-reply-to:references" in header


def test_a_changed_body_or_subject_fails(keys: tuple[list[Key], dict[bytes, bytes]]) -> None:
    signing, records = keys
    signed = sign(RAW, "example.test", signing)
    assert verify_all(signed.replace(b"Hi Bob.", b"Hi Eve."), records) == [False, False]
    assert verify_all(signed.replace(b"Subject: hello", b"Subject: hellO"), records) == [False, False]


def test_a_key_must_match_its_algorithm() -> None:
    ed_pem = pkcs8(ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(KeyFormatError):
        dkimpy_key("s", "rsa-sha256", ed_pem)
    with pytest.raises(KeyFormatError):
        dkimpy_key("s", "rsa-sha1", ed_pem)
    with pytest.raises(KeyFormatError):
        dkimpy_key("s", "ed25519-sha256", b"not a pem")


def test_from_domain() -> None:
    assert from_domain(RAW) == "example.test"
    assert from_domain(b"From: \"Bob, B.\" <bob@Far.Example>\r\n\r\nx") == "far.example"
    assert from_domain(b"To: x@y.example\r\n\r\nx") is None


def test_signer_caches_keys_per_domain_and_leaves_foreign_mail_unsigned(
        keys: tuple[list[Key], dict[bytes, bytes]]) -> None:
    calls: list[str] = []
    now = [0.0]

    async def source(domain: str) -> list[Key] | None:
        calls.append(domain)
        return keys[0] if domain == "example.test" else None

    signer = Signer(source, cache_s=60, clock=lambda: now[0])

    async def run() -> None:
        assert verify_all(await signer.sign(RAW), keys[1]) == [True, True]
        await signer.sign(RAW)
        foreign = RAW.replace(b"alice@example.test", b"alice@elsewhere.example")
        assert await signer.sign(foreign) == foreign
        await signer.sign(foreign)
        now[0] = 61
        await signer.sign(RAW)

    asyncio.run(run())
    assert calls == ["example.test", "elsewhere.example", "example.test"]


def test_a_message_dkimpy_cannot_sign_goes_unsigned(keys: tuple[list[Key], dict[bytes, bytes]]) -> None:
    async def source(domain: str) -> list[Key] | None:
        return [Key("broken", "rsa-sha256", b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")]

    assert asyncio.run(Signer(source).sign(RAW)) == RAW
