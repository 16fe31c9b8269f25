"""A user's custom folders: their names in the directory, their messages in the storage keys.

A custom folder's id spells its storage number (tidings_runtime.partitions: "f" and 8 hex
digits, a random number of at least 0x10000 that no folder of the user's had), so every
replica files a message under it without a lookup. Its name is the directory entry
``folders:USER:ID`` -> ``{"name", "deleted"}``, in the multi-key partition ``folders:USER``:
one listing of that partition (newest copy of each entry among R replicas) reads them all.
One entry a folder, not one a user, so two folders created at once through two routers do
not overwrite each other; each entry is last writer wins (two renames of one folder at once:
the later stamp wins). A deleted folder keeps its entry, marked, so its id is never given
out again.

Rules: a name is 1-128 characters after NFC and trimming, no control characters or line
breaks, `/` separating levels (no empty level), unique per user ignoring case, the system
folders' names included. Not caught: two creates of one name at once through two routers
(both succeed; rename one), and a message moved into a folder while it is deleted: the
folder is listed again while it holds messages (under its old name), so nothing is lost
from sight; move them out and delete it again.
"""
from __future__ import annotations

import asyncio
import json
import secrets
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router.directory import Directory
from router.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from tidings.v1 import storage_pb2, types_pb2
from tidings_runtime.partitions import (
    CUSTOM_FOLDER_MIN,
    FOLDERS_PREFIX,
    SYSTEM_FOLDERS,
    custom_folder_id,
    folder_number,
)

if TYPE_CHECKING:
    from router.coordinator import Coordinator

MAX_NAME = 128
MAX_FOLDERS = 1000          # live custom folders a user may have
PAGE = 1000                 # directory entries a replica lists at once
FOLDER_EXISTS = "folder_exists"         # how refusals' details begin (the edge's error codes)
FOLDER_NOT_EMPTY = "folder_not_empty"
SYSTEM_FOLDER = "system_folder"
TOO_MANY_FOLDERS = "too_many_folders"
_FORBIDDEN = {"Cc", "Cs", "Zl", "Zp"}   # control characters, lone surrogates, line and paragraph breaks

Intent = storage_pb2.OrderIntent


@dataclass(frozen=True)
class CustomFolder:
    id: str
    name: str
    deleted: bool = False

    def encode(self) -> bytes:
        return json.dumps({"name": self.name, "deleted": self.deleted}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, folder_id: str, value: bytes) -> CustomFolder:
        record = json.loads(value)
        return cls(folder_id, str(record.get("name", folder_id)), bool(record.get("deleted", False)))


def folder_name(name: str) -> str:
    """The name as kept (NFC, trimmed), or InvalidArgument naming the rule it breaks."""
    name = unicodedata.normalize("NFC", name).strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise InvalidArgument(f"a folder name is 1 to {MAX_NAME} characters")
    if any(unicodedata.category(c) in _FORBIDDEN for c in name):
        raise InvalidArgument("a folder name has no control characters or line breaks")
    if any(not level.strip() for level in name.split("/")):
        raise InvalidArgument("'/' separates the levels of a folder name: no level may be empty")
    return name


def _key(user_id: str, folder_id: str) -> str:
    return f"{FOLDERS_PREFIX}{user_id}:{folder_id}"


def is_custom(folder_id: str) -> bool:
    number = folder_number(folder_id)
    return number is not None and number >= CUSTOM_FOLDER_MIN


def _list_call(request: storage_pb2.DirectoryListRequest) -> Callable[[Any], Awaitable[Any]]:
    return lambda stub: stub.ListDirectory(request)


