r"""The Maildir that `tidings export` writes and `tidings import` reads (docs/architecture.md,
"Export and import of a mailbox"): no gRPC here, only the format.

- One Maildir++ tree: the root is the Inbox, every other folder a `.NAME` directory beside
  `cur/`, `new/` and `tmp/`, a custom folder's levels ("/") joined by "." and each level's
  ".", "%", "/", "~" and control characters as %XX of their UTF-8 bytes. The system folders are
  `.Sent`, `.Drafts`, `.Spam`, `.Trash` and `.Archive` (a custom folder cannot take those names).
- A message is one file holding its bytes exactly, in `cur/`, named `SECONDS.ENTRY.tidings:2,FLAGS`
  with the standard flag letters in ASCII order: `S` seen (not unread), `F` flagged (starred),
  `R` replied (\Answered), `D` draft (\Draft); `P` and `T` are read and kept in `Flags.other`,
  not carried (\Deleted, Maildir's `T`, is not exported: it only marks a message for EXPUNGE).
- Keywords follow Dovecot: a folder's `dovecot-keywords` file numbers its keywords ("0 $Forwarded"),
  and a message's letters `a`-`z` name keywords 0-25. A folder with more than 26 distinct keywords
  lists the rest per message in the manifest (`more_keywords`), which Dovecot does not read.
- `tidings-export.json` beside them: the folders (directory, role, exact name) and each message's
  source id and received time in ms, so names and times come back exactly. A Maildir without it
  (another program's) is read too: names from the directories, times from the file names.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tidings_runtime.keywords import BadKeyword, canonical

MANIFEST = "tidings-export.json"
KEYWORDS_FILE = "dovecot-keywords"
KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"
FORMAT_VERSION = 1
HOST = "tidings"
SUBDIRS = ("cur", "new", "tmp")
# role -> directory; the Inbox is the root. On import ".Junk" is Spam as well (other servers').
SYSTEM_DIRS: dict[str, str] = {
    "inbox": "", "sent": ".Sent", "drafts": ".Drafts", "spam": ".Spam", "trash": ".Trash", "archive": ".Archive",
}
_DIR_ROLES: dict[str, str] = {d.casefold(): role for role, d in SYSTEM_DIRS.items()} | {".junk": "spam"}
_LETTERS = set("DFRS")
_ESCAPED = re.compile(r"[.%/~\x00-\x1f\x7f]")
_INFO = re.compile(r"^2,([A-Za-z]*)$")
_LEADING_TIME = re.compile(r"^(\d{1,12})(?:\.|$)")


class MaildirError(Exception):
    """The export cannot be written or read as it is (the message says where and why)."""


@dataclass(frozen=True)
class Flags:
    unread: bool = True
    starred: bool = False
    answered: bool = False
    draft: bool = False
    keywords: tuple[str, ...] = ()   # as tidings_runtime.keywords.canonical gives them
    other: str = ""            # Maildir letters not carried (P, T, a keyword letter the folder does not name)

    def info(self, letters: Mapping[str, str] | None = None) -> str:
        """The `:2,` suffix's letters, in ASCII order as Maildir wants them; `letters` gives the
        folder's keyword letters (lower-cased keyword -> letter), a keyword without one has none."""
        chosen = set(self.other)
        chosen |= {"F"} if self.starred else set()
        chosen |= set() if self.unread else {"S"}
        chosen |= {"R"} if self.answered else set()
        chosen |= {"D"} if self.draft else set()
        named = letters or {}
        chosen |= {named[k.lower()] for k in self.keywords if k.lower() in named}
        return "".join(sorted(chosen))


@dataclass(frozen=True)
class Entry:
    """One message of an export, as import reads it."""

    path: Path
    directory: str             # "" (the root) or ".NAME"
    base: str                  # the file name before ":2," (stable when a client changes flags)
    flags: Flags
    received_ms: int
    source_id: str = ""
    reader: Callable[[], bytes] | None = None     # its bytes from elsewhere than path (an mbox)

    def read(self) -> bytes:
        return self.reader() if self.reader is not None else self.path.read_bytes()


@dataclass
class Folder:
    directory: str
    name: str
    role: str = ""             # a system folder's id ("inbox", ...); "" for a custom folder
    entries: list[Entry] = field(default_factory=list)


# -- names ----------------------------------------------------------------------------------
def _escape(level: str) -> str:
    return _ESCAPED.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), level)


def _unescape(level: str) -> str:
    try:
        return re.sub(rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                      level.encode()).decode()
    except UnicodeDecodeError:
        raise MaildirError(f"{level!r}: not a folder name (bad %-escape)") from None


