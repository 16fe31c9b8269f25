"""The mail operations as the coordinator runs them over replicas: delivery with
threading, listings merged from R replicas, flag changes and deletes with HLC versions.

Reads merge replicas by version (last writer wins) and check items only some replicas
listed against the others, so a replica that missed a change cannot resurface it.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass

from router import read_repair
from router.directory import Account, Directory
from router.errors import InvalidArgument, NotFound, NotHosted
from router.folders import FolderDirectory
from router.mailbox_order import RIDING_LIMIT, MailboxOrder
from router.message_reads import MessageReader, Read
from router.mutations import Mutation
from router.queue import OutboundQueue
from router.replicas import Replicas, newest
from router.ring import NodeInfo
from router.spam import SpamFilter, Verdict, message_tokens, strip_header
from tidings.v1 import storage_pb2, types_pb2
from tidings_runtime import cursor, keywords
from tidings_runtime.addresses import parse_address
from tidings_runtime.hlc import HybridLogicalClock
from tidings_runtime.ids import entry_id_ms, is_entry_id
from tidings_runtime.mime import parse_with_candidates, thread_candidates
from tidings_runtime.parsed_wire import to_wire
from tidings_runtime.partitions import SYSTEM_FOLDERS

MAX_LIMIT = 200
MAX_MESSAGES = 1000    # ids of one GetMessages


@dataclass(frozen=True)
class Delivered:
    recipient: str
    user_id: str
    id: str
    thread_id: str


def _filed(raw: bytes, folder_id: str, verdict: Verdict | None) -> tuple[bytes, str]:
    """A recipient's copy (with the verdict's header) and folder under its verdict."""
    if verdict is None:
        return raw, folder_id
    return verdict.stamp(raw), "spam" if verdict.spam else folder_id


def _analysed(raw: bytes, spam: bool) -> tuple[list[str], list[str], str, storage_pb2.ParsedMail | None]:
    """One parse for all: the spam tokens (when it is classified), the thread candidates and
    root, and the parse the replicas get with the stores (tidings_runtime/parsed_wire.py)."""
    parsed, candidates, root = parse_with_candidates(raw)
    return (message_tokens(parsed) if spam else []), candidates, root, to_wire(parsed)


def sent_copy_id(entry_id: str) -> str:
    """The id of the sender's Sent copy: derived, so a retried send stores it once."""
    return hashlib.blake2b(f"{entry_id}:sent".encode(), digest_size=16).hexdigest()


def thread_id_for(root_msgid: str, fallback: str) -> str:
    seed = root_msgid or fallback
    return hashlib.blake2b(seed.encode(), digest_size=8).hexdigest()


def check_folder(folder_id: str) -> str:
    """A system folder, as a delivery files into (a user's own folders: custom_folders.check)."""
    if folder_id not in SYSTEM_FOLDERS:
        raise NotFound(f"no folder {folder_id!r}")
    return folder_id


def check_limit(limit: int) -> int:
    if limit == 0:
        return 50
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def listing_order(summary: types_pb2.MessageSummary) -> tuple[int, str]:
    """The order of the storage listing keys: newest first, then id ascending."""
    return -summary.received_ms, summary.id


def _newest(pages: Iterable[Iterable[types_pb2.MessageSummary]]) -> dict[str, types_pb2.MessageSummary]:
    """Newest version of each id across replicas' pages."""
    best: dict[str, types_pb2.MessageSummary] = {}
    for page in pages:
        for summary in page:
            held = best.get(summary.id)
            if held is None or summary.version > held.version:
                best[summary.id] = summary
    return best


def _merge(answers: list[storage_pb2.NodeSummaries]) -> tuple[dict[str, types_pb2.MessageSummary], set[str]]:
    """Newest version of each id across replicas, and the ids some replica holds as deleted."""
    return _newest(a.messages for a in answers), {i for answer in answers for i in answer.tombstones}


