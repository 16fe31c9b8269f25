"""The RFC 3464 bounce, parsed back with the stdlib email package."""
from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage, Message

from smtp_edge.outbound.dsn import FailedRecipient, Report, bounce, bounce_entry_id, build
from tidings_runtime.ids import entry_id_ms, is_entry_id

ORIGINAL = (b"From: Alice <alice@example.test>\r\nTo: bob@far.example, carol@far.example\r\n"
            b"Subject: plans\r\nMessage-ID: <m1@example.test>\r\n\r\nsecret body text\r\n")
FAILED = (FailedRecipient("bob@far.example", "550 5.1.1 <bob@far.example>: no such user", "mx1.far.example",
                          1_700_000_100_000),
          FailedRecipient("carol@far.example", "4.4.7 delivery time expired after 5d; last reply: 451 4.7.1 later",
                          "", 1_700_000_200_000))
REPORT = Report("018bcfe6eea064e8417fcefef5d9f7c0", "alice@example.test", "out1.example.test",
                1_700_000_000_000, FAILED)


def parsed() -> EmailMessage:
    message = message_from_bytes(build(REPORT, ORIGINAL, 1_700_000_300_000), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_headers_of_the_report() -> None:
    message = parsed()
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert message["From"].addresses[0].addr_spec == "MAILER-DAEMON@example.test"
    assert message["From"].addresses[0].display_name == "Mail Delivery Subsystem"
    assert message["To"] == "alice@example.test"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Message-ID"].endswith("@example.test>")


def test_three_parts_human_status_headers() -> None:
    parts = list(parsed().iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    human = parts[0].get_content()
    assert "bob@far.example" in human and "no such user" in human and "expired" in human
    headers = parts[2].get_content()
    assert "Subject: plans" in headers and "Message-ID: <m1@example.test>" in headers
    assert "secret body text" not in headers


def test_delivery_status_fields_per_recipient() -> None:
    status = list(parsed().iter_parts())[1]
    blocks: list[Message] = status.get_payload()
    message_block, bob, carol = blocks
    assert message_block["Reporting-MTA"] == "dns; out1.example.test"
    assert message_block["Arrival-Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    assert bob["Final-Recipient"] == "rfc822; bob@far.example"
    assert bob["Action"] == "failed" and bob["Status"] == "5.1.1"
    assert bob["Remote-MTA"] == "dns; mx1.far.example"
    assert bob["Diagnostic-Code"] == "smtp; 550 5.1.1 <bob@far.example>: no such user"
    assert carol["Status"] == "4.4.7" and carol["Remote-MTA"] is None and carol["Diagnostic-Code"] is None


def test_lines_end_in_crlf() -> None:
    raw = build(REPORT, ORIGINAL, 1_700_000_300_000)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_the_entry_id_is_deterministic_and_dated_at_the_failure() -> None:
    first = bounce(REPORT, ORIGINAL, 1)
    again = bounce(REPORT, ORIGINAL, 2)
    assert first.entry_id == again.entry_id and is_entry_id(first.entry_id)
    assert entry_id_ms(first.entry_id) == 1_700_000_200_000
    assert first.sender == "alice@example.test"
    assert bounce_entry_id("another item", FAILED) != first.entry_id
    assert bounce_entry_id(REPORT.item_id, FAILED[:1]) != first.entry_id