class FolderDirectory:
    """The custom folders' directory entries (read newest of R, written on W)."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    async def get(self, user_id: str, folder_id: str) -> CustomFolder | None:
        if not is_custom(folder_id):
            return None
        value = await self.directory.get(_key(user_id, folder_id))
        return None if value is None else CustomFolder.decode(folder_id, value)

    async def all(self, user_id: str) -> dict[str, CustomFolder]:
        """Every custom folder the user has had (deleted ones marked), by id."""
        partition = FOLDERS_PREFIX + user_id
        best: dict[str, storage_pb2.DirectoryEntry] = {}
        after = ""
        while True:
            outcome = await self.directory.replicas.read(partition, _list_call(storage_pb2.DirectoryListRequest(
                partition=partition, all=True, limit=PAGE, after_key=after)), rank_key=user_id)
            full: list[str] = []
            for _, answer in outcome.answers:
                for entry in answer.entries:
                    if entry.key not in best or entry.version > best[entry.key].version:
                        best[entry.key] = entry
                if len(answer.entries) >= PAGE:
                    full.append(answer.entries[-1].key)
            if not full:    # every answer was complete; else what all of them listed is, up to min(full)
                break
            after = min(full)
        prefix = partition + ":"
        return {key[len(prefix):]: CustomFolder.decode(key[len(prefix):], bytes(entry.value))
                for key, entry in best.items() if entry.found and key.startswith(prefix)}

    async def put(self, user_id: str, folder: CustomFolder) -> None:
        await self.directory.put(_key(user_id, folder.id), folder.encode())

    async def check(self, user_id: str, folder_id: str, *, live: bool = True) -> str:
        """A system folder's role or a custom folder of the user's, live (or, with live=False,
        ever: a deleted folder may still hold a message that raced its deletion); else NotFound."""
        if folder_id in SYSTEM_FOLDERS:
            return folder_id
        folder = await self.get(user_id, folder_id)
        if folder is None or (live and folder.deleted):
            raise NotFound(f"no folder {folder_id!r}")
        return folder_id


def _taken(name: str, folders: dict[str, CustomFolder], but: str = "") -> None:
    """AlreadyExists when another live folder (or a system folder) has this name, ignoring case."""
    wanted = name.casefold()
    if wanted in SYSTEM_FOLDERS or any(f.name.casefold() == wanted and not f.deleted and f.id != but
                                       for f in folders.values()):
        raise AlreadyExists(f"{FOLDER_EXISTS}: a folder named {name!r} exists")


def _new_id(folders: dict[str, CustomFolder]) -> str:
    while True:     # ids never come back: the deleted ones' entries stay
        folder_id = custom_folder_id(CUSTOM_FOLDER_MIN + secrets.randbelow(0x1_0000_0000 - CUSTOM_FOLDER_MIN))
        if folder_id not in folders:
            return folder_id


def _not_system(folder_id: str, action: str) -> None:
    if folder_id in SYSTEM_FOLDERS:
        raise FailedPrecondition(f"{SYSTEM_FOLDER}: {folder_id!r} is a system folder; it cannot be {action}")


class Folders:
    """The folder RPCs (list, create, rename, delete) over the coordinator's reads and the
    directory; each change enters the mailbox order (the change feed) before the answer."""

    def __init__(self, coordinator: Coordinator, store: FolderDirectory) -> None:
        self.coordinator = coordinator
        self.store = store

    async def listing(self, user_id: str) -> tuple[list[types_pb2.Folder], int]:
        """The system folders, then the custom ones by name (a deleted one while it still holds
        messages), with the counts of the storage nodes; and the mailbox state."""
        (stored, state), custom = await asyncio.gather(self.coordinator.folders(user_id), self.store.all(user_id))
        counts = {f.id: f for f in stored}
        folders = [f for f in stored if f.role]
        for folder in sorted(custom.values(), key=lambda f: (f.name.casefold(), f.id)):
            held = counts.get(folder.id, types_pb2.Folder())
            if not folder.deleted or held.total > 0:
                folders.append(types_pb2.Folder(id=folder.id, name=folder.name, total=held.total, unread=held.unread))
        return folders, state

    async def _live(self, user_id: str, folder_id: str) -> CustomFolder:
        folder = await self.store.get(user_id, folder_id)
        if folder is None or folder.deleted:
            raise NotFound(f"no folder {folder_id!r}")
        return folder

    async def create(self, user_id: str, name: str) -> types_pb2.Folder:
        name = folder_name(name)
        folders = await self.store.all(user_id)
        _taken(name, folders)
        if sum(not f.deleted for f in folders.values()) >= MAX_FOLDERS:
            raise FailedPrecondition(f"{TOO_MANY_FOLDERS}: at most {MAX_FOLDERS} folders")
        folder = CustomFolder(_new_id(folders), name)
        await self.store.put(user_id, folder)
        await self._ordered(user_id, Intent.FOLDER_CHANGED, folder.id)
        return types_pb2.Folder(id=folder.id, name=folder.name)

    async def rename(self, user_id: str, folder_id: str, name: str) -> types_pb2.Folder:
        _not_system(folder_id, "renamed")
        name = folder_name(name)
        await self._live(user_id, folder_id)
        folders = await self.store.all(user_id)
        _taken(name, folders, but=folder_id)
        await self.store.put(user_id, CustomFolder(folder_id, name))
        await self._ordered(user_id, Intent.FOLDER_CHANGED, folder_id)
        listed, _ = await self.listing(user_id)
        return next((f for f in listed if f.id == folder_id), types_pb2.Folder(id=folder_id, name=name))

    async def delete(self, user_id: str, folder_id: str) -> None:
        _not_system(folder_id, "deleted")
        folder = await self._live(user_id, folder_id)
        page, *_ = await self.coordinator.list_messages(user_id, folder_id, False, 1, "")
        if page:
            raise FailedPrecondition(f"{FOLDER_NOT_EMPTY}: folder {folder.name!r} holds messages; "
                                     "move or delete them first")
        await self.store.put(user_id, CustomFolder(folder_id, folder.name, deleted=True))
        await self._ordered(user_id, Intent.FOLDER_DELETED, folder_id)

    async def _ordered(self, user_id: str, kind: storage_pb2.OrderIntent.Kind.ValueType, folder_id: str) -> None:
        """The change, into the mailbox order (router/mailbox_order.py) and so the change feed."""
        await self.coordinator.order.append(user_id, [Intent(kind=kind, folder_id=folder_id)])