def _intent_of(summary: types_pb2.MessageSummary, moved_to: str | None, expunged: bool) -> storage_pb2.OrderIntent:
    """A change of a message as the mailbox order records it."""
    Intent = storage_pb2.OrderIntent
    kind = Intent.DESTROYED if expunged else Intent.MOVED if moved_to is not None else Intent.UPDATED
    return Intent(kind=kind, message_id=summary.id, folder_id=moved_to or summary.folder_id,
                  thread_id=summary.thread_id)


def _created(message_id: str, folder_id: str, thread_id: str) -> storage_pb2.OrderIntent:
    """A new message as the mailbox order records it."""
    return storage_pb2.OrderIntent(kind=storage_pb2.OrderIntent.CREATED, message_id=message_id,
                                   folder_id=folder_id, thread_id=thread_id)


def _doubtful(best: dict[str, types_pb2.MessageSummary], listings: list[Sequence[types_pb2.MessageSummary]]
              ) -> list[str]:
    """The ids merged from several replicas' answers that some answer did not list."""
    listed_by_all = set.intersection(*({m.id for m in listing} for listing in listings)) if listings else set()
    return sorted(set(best) - listed_by_all)


@dataclass(frozen=True)
class Outcome:
    """What a delivery did: hosted recipients' copies, the sender's Sent copy, and the
    recipients handed to the outgoing queue."""

    delivered: list[Delivered]
    sent: Delivered | None
    queued: list[str]


@dataclass(frozen=True)
class Screened:
    """A delivery decided and not yet written: the message as it will be stored (the
    outside verdict header removed), where it goes, each hosted recipient's verdict and the
    known thread each owner's copy joins (absent: a new thread, named by `root`)."""

    raw: bytes
    folder_id: str
    accounts: list[Account]
    remote: list[str]
    verdicts: dict[str, Verdict]
    threads: dict[str, str]
    root: str
    sender_user_id: str
    mail_from: str
    bounce: bool
    parsed: storage_pb2.ParsedMail | None = None    # `raw` parsed (our verdict header adds nothing to it)


@dataclass(frozen=True)
class Analysed:
    """A delivery before its reads (Coordinator.analyse): `decided` with no verdicts and no
    known threads yet, the screening it is classified under (None: it is not classified),
    its spam tokens and its thread candidates."""

    decided: Screened
    screening: types_pb2.Screening | None
    tokens: list[str]
    candidates: list[str]


