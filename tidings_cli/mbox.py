"""`tidings export --format mbox`: one mboxrd file per folder, and the same manifest as the
Maildir's (tidings_cli/maildir.py) for what mbox cannot say without changing the bytes.

- A folder is `NAME.mbox` at the root, NAME as a Maildir++ directory without its dot
  (`Inbox.mbox`, `Sent.mbox`, `Projects.A.mbox` for "Projects/A").
- Each message: a `From MAILER-DAEMON <asctime of its received time>` line, its bytes with every
  line matching `>*From ` quoted by one more `>` (mboxrd: unquoting gives the bytes back, which
  mboxo's plain `>From ` cannot), a line break if the bytes did not end with one, a blank line.
- Flags stay out of the bytes (no Status:/X-Status: fields): `tidings-export.json` lists, per file,
  each message's offset and length in the file, its source id, received ms, size and flags. Read
  with it, an import gets the bytes back exactly; an mbox without it (another program's) is split
  at its From_ lines, the separator's line break dropped, flags from its Status/X-Status fields
  and keywords from X-Keywords, as Dovecot writes them (Status R read; X-Status A answered,
  F flagged, T draft; X-Keywords space-separated).
"""
from __future__ import annotations

import calendar
import functools
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from tidings_cli import maildir
from tidings_cli.maildir import Entry, Flags, Folder, MaildirError

FORMAT = "tidings-mbox"
SUFFIX = ".mbox"
_QUOTED = re.compile(rb"^(>*From )", re.MULTILINE)
_UNQUOTE = re.compile(rb"^>(>*From )", re.MULTILINE)
_SEPARATOR = re.compile(rb"^From [^\n]*\n", re.MULTILINE)


def folder_file(name: str, role: str = "") -> str:
    directory = maildir.folder_dir(name, role)
    return (directory[1:] if directory else "Inbox") + SUFFIX


def file_folder(file: str) -> tuple[str, str]:
    """(role, name) of an mbox file's name without a manifest."""
    stem = file[: -len(SUFFIX)]
    return ("inbox", "") if stem.casefold() == "inbox" else maildir.dir_folder("." + stem)


def quote(raw: bytes) -> bytes:
    return _QUOTED.sub(rb">\1", raw)


def unquote(text: bytes) -> bytes:
    return _UNQUOTE.sub(rb"\1", text)


def separator(received_ms: int) -> bytes:
    return f"From MAILER-DAEMON {time.asctime(time.gmtime(received_ms / 1000))}\n".encode()


@dataclass
class Writer:
    """One folder's mbox file, appended message by message; `messages` for the manifest."""

    path: Path
    out: BinaryIO
    messages: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def create(cls, root: Path, file: str) -> Writer:
        return cls(root / file, open(root / file, "xb"))

    def append(self, received_ms: int, source_id: str, flags: Flags, raw: bytes) -> None:
        self.out.write(separator(received_ms))
        offset = self.out.tell()
        body = quote(raw)
        self.out.write(body)
        self.out.write(b"\n" if not body.endswith(b"\n") else b"")
        self.out.write(b"\n")
        self.messages.append({"offset": offset, "length": len(body), "id": source_id, "received_ms": received_ms,
                              "size": len(raw), "unread": flags.unread, "starred": flags.starred,
                              **({"answered": True} if flags.answered else {}),
                              **({"draft": True} if flags.draft else {}),
                              **({"keywords": list(flags.keywords)} if flags.keywords else {})})

    def close(self) -> None:
        self.out.flush()
        os.fsync(self.out.fileno())
        self.out.close()


