"""TLS server contexts for the edges (SMTP submission's STARTTLS, IMAP's STARTTLS and port
2993, POP3's STLS): a given certificate and key, or a development certificate made on first start.

The development certificate (self-signed, for the host name, ``localhost`` and 127.0.0.1) and its
key live in ``<data-dir>/tls/`` and are reused on later starts; a test trusts it by that file.
Production gives a real certificate and key instead (``server_context(..., cert=, key=)``).
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_DAYS = 825


def ensure_dev_certificate(data_dir: Path, hostname: str) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` under ``data_dir/tls``, generated if missing."""
    directory = data_dir / "tls"
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tidings development")])
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    _write_atomically(key_path, key_bytes, mode=0o600)
    _write_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return cert_path, key_path


def server_context(data_dir: Path, hostname: str, *, cert: Path | None = None,
                   key: Path | None = None) -> ssl.SSLContext:
    """A server context (TLS 1.2 or later) on ``cert`` and ``key`` when given (the key may be in
    the certificate's file), else on the development certificate under ``data_dir/tls``."""
    if cert is not None:
        cert_path, key_path = cert, key
    else:
        cert_path, key_path = ensure_dev_certificate(data_dir, hostname)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