def folder_dir(name: str, role: str = "") -> str:
    """A folder's directory: the system one for a role, else `.` and its escaped levels."""
    if role:
        return SYSTEM_DIRS[role]
    return "." + ".".join(_escape(level) for level in name.split("/"))


def dir_folder(directory: str) -> tuple[str, str]:
    """(role, name) of a directory in a Maildir without a manifest: a system one's role, or ""
    and the custom folder's name."""
    role = _DIR_ROLES.get(directory.casefold())
    if role is not None:
        return role, ""
    if not directory.startswith(".") or directory in (".", ".."):
        raise MaildirError(f"{directory!r}: not a Maildir++ folder (.NAME)")
    levels = directory[1:].split(".")
    if not all(levels):
        raise MaildirError(f"{directory!r}: an empty level in the folder name")
    return "", "/".join(_unescape(level) for level in levels)


def file_name(received_ms: int, source_id: str, flags: Flags, letters: Mapping[str, str] | None = None) -> str:
    return f"{received_ms // 1000}.{source_id}.{HOST}:2,{flags.info(letters)}"


def checked_keywords(names: Iterable[str], where: str) -> tuple[str, ...]:
    """`names` in canonical form (tidings_runtime.keywords); MaildirError naming `where` if not keywords."""
    try:
        return canonical(names)
    except BadKeyword as exc:
        raise MaildirError(f"{where}: {exc}") from None


def keyword_letters(keywords: Iterable[str]) -> list[str]:
    """A folder's keywords to number in its dovecot-keywords: the first 26 in lowercase order
    (each spelled as first met)."""
    distinct: dict[str, str] = {}
    for keyword in keywords:
        distinct.setdefault(keyword.lower(), keyword)
    return [distinct[k] for k in sorted(distinct)][: len(KEYWORD_LETTERS)]


def letter_map(names: Sequence[str]) -> dict[str, str]:
    """lower-cased keyword -> its letter, for `Flags.info`."""
    return {name.lower(): letter for name, letter in zip(names, KEYWORD_LETTERS)}


def parse_name(name: str, *, in_new: bool = False, keywords: Mapping[str, str] | None = None) -> tuple[str, Flags]:
    """(base, flags) of a message file's name, `keywords` naming the folder's keyword letters
    (letter -> keyword, from its dovecot-keywords); MaildirError if it is no Maildir name."""
    if not name or name.startswith(".") or "/" in name:
        raise MaildirError(f"{name!r}: not a Maildir message file name")
    base, colon, info = name.partition(":")
    if not base:
        raise MaildirError(f"{name!r}: no unique name before ':'")
    if not colon:
        if in_new:      # delivered, never seen by a client
            return base, Flags()
        raise MaildirError(f"{name!r}: a file in cur/ needs the ':2,FLAGS' suffix")
    match = _INFO.match(info)
    if match is None:
        raise MaildirError(f"{name!r}: malformed flags {info!r} (want '2,' and letters, e.g. ':2,FS')")
    letters = match.group(1)
    if list(letters) != sorted(set(letters)):
        raise MaildirError(f"{name!r}: flags {letters!r} not in ASCII order or repeated")
    named = keywords or {}
    other = "".join(c for c in letters if c not in _LETTERS and c not in named)
    return base, Flags(unread="S" not in letters, starred="F" in letters, answered="R" in letters,
                       draft="D" in letters, keywords=checked_keywords((named[c] for c in letters if c in named), name),
                       other=other)


def import_entry_id(entry: Entry, raw: bytes) -> str:
    """The entry id a message is imported under: its received time (the id's 48 bits of ms)
    and 80 bits of a digest of its base name and bytes, so importing the same export twice
    (or after a client changed its flags or moved it) stores it once."""
    digest = hashlib.blake2b(entry.base.encode() + b"\0" + raw, digest_size=10).hexdigest()
    return f"{entry.received_ms & ((1 << 48) - 1):012x}{digest}"


# -- writing ----------------------------------------------------------------------------------
def prepare(root: Path) -> None:
    """An empty export directory (created); MaildirError if `root` exists and holds anything."""
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise MaildirError(f"{root}: exists and is not an empty directory (export into a new one)")
    root.mkdir(parents=True, exist_ok=True)


def make_folder(root: Path, directory: str) -> Path:
    path = root / directory if directory else root
    for sub in SUBDIRS:
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def write_keywords(folder: Path, names: Sequence[str]) -> None:
    """The folder's dovecot-keywords ("N keyword" a line), if it has keywords."""
    if names:
        (folder / KEYWORDS_FILE).write_text("".join(f"{i} {name}\n" for i, name in enumerate(names)))