class Coordinator:
    def __init__(self, replicas: Replicas, directory: Directory, clock: HybridLogicalClock,
                 queue: OutboundQueue, spam: SpamFilter | None = None, order: MailboxOrder | None = None) -> None:
        self.replicas = replicas
        # Every change of a mailbox is ordered (UID, MODSEQ) after it is stored, before the answer.
        self.order = order if order is not None else MailboxOrder(replicas)
        self.directory = directory
        self.clock = clock
        self.queue = queue
        self.spam = spam if spam is not None else SpamFilter(replicas, directory)
        self.read_repair = read_repair.ReadRepair(replicas.pool.stub, replicas.consistency.timeout)
        self.reader = MessageReader(replicas, self.read_repair)   # bodies: one replica's, versions from the rest
        self.custom_folders = FolderDirectory(directory)     # which custom folder ids exist (router/folders.py)

    # -- delivery ------------------------------------------------------------------------
    async def deliver(self, entry_id: str, raw: bytes, recipients: list[str], folder_id: str,
                      sender_user_id: str, mail_from: str = "", bounce: bool = False,
                      screening: types_pb2.Screening | None = None) -> Outcome:
        """Hosted recipients get their copy directly (never through the queue), the sender a
        Sent copy, and recipients outside our domains one queue item, only for a sending user
        or a bounce: all durable on W replicas when this returns (screen, then file)."""
        if not is_entry_id(entry_id):
            raise InvalidArgument(f"malformed entry id {entry_id!r}")
        analysed = await self.analyse(raw, recipients, folder_id, sender_user_id, mail_from, bounce, screening)
        return await self.file(await self.screen(analysed), entry_id)

    async def analyse(self, raw: bytes, recipients: list[str], folder_id: str, sender_user_id: str,
                      mail_from: str = "", bounce: bool = False,
                      screening: types_pb2.Screening | None = None) -> Analysed:
        """A delivery decided as far as it can be without reading the mailboxes: the
        recipients sorted into hosted and outside (directory lookups, mostly remembered) and
        the message parsed once (in a thread) for its spam tokens, thread candidates and the
        parse the replicas get. `screen` then makes the reads."""
        if not raw:
            raise InvalidArgument("empty message")
        folder_id = check_folder(folder_id or "inbox")
        accounts, remote = await self._classify(recipients)
        if bounce and (sender_user_id or mail_from):
            raise InvalidArgument("a bounce has the null sender and no sending user")
        if remote and not (sender_user_id or bounce):
            raise NotHosted(f"not a hosted domain: {', '.join(remote)} (only our users send outside)")
        if not accounts and not remote and not sender_user_id:
            raise InvalidArgument("no recipients")
        raw = strip_header(raw)     # only our own verdict is believed
        classified = screening is not None and screening.screened and bool(accounts)
        tokens, candidates, root, parsed = await asyncio.to_thread(_analysed, raw, classified)
        decided = Screened(raw, folder_id, accounts, remote, {}, {}, root, sender_user_id, mail_from, bounce, parsed)
        return Analysed(decided, screening if classified else None, tokens, candidates)

    async def screen(self, analysed: Analysed) -> Screened:
        """The analysed delivery's reads, in one round, where nothing is written (so they can
        run beside the delivery's claim): a screened message (the SMTP edge's inbound checks
        ran) classified for each hosted recipient, whose copy carries the verdict (an
        X-Tidings-Spam header) and goes to Spam over the spam threshold (over the reject
        threshold for all of them, SpamRejected); and the known thread each owner's copy joins
        (absent: a new thread, named by `root`)."""
        s = analysed.decided
        owners = [*(a.user_id for a in s.accounts), *([s.sender_user_id] if s.sender_user_id else [])]
        verdicts: dict[str, Verdict] = {}
        if analysed.screening is not None:
            # the spam models and the owners' threads in one round
            verdicts, threads = await asyncio.gather(
                self.spam.classify(s.accounts, analysed.tokens, analysed.screening),
                self._threads(owners, analysed.candidates))
        else:
            threads = await self._threads(owners, analysed.candidates)
        return dataclasses.replace(s, verdicts=verdicts, threads=threads)

    async def file(self, screened: Screened, entry_id: str, fresh: bool = False) -> Outcome:
        """The screened delivery written under entry_id: each hosted recipient's copy, the
        Sent copy and the queue item at once (a retry rewrites each at the same version).
        `fresh`: no earlier attempt used entry_id (no claim adopted it), so each copy's store
        rides its order's accept (one round: router/mailbox_order.py)."""
        s = screened
        received_ms = entry_id_ms(entry_id)
        jobs = [self._store(a.user_id, entry_id, *_filed(s.raw, s.folder_id, s.verdicts.get(a.user_id)), True,
                            received_ms, s.threads.get(a.user_id) or thread_id_for(s.root, entry_id), fresh,
                            s.parsed)
                for a in s.accounts]
        sent_id = sent_copy_id(entry_id)
        if s.sender_user_id:
            jobs.append(self._store(s.sender_user_id, sent_id, s.raw, "sent", False, received_ms,
                                    s.threads.get(s.sender_user_id) or thread_id_for(s.root, sent_id), fresh,
                                    s.parsed))
        item_id = sent_id if s.sender_user_id else entry_id
        enqueue = [self.queue.enqueue(item_id, s.raw, s.remote, mail_from=s.mail_from,
                                      sender_user_id=s.sender_user_id, created_ms=received_ms, is_bounce=s.bounce,
                                      sent_message_id=sent_id if s.sender_user_id else "")] if s.remote else []
        stored: list[tuple[str, str]]
        stored, _ = await asyncio.gather(asyncio.gather(*jobs), asyncio.gather(*enqueue))
        delivered = [Delivered(a.email, a.user_id, i, t) for a, (i, t) in zip(s.accounts, stored)]
        sent = Delivered("", s.sender_user_id, *stored[-1]) if s.sender_user_id else None
        return Outcome(delivered, sent, s.remote)

    async def import_message(self, email: str, entry_id: str, raw: bytes, folder_id: str, unread: bool,
                             starred: bool, answered: bool = False, draft: bool = False,
                             keyword_names: Sequence[str] = ()) -> tuple[bool, types_pb2.MessageSummary]:
        """`tidings import`: one message stored into a user's mailbox exactly as given (bytes,
        folder, flags and keywords; received at entry_id's time), sent nowhere; (created, what
        is stored). An entry id the user has (or had) is left as it is: created is False."""
        if not is_entry_id(entry_id):
            raise InvalidArgument(f"malformed entry id {entry_id!r}")
        if not raw:
            raise InvalidArgument("empty message")
        try:
            names = keywords.canonical(keyword_names)
        except keywords.BadKeyword as exc:
            raise InvalidArgument(str(exc)) from None
        account = await self.directory.local_account(email)
        folder_id = await self.custom_folders.check(account.user_id, folder_id or "inbox")
        candidates, root = await asyncio.to_thread(thread_candidates, raw)
        thread_id = await self._thread_of(account.user_id, candidates) or thread_id_for(root, entry_id)
        request = storage_pb2.StoreMessageRequest(
            user_id=account.user_id, id=entry_id, raw=raw, folder_id=folder_id, unread=unread, starred=starred,
            answered=answered, draft=draft, keywords=names, received_ms=entry_id_ms(entry_id), thread_id=thread_id,
            version=self.clock.now())
        outcome = await self.replicas.write(account.user_id, Mutation(request))
        stored = newest([a.summary for _, a in outcome.answers], lambda s: s.version)
        summary = stored if stored is not None else types_pb2.MessageSummary(id=entry_id, thread_id=thread_id)
        # ordered on every attempt (as _store): an earlier one may have stored it and failed before
        await self.order.append(account.user_id, [_created(entry_id, summary.folder_id or folder_id,
                                                           summary.thread_id)])
        return any(a.created for _, a in outcome.answers), summary

    async def _classify(self, recipients: list[str]) -> tuple[list[Account], list[str]]:
        """Hosted users (an unknown user of a hosted domain is NotFound) and outside addresses."""
        async def one(address: str) -> Account | str:
            try:
                return await self.directory.local_account(address)
            except NotHosted:
                return str(parse_address(address))     # the far end's local part keeps its case

        found = await asyncio.gather(*(one(r) for r in dict.fromkeys(recipients)))
        return [a for a in found if isinstance(a, Account)], [a for a in found if isinstance(a, str)]

    async def store_copy(self, user_id: str, message_id: str, raw: bytes, folder_id: str, unread: bool,
                         received_ms: int, candidates: list[str], root: str) -> tuple[str, str]:
        """One copy stored and ordered outside a delivery (a draft), its thread found first."""
        thread_id = await self._thread_of(user_id, candidates) or thread_id_for(root, message_id)
        return await self._store(user_id, message_id, raw, folder_id, unread, received_ms, thread_id)

    async def _store(self, user_id: str, message_id: str, raw: bytes, folder_id: str, unread: bool,
                     received_ms: int, thread_id: str, fresh: bool = False,
                     parsed: storage_pb2.ParsedMail | None = None) -> tuple[str, str]:
        request = storage_pb2.StoreMessageRequest(
            user_id=user_id, id=message_id, raw=raw, folder_id=folder_id, unread=unread,
            received_ms=received_ms, thread_id=thread_id, version=self.clock.now(), parsed=parsed)
        if fresh and len(raw) <= RIDING_LIMIT:
            # nothing is stored under a fresh id: the intent's thread is the copy's own
            await self.order.append(user_id, [_created(message_id, folder_id, thread_id)], stores=[request])
            return message_id, thread_id
        outcome = await self.replicas.write(user_id, Mutation(request))
        # An earlier attempt may have stored it already: report what is stored.
        stored = newest([a.summary for _, a in outcome.answers], lambda s: s.version)
        thread_id = stored.thread_id if stored is not None else thread_id
        await self.order.append(user_id, [_created(message_id, folder_id, thread_id)])
        return message_id, thread_id

    async def _threads(self, user_ids: list[str], candidates: list[str]) -> dict[str, str]:
        """The known thread of each user that has one of the candidates (no reads without them)."""
        if not candidates:
            return {}
        users = list(dict.fromkeys(user_ids))
        found = await asyncio.gather(*(self._thread_of(u, candidates) for u in users))
        return {u: t for u, t in zip(users, found) if t}

    async def _thread_of(self, user_id: str, candidates: list[str]) -> str:
        if not candidates:
            return ""
        request = storage_pb2.LookupThreadsRequest(user_id=user_id, message_ids=candidates)
        outcome = await self.replicas.read(user_id, lambda stub: stub.LookupThreads(request))
        found = sorted(a.thread_id for _, a in outcome.answers if a.thread_id)
        return found[0] if found else ""

    # -- reads ---------------------------------------------------------------------------
    async def folders(self, user_id: str) -> tuple[list[types_pb2.Folder], int]:
        """The folders with their counts, and the mailbox state (MODSEQ) read before them."""
        outcome = await self.replicas.read(user_id, lambda stub: stub.ListFolders(storage_pb2.NodeUserRef(user_id=user_id)))
        if not outcome.answers:
            return [], 0
        return list(outcome.answers[0][1].folders), min(a.state for _, a in outcome.answers)

    async def list_messages(self, user_id: str, folder_id: str, unread_only: bool, limit: int,
                            page_cursor: str, headers: bool = False) -> tuple[list[types_pb2.MessageSummary], str, int]:
        """A page of the folder, its cursor, and the mailbox state (MODSEQ) read before it:
        the lowest of the replicas', so Changes from it misses nothing the page lacks. With
        ``headers``, each summary carries its kept header fields."""
        folder_id = await self.custom_folders.check(user_id, folder_id, live=False)
        limit = check_limit(limit)
        after = cursor.decode(page_cursor) if page_cursor else None     # InvalidCursor: INVALID_ARGUMENT (service.rpc)
        request = storage_pb2.NodeListFolderRequest(
            user_id=user_id, folder_id=folder_id, unread_only=unread_only, limit=limit + 1,
            after_received_ms=after[0] if after else 0, after_id=after[1] if after else "", headers=headers)
        outcome = await self.replicas.read(user_id, lambda stub: stub.ListFolder(request))
        answers = [a for _, a in outcome.answers]
        best = await self._reconciled(user_id, outcome.answers, headers)
        keep = [s for s in best.values()
                if s.folder_id == folder_id and (s.unread or not unread_only)]
        keep.sort(key=listing_order)
        page = keep[:limit]
        more = len(keep) > limit or any(len(a.messages) > limit for a in answers)
        next_cursor = cursor.encode((page[-1].received_ms, page[-1].id)) if page and more else ""
        return page, next_cursor, min(a.state for a in answers)

    async def _reconciled(self, user_id: str, listed: list[tuple[NodeInfo, storage_pb2.NodeSummaries]],
                          headers: bool = False) -> dict[str, types_pb2.MessageSummary]:
        """Merge listings; ids missing from some replica's answer are checked against it.
        Replicas seen stale are repaired in the background."""
        answers = [a for _, a in listed]
        checked: list[tuple[NodeInfo, storage_pb2.NodeSummaries]] = []
        best, dead = _merge(answers)
        doubtful = _doubtful(best, [a.messages for a in answers])
        if doubtful:
            checked, checked_best, checked_dead = await self._held(user_id, doubtful, headers)
            dead |= checked_dead
            for message_id, summary in checked_best.items():
                if summary.version > best[message_id].version:
                    best[message_id] = summary
        self.read_repair.submit(user_id, read_repair.for_listing(listed, checked, doubtful))
        return {i: s for i, s in best.items() if i not in dead}

    async def _held(self, user_id: str, ids: list[str], headers: bool = False) -> tuple[
            list[tuple[NodeInfo, storage_pb2.NodeSummaries]], dict[str, types_pb2.MessageSummary], set[str]]:
        """The messages' summaries from R replicas: the answers, the newest of each, the ids held deleted."""
        request = storage_pb2.NodeMessageRefs(user_id=user_id, ids=ids, headers=headers)
        outcome = await self.replicas.read(user_id, lambda stub: stub.GetSummaries(request))
        best, dead = _merge([a for _, a in outcome.answers])
        return outcome.answers, best, dead

    async def stored(self, user_id: str, message_id: str) -> storage_pb2.StoredMessage:
        """The newest of R copies, with its body (router/message_reads.py: one replica sends it)."""
        held = (await self.reader.read(user_id, [message_id])).found.get(message_id)
        if held is None:
            raise NotFound(f"no message {message_id}")
        return held

    async def messages(self, user_id: str, ids: Sequence[str], *, raw: bool, headers: bool
                       ) -> Read:
        """Several messages: with ``raw`` their bodies (the digest read), else their summaries
        from R replicas (the newest of each; stale replicas repaired)."""
        if len(ids) > MAX_MESSAGES:
            raise InvalidArgument(f"at most {MAX_MESSAGES} messages a call")
        if raw:
            return await self.reader.read(user_id, ids, headers=headers)
        wanted = list(dict.fromkeys(ids))
        answers, best, dead = await self._held(user_id, wanted, headers)
        self.read_repair.submit(user_id, read_repair.for_listing([], answers, wanted))
        read = Read()
        for message_id in wanted:
            if message_id in best and message_id not in dead:
                read.found[message_id] = storage_pb2.StoredMessage(summary=best[message_id])
            else:
                read.missing.append(message_id)
        return read

    async def thread(self, user_id: str, thread_id: str) -> list[types_pb2.MessageSummary]:
        request = storage_pb2.NodeThreadRequest(user_id=user_id, thread_id=thread_id)
        outcome = await self.replicas.read(user_id, lambda stub: stub.GetThread(request))
        best = await self._reconciled(user_id, outcome.answers)
        if not best:
            raise NotFound(f"no thread {thread_id}")
        return sorted(best.values(), key=lambda s: (s.received_ms, s.id))

    async def search(self, user_id: str, query: str, limit: int, page_cursor: str
                     ) -> tuple[list[types_pb2.MessageSummary], str, int, int]:
        """Search R replicas and merge: with R + W > N one of them holds every acknowledged
        message, so a message is findable as soon as its delivery was acknowledged."""
        if not query.strip():
            raise InvalidArgument("empty query")
        limit = check_limit(limit)
        request = storage_pb2.NodeSearchRequest(user_id=user_id, query=query, limit=limit, cursor=page_cursor)
        outcome = await self.replicas.read(user_id, lambda stub: stub.Search(request))
        answers = [a for _, a in outcome.answers]
        best = _newest(a.messages for a in answers)     # not copied into a NodeSummaries
        stale = await self._stale_hits(user_id, answers, best, limit)
        ranked = sorted((s for i, s in best.items() if i not in stale), key=lambda s: (s.received_ms, s.id), reverse=True)
        page = ranked[:limit]
        more = len(ranked) > limit or any(a.next_cursor for a in answers)
        next_cursor = cursor.encode((page[-1].received_ms, page[-1].id)) if page and more else ""
        total = max((a.total - sum(1 for m in a.messages if m.id in stale) for a in answers), default=0)
        return page, next_cursor, total, min((a.state for a in answers), default=0)

    async def _stale_hits(self, user_id: str, answers: list[storage_pb2.NodeSearchResponse],
                          best: dict[str, types_pb2.MessageSummary], limit: int) -> set[str]:
        """Hits only a replica holding an older copy found (a flag change or a move it has not
        applied yet): a replica with the newer copy whose page reaches that far did not match
        it, so it no longer matches. Checked only for ids some replica did not list."""
        doubtful = _doubtful(best, [a.messages for a in answers])
        if not doubtful:
            return set()
        listed = [{m.id for m in a.messages} for a in answers]
        _, newest, dead = await self._held(user_id, doubtful)
        stale = set(dead & set(doubtful))
        for message_id in doubtful:
            hit, held = best[message_id], newest.get(message_id)
            if held is None or held.version <= hit.version:
                continue
            # the newer copy's replica would have listed it, had it matched: unless its page
            # (newest first, full) ended before this message's time
            if all(message_id in ids or len(a.messages) < limit or (a.messages[-1].received_ms, a.messages[-1].id)
                   <= (hit.received_ms, hit.id) for a, ids in zip(answers, listed)):
                stale.add(message_id)
        return stale

    # -- changes -------------------------------------------------------------------------
    async def update(self, user_id: str, message_id: str, *, unread: bool | None = None,
                     starred: bool | None = None, folder_id: str | None = None,
                     expunge: bool = False, train: bool = False, answered: bool | None = None,
                     draft: bool | None = None, deleted: bool | None = None,
                     add_keywords: Sequence[str] = (), remove_keywords: Sequence[str] = (),
                     ) -> types_pb2.MessageSummary:
        """Set a message's cells. With `train` (a user's move), a move into Spam trains the
        spam filter with it as spam, a move out of Spam (not to Trash) as ham. Keywords are
        added and removed on each replica (checked here: atoms, at most 32 of 64 characters)."""
        try:
            keywords.canonical(add_keywords)
            for name in remove_keywords:
                keywords.check_keyword(name)
        except keywords.BadKeyword as exc:
            raise InvalidArgument(str(exc)) from None
        if folder_id is not None:
            await self.custom_folders.check(user_id, folder_id)    # NotFound: unknown or deleted
        training = None
        if train and folder_id is not None and not expunge:
            training = await self._training(user_id, message_id, folder_id)
        # None leaves an optional field unset: that cell is not changed.
        request = storage_pb2.UpdateMessageRequest(user_id=user_id, id=message_id, expunge=expunge,
                                                   version=self.clock.now(), unread=unread, starred=starred,
                                                   folder_id=folder_id, answered=answered, draft=draft,
                                                   deleted=deleted, add_keywords=add_keywords,
                                                   remove_keywords=remove_keywords)
        write = self.replicas.write(user_id, Mutation(request))
        if training is not None:    # both idempotent: a retried move trains once
            outcome, _ = await asyncio.gather(write, training)
        else:
            outcome = await write
        summary = newest([s for _, s in outcome.answers], lambda s: s.version)
        assert summary is not None  # a write outcome has at least W answers
        await self.order.append(user_id, [_intent_of(summary, folder_id, expunge)])
        return summary

    async def _training(self, user_id: str, message_id: str, folder_id: str) -> Awaitable[None] | None:
        """The training a move owes (into Spam: spam; out of Spam, not to Trash: ham), if any."""
        _, best, dead = await self._held(user_id, [message_id])
        held = best.get(message_id)
        if held is None or message_id in dead:
            raise NotFound(f"no message {message_id}")
        into = folder_id == "spam" and held.folder_id != "spam"
        out = held.folder_id == "spam" and folder_id not in ("spam", "trash")
        if not (into or out):
            return None
        stored = await self.stored(user_id, message_id)
        return self.spam.train(user_id, message_id, bytes(stored.raw), spam=into)

    async def delete(self, user_id: str, message_id: str) -> bool:
        """Move to Trash; from Trash, delete for good. Returns True when expunged."""
        held = await self.stored(user_id, message_id)
        expunge = held.summary.folder_id == "trash"
        # To Trash with IMAP's \Deleted cleared: an EXPUNGE of Trash must not take it at once.
        await self.update(user_id, message_id, folder_id=None if expunge else "trash", expunge=expunge,
                          deleted=None if expunge else False)
        return expunge
