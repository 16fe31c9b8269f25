"""The operator's `tidings` commands as a process against the shared real grid: the DKIM
records to publish, and the outgoing queue (list, show, retry, delete)."""
from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from tests.cluster.grid import Grid
from tidings.v1 import mail_pb2, queue_pb2
from tidings_runtime.ids import new_entry_id

RAW = (b"From: {sender}\r\nTo: far@elsewhere.test\r\nSubject: queued\r\n"
       b"Message-ID: <{id}@example.test>\r\n\r\nout into the world\r\n")


def tidings(grid: Grid, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidings_cli", "--router", grid.router_address, *args],
                          check=False, capture_output=True, text=True, timeout=60)


def ok(grid: Grid, *args: str) -> str:
    done = tidings(grid, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def zone_records(text: str) -> dict[str, str]:
    """name -> the value its quoted strings join to, from `tidings domain dkim` output."""
    records = {}
    for match in re.finditer(r"^(\S+) IN TXT \((.*?)\)$", text, re.MULTILINE | re.DOTALL):
        records[match.group(1)] = "".join(re.findall(r'"([^"]*)"', match.group(2)))
    return records


def test_domain_dkim_prints_both_records_as_the_router_keeps_them(grid: Grid) -> None:
    records = zone_records(ok(grid, "domain", "dkim", "Example.TEST"))
    answer = grid.admin.DkimRecords(mail_pb2.AddDomainRequest(domain="example.test"), timeout=30)
    assert records == {f"{r.name}.": r.value for r in answer.records} and len(records) == 2
    rsa_name = next(name for name in records if name.startswith("rsa"))
    assert re.fullmatch(r"rsa\d{4}a\._domainkey\.example\.test\.", rsa_name)
    public = load_der_public_key(base64.b64decode(records[rsa_name].split("p=")[1]))
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048


def test_a_new_domain_has_its_keys_and_an_unhosted_one_none(grid: Grid) -> None:
    assert "added" in ok(grid, "domain", "add", "keys.test")
    assert len(zone_records(ok(grid, "domain", "dkim", "keys.test"))) == 2
    refused = tidings(grid, "domain", "dkim", "nowhere.test")
    assert refused.returncode == 1 and "NOT_FOUND" in refused.stderr and "PRIVATE" not in refused.stderr


@pytest.fixture
def queued(grid: Grid, new_user: Callable[[str], str]) -> tuple[str, str]:
    """A queue item (sender, id: that of the Sent copy) for a recipient outside our domains; the
    grid runs no worker."""
    sender = new_user("queuer")
    account = grid.mail.CheckRecipient(mail_pb2.CheckRecipientRequest(address=sender), timeout=10).account
    entry_id = new_entry_id()
    answer = grid.mail.Deliver(mail_pb2.DeliverRequest(
        entry_id=entry_id, raw=RAW.replace(b"{sender}", sender.encode()).replace(b"{id}", entry_id.encode()),
        recipients=["far@elsewhere.test"], sender_user_id=account.user_id, mail_from=sender), timeout=30)
    assert list(answer.queued) == ["far@elsewhere.test"]
    return sender, answer.sent_copy.id


def test_queue_list_show_retry_and_delete(grid: Grid, queued: tuple[str, str]) -> None:
    sender, item_id = queued
    listing = ok(grid, "queue", "list").splitlines()
    assert listing[0].startswith("-Queue ID-")
    row = next(i for i, line in enumerate(listing) if line.startswith(item_id))
    assert listing[row].split()[-1] == sender
    assert listing[row + 1].split()[:2] == ["queued", "far@elsewhere.test"]
    assert "attempts 0, next " in listing[row + 1]

    shown = ok(grid, "queue", "show", item_id)
    assert f"id:        {item_id}" in shown and "far@elsewhere.test" in shown

    assert ok(grid, "queue", "retry", item_id).splitlines() == ["1 item due now", f"  {item_id}"]
    assert tidings(grid, "queue", "retry").returncode == 2

    dropped = ok(grid, "queue", "delete", item_id)
    assert dropped.startswith(f"dropped {item_id}") and "failed    far@elsewhere.test" in dropped
    item = grid.queue.GetItem(queue_pb2.QueueItemRef(id=item_id), timeout=30)
    assert [r.state for r in item.recipients] == [3]  # FAILED: the worker owes the sender a bounce


def test_queue_show_of_an_unknown_item_is_an_error(grid: Grid) -> None:
    missing = tidings(grid, "queue", "show", new_entry_id())
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