def read_keywords(folder: Path) -> dict[str, str]:
    """letter -> keyword, from the folder's dovecot-keywords ({} without one); MaildirError
    for a line that is not "N keyword" with N 0-25."""
    path = folder / KEYWORDS_FILE
    if not path.is_file():
        return {}
    named: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        number, _, keyword = line.partition(" ")
        if not number.isdigit() or int(number) >= len(KEYWORD_LETTERS) or not keyword:
            raise MaildirError(f"{path}: {line!r} is not 'N keyword' with N from 0 to 25")
        named[KEYWORD_LETTERS[int(number)]] = checked_keywords([keyword.strip()], str(path))[0]
    return named


def write_message(folder: Path, received_ms: int, source_id: str, flags: Flags, raw: bytes,
                  letters: Mapping[str, str] | None = None) -> str:
    """Write into tmp/, fsync, rename into cur/ (Maildir's delivery): a file in cur/ is whole.
    Its mtime is the received time (what Maildir readers show as the date); `letters` the
    folder's keyword letters (`letter_map`)."""
    name = file_name(received_ms, source_id, flags, letters)
    temporary = folder / "tmp" / name.partition(":")[0]
    with open(temporary, "wb") as out:
        out.write(raw)
        out.flush()
        os.fsync(out.fileno())
    seconds = received_ms / 1000
    os.utime(temporary, (seconds, seconds))
    os.replace(temporary, folder / "cur" / name)
    return name


def write_manifest(root: Path, email: str, folders: list[dict[str, Any]], messages: dict[str, dict[str, Any]]) -> None:
    """Last, after every message: an export with its manifest is complete."""
    document = {"format": "tidings-maildir", "version": FORMAT_VERSION, "email": email,
                "folders": folders, "messages": messages}
    temporary = root / (MANIFEST + ".tmp")
    temporary.write_text(json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    os.replace(temporary, root / MANIFEST)


# -- reading ----------------------------------------------------------------------------------
def _manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if not path.exists():
        return {}
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MaildirError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != "tidings-maildir":
        raise MaildirError(f"{path}: not a tidings export manifest")
    if document.get("version") != FORMAT_VERSION:
        raise MaildirError(f"{path}: manifest version {document.get('version')!r}, this tidings reads {FORMAT_VERSION}")
    return document


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() or (path / "new").is_dir()


def _received_ms(path: Path, base: str) -> int:
    match = _LEADING_TIME.match(base)
    if match is not None:
        return int(match.group(1)) * 1000
    return int(path.stat().st_mtime * 1000)


def read_export(root: Path) -> list[Folder]:
    """Every folder and message file of the export at `root`, checked before anything is
    imported: MaildirError for a missing path, a tree that is no Maildir, or a bad file name."""
    if not root.is_dir():
        raise MaildirError(f"{root}: no such directory")
    if not _is_maildir(root):
        raise MaildirError(f"{root}: not a Maildir (no cur/ or new/)")
    document = _manifest(root)
    named = {f["dir"]: f for f in document.get("folders", [])}
    known = document.get("messages", {})
    directories = [""] + sorted(p.name for p in root.iterdir() if p.name.startswith(".") and _is_maildir(p))
    folders: list[Folder] = []
    for directory in directories:
        if directory in named:
            role, name = named[directory].get("role", ""), named[directory]["name"]
        else:
            role, name = dir_folder(directory) if directory else ("inbox", "")
        folder = Folder(directory, name, role)
        path = root / directory if directory else root
        named = read_keywords(path)
        for sub in ("cur", "new"):
            if not (path / sub).is_dir():
                continue
            for file in sorted((path / sub).iterdir()):
                if file.name.startswith("."):
                    continue
                if not file.is_file():
                    raise MaildirError(f"{file}: not a file")
                try:
                    base, flags = parse_name(file.name, in_new=sub == "new", keywords=named)
                except MaildirError as exc:
                    raise MaildirError(f"{file.parent}: {exc}") from None
                facts = known.get(base, {})     # by base: found again after a move
                more = facts.get("more_keywords", [])
                if more:
                    flags = replace(flags, keywords=checked_keywords([*flags.keywords, *map(str, more)], str(file)))
                received = facts.get("received_ms")
                received_ms = int(received) if isinstance(received, int) else _received_ms(file, base)
                folder.entries.append(Entry(file, directory, base, flags, received_ms, str(facts.get("id", ""))))
        folders.append(folder)
    return folders
