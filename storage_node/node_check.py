"""What a node can check of its own rows (`tidings verify`, `tidings fsck`): each folder's
counters against the live message records and listing rows they count, and each blob ref
against the object store. Counters are recomputed from the records on repair; a blob gone from
the store cannot be brought back from a replica (they share the store), so it is reported.

The first pass reads without stopping writes; a user whose counters look wrong is looked at
again inside the group committer, alone (no delivery interleaves), before it is reported or
repaired, so a delivery landing between two scans is not taken for a problem."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from storage_node import codec, keys
from storage_node.batch import Txn
from storage_node.engine import Engine
from storage_node.model import FolderCounts
from tidings_runtime.partitions import folder_id_of

FOLDER_KEY = keys.PARTITION_BYTES + 4
Counts = dict[bytes, FolderCounts]   # folder key (partition | folder) -> counts


@dataclass
class NodeCheck:
    users: int = 0
    messages: int = 0
    blob_refs: int = 0
    problems: list[str] = field(default_factory=list)
    unrepaired: list[str] = field(default_factory=list)
    counters_repaired: int = 0
    suspects: list[bytes] = field(default_factory=list)   # partitions whose counters disagree


def _name(folder_key: bytes) -> str:
    user = folder_key[8:keys.PARTITION_BYTES].hex()
    number = int.from_bytes(folder_key[keys.PARTITION_BYTES:FOLDER_KEY], "big")
    return f"user {user} folder {folder_id_of(number) or number}"


def _tally(engine: Engine, start: bytes, end: bytes | None) -> tuple[Counts, Counts, Counts, Counts, int]:
    """(stored counters, counts of the live records, of the by_folder rows, of the unread rows
    as FolderCounts(unread rows, unread rows)) under [start, end), and the live records."""
    stored: Counts = {}
    for key, value in engine.scan(keys.CF_FOLDERS, start, end):
        counts = codec.decode_counts(value)
        if counts != FolderCounts():
            stored[key] = counts
    records: Counts = defaultdict(FolderCounts)
    live = 0
    for key, value in engine.scan(keys.CF_MESSAGES, start, end):
        if codec.is_tombstone(value):
            continue
        record = codec.decode_record(value)
        folder_key = key[:keys.PARTITION_BYTES] + record.folder_no.to_bytes(4, "big")
        records[folder_key] = records[folder_key].plus(1, 1 if record.unread else 0)
        live += 1
    listed: Counts = defaultdict(FolderCounts)
    for key, _ in engine.scan(keys.CF_BY_FOLDER, start, end):
        listed[key[:FOLDER_KEY]] = listed[key[:FOLDER_KEY]].plus(1, 0)
    unread: Counts = defaultdict(FolderCounts)
    for key, _ in engine.scan(keys.CF_UNREAD, start, end):
        unread[key[:FOLDER_KEY]] = unread[key[:FOLDER_KEY]].plus(0, 1)
    return stored, dict(records), dict(listed), dict(unread), live


def _differences(stored: Counts, records: Counts, listed: Counts, unread: Counts) -> tuple[list[str], list[str]]:
    """(counter problems: fixed by recomputing, listing problems: not)."""
    counters, listings = [], []
    for folder_key in sorted({*stored, *records, *listed, *unread}):
        truth = records.get(folder_key, FolderCounts())
        held = stored.get(folder_key, FolderCounts())
        if held != truth:
            counters.append(f"{_name(folder_key)}: counters say {held.total} messages, {held.unread} unread; "
                            f"the records hold {truth.total}, {truth.unread} unread")
        rows = listed.get(folder_key, FolderCounts()).total, unread.get(folder_key, FolderCounts()).unread
        if rows != (truth.total, truth.unread):
            listings.append(f"{_name(folder_key)}: {rows[0]} listing rows, {rows[1]} unread rows; "
                            f"the records hold {truth.total}, {truth.unread} unread")
    return counters, listings


def check_counters(engine: Engine) -> NodeCheck:
    """The first pass over the whole node (module docstring): users whose counters disagree
    become suspects, to be settled by `settle`. Blocking: run it in a thread."""
    report = NodeCheck()
    stored, records, listed, unread, report.messages = _tally(engine, b"", None)
    report.users = len({k[:keys.PARTITION_BYTES] for k in records})
    counters, listings = _differences(stored, records, listed, unread)
    report.unrepaired.extend(listings)
    report.problems.extend(listings)
    suspects = {k[:keys.PARTITION_BYTES] for k in {*stored, *records}
                if stored.get(k, FolderCounts()) != records.get(k, FolderCounts())}
    report.suspects = sorted(suspects)
    return report


def settle(engine: Engine, partition: bytes, repair: bool) -> Callable[[Txn], tuple[list[str], int]]:
    """A mutation (submit it alone: it reads committed state, and no write interleaves): the
    partition's counter problems at commit time and, with `repair`, each wrong counter set to
    what the records hold. It returns (problems, counters repaired)."""

    def mutate(txn: Txn) -> tuple[list[str], int]:
        stored, records, _, _, _ = _tally(engine, partition, keys.prefix_end(partition))
        problems, _ = _differences(stored, records, {}, {})
        wrong = [k for k in {*stored, *records} if stored.get(k, FolderCounts()) != records.get(k, FolderCounts())]
        if repair:
            for folder_key in wrong:
                txn.put(keys.CF_FOLDERS, folder_key, codec.encode_counts(records.get(folder_key, FolderCounts())))
        return problems, len(wrong) if repair else 0

    return mutate


def blob_problems(engine: Engine) -> tuple[int, list[str]]:
    """(distinct blob refs held, a problem for each ref whose object the store lacks). The refs are
    read before the store is listed: a ref's blob was put before its row, so a blob missing
    from a later listing is missing (it is looked up once more). Blocking."""
    refs: dict[str, bytes] = {}
    for key, value in engine.scan(keys.CF_BODIES, b"", None):
        if value[:1] == bytes([codec.BODY_BLOB_V1]):
            refs.setdefault(value[1:].decode(), key)
    held = {ref for ref, _ in engine.blobs.objects()}
    problems = []
    for ref in sorted(set(refs) - held):
        if engine.blobs.modified(ref) is None:
            key = refs[ref]
            problems.append(f"user {key[8:keys.PARTITION_BYTES].hex()} message {key[keys.PARTITION_BYTES:].hex()}: "
                            f"blob {ref} is missing from the store")
    return len(refs), problems