def write_manifest(root: Path, email_address: str, folders: list[dict[str, Any]]) -> None:
    document = {"format": FORMAT, "version": maildir.FORMAT_VERSION, "email": email_address, "folders": folders}
    temporary = root / (maildir.MANIFEST + ".tmp")
    temporary.write_text(json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    os.replace(temporary, root / maildir.MANIFEST)


# -- reading ----------------------------------------------------------------------------------
def is_mbox_export(root: Path) -> bool:
    path = root / maildir.MANIFEST
    if path.is_file():
        try:
            return bool(json.loads(path.read_text()).get("format") == FORMAT)
        except (OSError, ValueError, AttributeError):
            return False
    return root.is_dir() and any(p.suffix == SUFFIX for p in root.iterdir()) and not (root / "cur").is_dir()


def _flags_of(raw: bytes, where: str) -> Flags:
    """Another program's mbox, as Dovecot and mutt write it: Status: R (read); X-Status: F
    (flagged), A (answered), T (draft); X-Keywords: space-separated keywords."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    status = re.search(rb"(?im)^Status:[ \t]*([A-Z]*)", head)
    x_status = re.search(rb"(?im)^X-Status:[ \t]*([A-Z]*)", head)
    x_keywords = re.search(rb"(?im)^X-Keywords:[ \t]*([^\r\n]*)", head)
    letters = x_status.group(1) if x_status else b""
    keywords = x_keywords.group(1).decode("ascii", "replace").split() if x_keywords else []
    return Flags(unread=not (status and b"R" in status.group(1)), starred=b"F" in letters, answered=b"A" in letters,
                 draft=b"T" in letters, keywords=maildir.checked_keywords(keywords, where))


def _separator_ms(line: bytes, fallback: int) -> int:
    parts = line.decode("ascii", "replace").split(None, 2)
    try:
        return calendar.timegm(time.strptime(parts[2].strip(), "%a %b %d %H:%M:%S %Y")) * 1000
    except (IndexError, ValueError, OverflowError):
        return fallback


def _slicer(path: Path, offset: int, length: int) -> Callable[[], bytes]:
    def read() -> bytes:
        with open(path, "rb") as source:
            source.seek(offset)
            return unquote(source.read(length))
    return read


def read_export(root: Path) -> list[Folder]:
    """Every folder and message of an mbox export, checked before anything is imported."""
    manifest = root / maildir.MANIFEST
    if manifest.is_file():
        return _with_manifest(root, manifest)
    folders = []
    for path in sorted(p for p in root.iterdir() if p.suffix == SUFFIX and p.is_file()):
        role, name = file_folder(path.name)
        folder = Folder(path.name, name, role)
        data = path.read_bytes()
        starts = list(_SEPARATOR.finditer(data))
        if data and (not starts or starts[0].start() != 0):
            raise MaildirError(f"{path}: not an mbox (it does not begin with a 'From ' line)")
        fallback = int(path.stat().st_mtime * 1000)
        for i, match in enumerate(starts):
            end = starts[i + 1].start() if i + 1 < len(starts) else len(data)
            body = data[match.end():end]
            body = body[:-1] if body.endswith(b"\n\n") else body    # the separator's blank line
            raw = unquote(body)
            folder.entries.append(Entry(path, path.name, f"{path.name}#{i}", _flags_of(raw, f"{path} message {i + 1}"),
                                        _separator_ms(match.group(), fallback), reader=functools.partial(bytes, raw)))
        folders.append(folder)
    if not folders:
        raise MaildirError(f"{root}: no .mbox files")
    return folders


def _with_manifest(root: Path, manifest: Path) -> list[Folder]:
    try:
        document = json.loads(manifest.read_text())
    except (OSError, ValueError) as exc:
        raise MaildirError(f"{manifest}: unreadable manifest ({exc})") from None
    if document.get("version") != maildir.FORMAT_VERSION:
        raise MaildirError(f"{manifest}: manifest version {document.get('version')!r}, "
                           f"this tidings reads {maildir.FORMAT_VERSION}")
    folders = []
    for described in document.get("folders", []):
        path = root / described["file"]
        if "/" in described["file"] or not path.is_file():
            raise MaildirError(f"{path}: listed in the manifest, not there")
        size = path.stat().st_size
        folder = Folder(described["file"], described["name"], described.get("role", ""))
        for m in described.get("messages", []):
            offset, length = int(m["offset"]), int(m["length"])
            if offset < 0 or length < 0 or offset + length > size:
                raise MaildirError(f"{path}: message {m.get('id')!r} lies outside the file (truncated?)")
            flags = Flags(unread=bool(m.get("unread", True)), starred=bool(m.get("starred", False)),
                          answered=bool(m.get("answered", False)), draft=bool(m.get("draft", False)),
                          keywords=maildir.checked_keywords(map(str, m.get("keywords", [])),
                                                            f"{path} message {m.get('id')!r}"))
            folder.entries.append(Entry(path, described["file"], str(m["id"]), flags, int(m["received_ms"]),
                                        str(m["id"]), reader=_slicer(path, offset, length)))
        folders.append(folder)
    return folders


__all__ = ["Writer", "file_folder", "folder_file", "is_mbox_export", "quote", "read_export", "unquote",
           "write_manifest"]
