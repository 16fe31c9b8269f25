"""FETCH of ENVELOPE and header fields on a grid, each way it is answered: from the header fields
kept beside the summary, from the body for a record stored before they were kept (made here: each
storage node stopped in turn and the record rewritten without them, as the older code wrote it),
and from the body for a header they cannot stand for; every answer what the stored bytes give. SEARCH
HEADER and SENT* read the same ways."""
from __future__ import annotations

import imaplib
import re
from dataclasses import replace
from pathlib import Path

import pytest

from imap_edge import message as mime
from imap_edge.protocol.fetch import Section
from imap_edge.responses import Encoder
from storage_node import codec, keys
from storage_node.server import open_engine
from storage_node.settings import Settings
from tests.cluster.grid import PASSWORD, Grid, running
from tidings.v1 import mail_pb2
from tidings_client import new_entry_id

pytestmark = pytest.mark.timeout(180)
EMAIL = "paths@example.test"
FIELDS = ("SUBJECT", "FROM", "DATE", "TO")
RAWS = {
    "kept": b"From: Ann Example <ann@example.org>\r\nTo: paths@example.test,\r\n\tcc@example.org\r\n"
            b"Subject: the kept fields\r\nDate: Mon, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <k@example.org>\r\n"
            b"X-Other: not kept\r\n\r\nbody one\r\n",
    "old": b"Received: by example.org; Mon, 1 Dec 2026 10:01:00 +0000\r\nFrom: \"Bob, B.\" <bob@example.org>\r\n"
           b"To: paths@example.test\r\nSubject: an old record\r\nDate: Mon, 1 Dec 2026 10:01:00 +0000\r\n"
           b"In-Reply-To: <k@example.org>\r\nMessage-ID: <o@example.org>\r\n\r\nbody two\r\n",
    "odd": b"From: Cy <cy@example.org>\r\nSubject : a spaced colon\r\nTo: paths@example.test\r\n\r\nbody three\r\n",
}


def forget_kept_fields(grid: Grid, index: int, user_id: str, message_id: str) -> None:
    """On stopped node ``index``: the record (and its listing copies) as written before the kept
    header fields existed."""
    base = grid.layout.base_dir
    engine = open_engine(base / f"node{index}", base / "blobs", Settings())
    try:
        record = engine.record(user_id, message_id)
        assert record is not None and record.headers is not None
        value = codec.encode_record(replace(record, headers=None))
        assert b'"h":' not in value
        txn = engine.new_txn()
        txn.put(keys.CF_MESSAGES, keys.message(user_id, message_id), value)
        listing = keys.listing(user_id, record.folder_no, record.received_ms, record.id)
        txn.put(keys.CF_BY_FOLDER, listing, value)
        if record.unread:
            txn.put(keys.CF_UNREAD, listing, value)
        engine.commit(txn)
    finally:
        engine.close()


def expected(raw: bytes) -> tuple[bytes, bytes]:
    """ENVELOPE and BODY[HEADER.FIELDS (FIELDS)] as the whole message gives them."""
    root = mime.parse(raw)
    return (Encoder().envelope(mime.envelope(root.headers)),
            mime.section(root, raw, Section((), "HEADER.FIELDS", FIELDS)))


def test_envelope_and_header_fields_from_kept_fields_an_old_record_and_an_odd_header(tmp_path: Path) -> None:
    with running(tmp_path, edges=("imap",), virus_scan=False) as grid:
        user_id = grid.add_user(EMAIL).user_id
        ids = {}
        for name, raw in RAWS.items():
            answer = grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=[EMAIL]),
                                       timeout=30)
            ids[name] = answer.deliveries[0].id
        for index in (1, 2, 3):      # one node at a time: the others keep the quorum
            grid.kill_storage(index)
            forget_kept_fields(grid, index, user_id, ids["old"])
            grid.start_storage(index)
        request = mail_pb2.GetMessagesRequest(user_id=user_id, ids=list(ids.values()), headers=True)
        held = {m.summary.id: m.summary.HasField("headers") for m in grid.mail.GetMessages(request, timeout=30).messages}
        assert held == {ids["kept"]: True, ids["old"]: False, ids["odd"]: False}
        stored = {name: grid.mail.GetRawMessage(mail_pb2.MessageRef(user_id=user_id, id=i), timeout=30).raw
                  for name, i in ids.items()}

        imap = imaplib.IMAP4(grid.host, grid.imap_port, timeout=30)
        imap.login(EMAIL, PASSWORD)
        imap.select("INBOX", readonly=True)
        status, data = imap.uid("FETCH", "1:*", f"(ENVELOPE BODY.PEEK[HEADER.FIELDS ({' '.join(FIELDS)})])")
        assert status == "OK"
        answers = [part for part in data if isinstance(part, tuple)]
        assert len(answers) == 3
        for name, raw in stored.items():
            envelope, fields = expected(raw)
            [(line, literal)] = [a for a in answers if a[1] == fields]      # each message's own header fields
            assert envelope in line, (name, line)
        status, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] FLAGS)")
        assert status == "OK" and len([p for p in data if isinstance(p, tuple)]) == 3
        assert re.search(rb"Subject: an old record", b"".join(p[1] for p in data if isinstance(p, tuple)))
        # SEARCH HEADER and SENT*: kept fields from the listing, the old record and other fields from bodies
        for criteria, found in ((("HEADER", "Subject", '"kept fields"'), b"1"), (("HEADER", "Subject", "old"), b"2"),
                                (("HEADER", "X-Other", '"not kept"'), b"1"), (("HEADER", "Received", "example.org"), b"2"),
                                (("SENTON", "1-Dec-2026"), b"1 2"), (("SENTSINCE", "2-Dec-2026"), b"")):
            assert imap.search(None, *criteria) == ("OK", [found]), criteria
        imap.logout()
