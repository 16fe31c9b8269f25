"""`tidings export EMAIL --to DIR` and `tidings import EMAIL --from DIR`: one mailbox moved as a
Maildir (tidings_cli/maildir.py) over the router's Mail API, so users can leave and arrive
(docs/architecture.md, "Export and import of a mailbox").

Export reads every folder's listing (ListFolders, ListMessages pages) and each message's bytes
(GetRawMessage), a bounded number at once. Import checks the whole export first, creates the
custom folders it lacks by name, then stores each message with Mail.ImportMessage under an entry
id derived from the export (maildir.import_entry_id), so a re-run stores nothing twice and a
failed message is simply tried again; nothing is sent, queued or copied to Sent.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc

from tidings.v1 import mail_pb2, mail_pb2_grpc, types_pb2
from tidings_cli import maildir, mbox
from tidings_cli.maildir import Flags, MaildirError

RPC_TIMEOUT = 60.0
PAGE = 200
JOBS = 8
RETRIES = 3
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
T = TypeVar("T")


class TransferError(Exception):
    """A refusal before anything is written (an unknown user, a bad export): exit 2."""


@dataclass
class Report:
    folders: int = 0
    messages: int = 0
    created: int = 0           # import: stored now
    present: int = 0           # import: stored by an earlier run
    failed: list[str] = field(default_factory=list)


def _retried(call: Callable[[], T]) -> T:
    for attempt in range(RETRIES):
        try:
            return call()
        except grpc.RpcError as exc:
            if exc.code() not in RETRYABLE or attempt == RETRIES - 1:
                raise
            time.sleep(0.2 * 2 ** attempt)
    raise AssertionError("unreachable")


def account_of(mail: mail_pb2_grpc.MailStub, email: str) -> types_pb2.Account:
    answer = _retried(lambda: mail.CheckRecipient(mail_pb2.CheckRecipientRequest(address=email), timeout=RPC_TIMEOUT))
    if answer.status != mail_pb2.CheckRecipientResponse.LOCAL_USER:
        status = mail_pb2.CheckRecipientResponse.Status.Name(answer.status).lower()
        raise TransferError(f"{email}: not a user of this cluster ({status}{': ' + answer.reason if answer.reason else ''})")
    return answer.account


def _messages(mail: mail_pb2_grpc.MailStub, user_id: str, folder_id: str) -> Iterator[types_pb2.MessageSummary]:
    cursor = ""
    while True:
        request = mail_pb2.ListMessagesRequest(user_id=user_id, folder_id=folder_id, limit=PAGE, cursor=cursor)
        page = _retried(lambda: mail.ListMessages(request, timeout=RPC_TIMEOUT))  # noqa: B023 (called at once)
        yield from page.messages
        if not page.next_cursor:
            return
        cursor = page.next_cursor


# -- export -------------------------------------------------------------------------------------
def _in_order(pool: ThreadPoolExecutor, call: Callable[[Any], T], items: list[Any], window: int) -> Iterator[T]:
    """call(item) for each item on the pool, the results in order, at most `window` in flight
    (so a slow writer never holds a whole mailbox's bytes in memory)."""
    pending: deque[Future[T]] = deque()
    for item in items:
        pending.append(pool.submit(call, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def export_mailbox(mail: mail_pb2_grpc.MailStub, email: str, root: Path, jobs: int = JOBS,
                   fmt: str = "maildir") -> Report:
    account = account_of(mail, email)
    maildir.prepare(root)
    listing = _retried(lambda: mail.ListFolders(mail_pb2.UserRef(user_id=account.user_id), timeout=RPC_TIMEOUT))
    report = Report()
    folders: list[dict[str, Any]] = []
    work: dict[str, tuple[str, types_pb2.MessageSummary]] = {}   # by id: a message moved meanwhile once
    for folder in listing.folders:
        role = folder.role if folder.role in maildir.SYSTEM_DIRS else ""
        place = maildir.folder_dir(folder.name, role) if fmt == "maildir" else mbox.folder_file(folder.name, role)
        folders.append({"dir" if fmt == "maildir" else "file": place, "id": folder.id, "name": folder.name,
                        "role": role, **({"messages": []} if fmt == "mbox" else {})})
        for summary in _messages(mail, account.user_id, folder.id):
            work.setdefault(summary.id, (place, summary))
        report.folders += 1

    def raw_of(summary: types_pb2.MessageSummary) -> bytes:
        ref = mail_pb2.MessageRef(user_id=account.user_id, id=summary.id)
        return bytes(_retried(lambda: mail.GetRawMessage(ref, timeout=RPC_TIMEOUT)).raw)

    def flags(summary: types_pb2.MessageSummary) -> Flags:
        """Its flags as exported: \\Deleted is not (it only marks a message for EXPUNGE)."""
        return Flags(unread=summary.unread, starred=summary.starred, answered=summary.answered,
                     draft=summary.draft, keywords=tuple(summary.keywords))

    items = list(work.values())
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        if fmt == "maildir":
            paths = {f["dir"]: maildir.make_folder(root, f["dir"]) for f in folders}
            letters = {}        # each folder's keyword letters (Dovecot's dovecot-keywords)
            for place, path in paths.items():
                names = maildir.keyword_letters(k for p, s in items if p == place for k in s.keywords)
                maildir.write_keywords(path, names)
                letters[place] = maildir.letter_map(names)

            def one(item: tuple[str, types_pb2.MessageSummary]) -> tuple[str, dict[str, Any]]:
                place, summary = item
                raw = raw_of(summary)
                name = maildir.write_message(paths[place], summary.received_ms, summary.id, flags(summary), raw,
                                             letters[place])
                facts: dict[str, Any] = {"id": summary.id, "received_ms": summary.received_ms, "size": len(raw)}
                more = [k for k in summary.keywords if k.lower() not in letters[place]]
                if more:                       # past the folder's 26 letters
                    facts["more_keywords"] = more
                return name.partition(":")[0], facts

            messages = dict(_in_order(pool, one, items, 4 * jobs))
            maildir.write_manifest(root, account.email, folders, messages)
            report.messages = len(messages)
        else:
            writers = {f["file"]: mbox.Writer.create(root, f["file"]) for f in folders}
            try:
                raws = _in_order(pool, lambda item: raw_of(item[1]), items, 4 * jobs)
                for (place, summary), raw in zip(items, raws, strict=True):
                    writers[place].append(summary.received_ms, summary.id, flags(summary), raw)
            finally:
                for writer in writers.values():
                    writer.close()
            for f in folders:
                f["messages"] = writers[f["file"]].messages
            mbox.write_manifest(root, account.email, folders)
            report.messages = len(items)
    return report


# -- import -------------------------------------------------------------------------------------
def _folder_ids(mail: mail_pb2_grpc.MailStub, user_id: str, folders: list[maildir.Folder]) -> dict[str, str]:
    """directory -> the target's folder id: a system folder by role, a custom one by name
    (ignoring case, as the router does), created when missing."""
    def custom() -> dict[str, str]:
        listing = _retried(lambda: mail.ListFolders(mail_pb2.UserRef(user_id=user_id), timeout=RPC_TIMEOUT))
        return {f.name.casefold(): f.id for f in listing.folders if not f.role}

    have = custom()
    ids: dict[str, str] = {}
    for folder in folders:
        if folder.role:
            ids[folder.directory] = folder.role
            continue
        if folder.name.casefold() not in have:
            try:
                made = mail.CreateFolder(mail_pb2.CreateFolderRequest(user_id=user_id, name=folder.name),
                                         timeout=RPC_TIMEOUT)
                have[folder.name.casefold()] = made.id
            except grpc.RpcError as exc:     # made meanwhile (or by an earlier try that timed out)
                if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                    raise
                have = custom()
                if folder.name.casefold() not in have:
                    raise TransferError(f"folder {folder.name!r}: {exc.details()}") from None
        ids[folder.directory] = have[folder.name.casefold()]
    return ids


def import_mailbox(mail: mail_pb2_grpc.MailStub, email: str, root: Path, jobs: int = JOBS) -> Report:
    # every name checked before anything is written
    folders = mbox.read_export(root) if mbox.is_mbox_export(root) else maildir.read_export(root)
    account = account_of(mail, email)
    ids = _folder_ids(mail, account.user_id, folders)
    report = Report(folders=len(folders))

    def one(entry: maildir.Entry) -> bool | str:
        try:
            raw = entry.read()
        except OSError as exc:
            return f"{entry.path}: {exc.strerror}"
        request = mail_pb2.ImportMessageRequest(
            email=account.email, entry_id=maildir.import_entry_id(entry, raw), raw=raw,
            folder_id=ids[entry.directory], unread=entry.flags.unread, starred=entry.flags.starred,
            answered=entry.flags.answered, draft=entry.flags.draft, keywords=entry.flags.keywords)
        try:
            return bool(_retried(lambda: mail.ImportMessage(request, timeout=RPC_TIMEOUT)).created)
        except grpc.RpcError as exc:
            return f"{entry.path}: {exc.code().name}: {exc.details()}"

    entries = [e for f in folders for e in f.entries]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for outcome in pool.map(one, entries):
            if isinstance(outcome, str):
                report.failed.append(outcome)
            elif outcome:
                report.created += 1
            else:
                report.present += 1
    report.messages = len(entries)
    return report


# -- the commands -------------------------------------------------------------------------------
def _mail(router: str) -> tuple[grpc.Channel, mail_pb2_grpc.MailStub]:
    channel = grpc.insecure_channel(router, options=[("grpc.max_receive_message_length", 64 << 20),
                                                     ("grpc.max_send_message_length", 64 << 20)])
    return channel, mail_pb2_grpc.MailStub(channel)


def cmd_export(args: argparse.Namespace) -> int:
    channel, mail = _mail(args.router)
    try:
        with channel:
            report = export_mailbox(mail, args.email, args.to, args.jobs, args.format)
    except (TransferError, MaildirError) as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    print(f"exported {report.messages} messages in {report.folders} folders of {args.email} to {args.to} ({args.format})")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    channel, mail = _mail(args.router)
    try:
        with channel:
            report = import_mailbox(mail, args.email, getattr(args, "from"), args.jobs)
    except (TransferError, MaildirError) as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    print(f"imported {report.created} messages into {args.email} ({report.present} already there, "
          f"{len(report.failed)} failed) from {report.folders} folders")
    for failure in report.failed[:20]:
        print(f"  failed: {failure}", file=sys.stderr)
    if len(report.failed) > 20:
        print(f"  ... and {len(report.failed) - 20} more", file=sys.stderr)
    return 1 if report.failed else 0


def add_parsers(sub: Any) -> None:
    export = sub.add_parser("export", help="write a user's mailbox (every folder, flags) to a new Maildir")
    export.add_argument("email")
    export.add_argument("--to", type=Path, required=True, metavar="DIR", help="a new (or empty) directory")
    export.add_argument("--format", choices=("maildir", "mbox"), default="maildir",
                        help="maildir (the default): a Maildir++ tree, bytes exact, flags in the file names; "
                             "mbox: an mboxrd file a folder, flags in tidings-export.json")
    export.add_argument("--jobs", type=int, default=JOBS, metavar="N", help=f"messages read at once (default {JOBS})")
    export.set_defaults(func=cmd_export)
    imported = sub.add_parser("import", help="store an export's messages into an existing user (sends nothing; "
                                             "a re-run adds nothing)")
    imported.add_argument("email")
    imported.add_argument("--from", type=Path, required=True, metavar="DIR",
                          help="an export (Maildir or mbox; tidings export's or another's)")
    imported.add_argument("--jobs", type=int, default=JOBS, metavar="N", help=f"messages stored at once (default {JOBS})")
    imported.set_defaults(func=cmd_import)
