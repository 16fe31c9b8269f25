"""The storage node's summary cache (encoded record -> MessageSummary): what it answers is
always what decoding the record gives, a changed record is never answered from an older copy,
tombstones are reported by id, and it holds at most its size."""
from __future__ import annotations

from dataclasses import replace

from storage_node import codec
from storage_node.model import MessageRecord
from storage_node.service import SummaryCache, to_summary


def record(i: int, **cells: object) -> MessageRecord:
    base = MessageRecord(
        id=f"{i:032x}", thread_id=f"{i:016x}", received_ms=1_780_000_000_000 + i, size=900 + i,
        rfc822_msgid=f"m{i}@example.test", in_reply_to="", references=(),
        from_=(("Ann Example", "ann@example.test"),), to=(("", "bob@example.test"),), cc=(), bcc=(),
        subject=f"subject {i}", snippet=f"snippet {i}", attachments=(), folder_no=0, unread=True,
        starred=False, version=10 + i)
    return replace(base, **cells)  # type: ignore[arg-type]


def test_answers_what_decoding_gives_hit_or_miss() -> None:
    cache = SummaryCache()
    values = [codec.encode_record(record(i)) for i in range(5)]
    first = cache.summaries(values)
    again = cache.summaries([bytes(v) for v in values])    # equal bytes, other objects: hits
    expected = [to_summary(codec.decode_record(v)) for v in values]
    assert list(first.messages) == expected and list(again.messages) == expected
    assert not first.tombstones


def test_a_changed_record_is_never_answered_from_its_older_copy() -> None:
    cache = SummaryCache()
    old = record(1)
    cache.summaries([codec.encode_record(old)])
    read = replace(old, unread=False, starred=True, version=old.version + 1)
    [summary] = cache.summaries([codec.encode_record(read)]).messages
    assert not summary.unread and summary.starred and summary.version == read.version


def test_tombstones_are_reported_by_id_and_not_listed() -> None:
    cache = SummaryCache()
    live, dead = record(1), replace(record(2), tombstone=True, version=99)
    answer = cache.summaries([codec.encode_record(live), codec.encode_record(dead)])
    assert [s.id for s in answer.messages] == [live.id] and list(answer.tombstones) == [dead.id]
    answer = cache.summaries([codec.encode_record(dead)])
    assert not answer.messages and list(answer.tombstones) == [dead.id]


def test_holds_at_most_its_size() -> None:
    cache = SummaryCache(size=3)
    values = [codec.encode_record(record(i)) for i in range(10)]
    for value in values:
        cache.summaries([value])
    assert len(cache._held) == 3
    assert [s.id for s in cache.summaries(values).messages] == [record(i).id for i in range(10)]


def test_the_kept_header_fields_only_when_asked_and_only_when_kept() -> None:
    cache = SummaryCache()
    kept, old = record(1, headers=b"Subject: subject 1\r\n"), record(2)
    values = [codec.encode_record(kept), codec.encode_record(old)]
    plain = cache.summaries(values).messages
    assert not any(s.HasField("headers") for s in plain)
    headed = cache.summaries(values, headers=True).messages
    assert headed[0].headers == b"Subject: subject 1\r\n" and not headed[1].HasField("headers")
    assert not any(s.HasField("headers") for s in cache.summaries(values).messages)   # each kind cached apart
