"""Virus scanning and GTUBE at DATA, with Debian's real clamd and the test signatures of
deploy/clamav/db/ (EICAR).

Against the shared grid (its launcher starts clamd before the SMTP edge): EICAR in the
body, as an attachment and zipped in an attachment is refused ``554 5.7.1`` naming the
signature, on port 2525 and on submission; GTUBE is ``550 5.7.1``; ordinary mail reaches
the Inbox. Against an edge of our own over the router double, with a clamd of our own
(the launcher's ClamdProcess): clamd stopped is ``451 4.7.0`` and clamd started again
scans again; ``TIDINGS_VIRUS_SCAN=off`` delivers EICAR and says so in a WARNING line.
"""
from __future__ import annotations

import io
import itertools
import json
import os
import smtplib
import ssl
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from smtp_edge.pipeline.content import GTUBE
from tests.cluster.grid import PASSWORD, Grid
from tests.fake_mail import FakeMail
from tests.smtp.conftest import EdgeFactory
from tidings.v1 import mail_pb2
from tidings_cli.cluster import ClamdProcess, Layout
from tidings_runtime.ready import read_ready

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def message(to: str, subject: str, *, sender: str = "carol@example.org", body: str = "hello",
            attachment: tuple[bytes, str, str] | None = None) -> bytes:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, to, subject
    mail.set_content(body)
    if attachment is not None:
        data, filename, content_type = attachment
        maintype, subtype = content_type.split("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mail.as_bytes()


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def send(port: int, to: str, raw: bytes, sender: str = "carol@example.org") -> tuple[int, bytes]:
    """DATA's reply (code, text) on port 2525 (or an edge's MX port)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("client.example.org")
        client.mail(sender)
        assert client.rcpt(to)[0] == 250
        return client.data(raw)


_users = itertools.count(1)


def new_account(grid: Grid, prefix: str) -> tuple[str, str]:
    """A new user of the shared grid: (email, user id)."""
    email = f"{prefix}-scan{next(_users)}@example.test"
    return email, grid.add_user(email).user_id


def inbox_subjects(grid: Grid, user_id: str) -> list[str]:
    page = grid.mail.ListMessages(mail_pb2.ListMessagesRequest(user_id=user_id, folder_id="inbox"), timeout=10)
    return [summary.subject for summary in page.messages]


# -- the shared grid: the launcher's clamd --------------------------------------------------


@pytest.mark.parametrize("attachment", [
    None,                                                     # EICAR as the body text
    (EICAR, "eicar.com", "application/octet-stream"),         # base64 attachment
    (zipped("eicar.com", EICAR), "eicar.zip", "application/zip"),  # clamd unpacks the zip
], ids=["body", "attachment", "zipped"])
def test_eicar_is_refused_at_data_naming_the_signature(grid: Grid, attachment: tuple[bytes, str, str] | None) -> None:
    alice, alice_id = new_account(grid, "virus")
    raw = message(alice, "infected", body=EICAR.decode() if attachment is None else "see attached",
                  attachment=attachment)
    code, text = send(grid.smtp_port, alice, raw)
    assert (code, text.split(b" ")[0]) == (554, b"5.7.1"), text
    assert b"Eicar-Test-Signature" in text
    assert inbox_subjects(grid, alice_id) == []


def test_gtube_is_refused_as_spam(grid: Grid) -> None:
    alice, alice_id = new_account(grid, "gtube")
    code, text = send(grid.smtp_port, alice, message(alice, "spam", body=f"buy now\n{GTUBE.decode()}\n"))
    assert (code, text.split(b" ")[0]) == (550, b"5.7.1"), text
    assert b"GTUBE" in text
    assert inbox_subjects(grid, alice_id) == []


def test_ordinary_mail_is_scanned_and_delivered_to_the_inbox(grid: Grid) -> None:
    alice, alice_id = new_account(grid, "clean")
    raw = message(alice, "clean zip", attachment=(zipped("notes.txt", b"nothing to see"), "notes.zip",
                                                  "application/zip"))
    code, text = send(grid.smtp_port, alice, raw)
    assert code == 250, text
    assert inbox_subjects(grid, alice_id) == ["clean zip"]


def test_submission_is_scanned_too(grid: Grid) -> None:
    (alice, _), (bob, bob_id) = new_account(grid, "author"), new_account(grid, "reader")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", grid.submission_port, timeout=30) as client:
        client.starttls(context=context)
        client.login(alice, PASSWORD)
        client.mail(alice)
        assert client.rcpt(bob)[0] == 250
        code, text = client.data(message(bob, "from alice", sender=alice,
                                         attachment=(EICAR, "eicar.com", "application/octet-stream")))
        assert (code, text.split(b" ")[0]) == (554, b"5.7.1") and b"Eicar-Test-Signature" in text, text
        client.mail(alice)
        assert client.rcpt(bob)[0] == 250
        assert client.data(message(bob, "clean from alice", sender=alice))[0] == 250
    assert inbox_subjects(grid, bob_id) == ["clean from alice"]


# -- an edge of our own over the router double, with a clamd of our own ----------------------


@pytest.fixture
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdProcess]:
    base = tmp_path_factory.mktemp("clamd")
    process = ClamdProcess(Layout(base_dir=base))
    started = time.monotonic()
    process.start()
    try:
        process.wait_ready(30)
        print(f"clamd ready in {time.monotonic() - started:.2f}s")
        yield process
    finally:
        process.stop()


def test_clamd_down_is_451_and_scanning_resumes_when_it_is_back(clamd: ClamdProcess, start_edge: EdgeFactory,
                                                                fake_router: FakeMail) -> None:
    edge = start_edge(virus_scan=True, clamd=clamd.address, clamd_timeout=5.0)
    raw = message("alice@example.test", "while clamd is down")
    assert send(edge.mx_port, "alice@example.test", raw)[0] == 250
    clamd.stop()
    code, text = send(edge.mx_port, "alice@example.test", raw)
    assert (code, text.split(b" ")[0]) == (451, b"4.7.0"), text
    clamd.start()
    clamd.wait_ready(30)
    code, text = send(edge.mx_port, "alice@example.test", message("alice@example.test", "v", body=EICAR.decode()))
    assert code == 554 and b"Eicar-Test-Signature" in text, text
    assert len(fake_router.delivered) == 1


def test_virus_scan_off_delivers_and_warns(fake_router: FakeMail, tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    env = {**os.environ, "TIDINGS_VIRUS_SCAN": "off", "TIDINGS_CLAMD": f"unix:{tmp_path}/no-clamd.sock"}
    process = subprocess.Popen(
        [sys.executable, "-m", "smtp_edge", "--router", fake_router.address, "--port", "0",
         "--submission-port", "0", "--no-metrics", "--data-dir", str(tmp_path / "smtp"), "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    try:
        deadline = time.monotonic() + 30
        while (ports := read_ready(ready)) is None:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        code, _ = send(ports["smtp"], "alice@example.test", message("alice@example.test", "v", body=EICAR.decode()))
        assert code == 250
        assert len(fake_router.delivered) == 1
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]   # tidings_runtime/logs.py
    assert ("warning", "smtp_edge.server", "TIDINGS_VIRUS_SCAN=off: messages are NOT scanned for viruses") in [
        (line["level"], line["logger"], line["msg"]) for line in lines]
