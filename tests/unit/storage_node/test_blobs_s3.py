"""Blobs in S3 for real: moto's server over HTTP on a loopback port. The store puts, reads,
lists and deletes; the settings (TIDINGS_S3_*, credentials from the environment only) switch
a node from its directory to the bucket; a large message's blob is in the bucket before its
batch commits (a put that fails leaves no record), and a slow put does not stall the loop."""
from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from storage_node.blobs import LocalBlobStore, S3BlobStore, blob_store
from storage_node.engine import INLINE_BODY_LIMIT
from storage_node.errors import BlobMissing
from storage_node.settings import Settings
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Endpoint, moto_s3
from tests.unit.storage_node.fixtures import USER, mid, raw_mail
from tests.unit.storage_node.test_replication_rpcs import Running, run
from tidings.v1 import storage_pb2


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        yield endpoint


_buckets = iter(range(10**6))


@pytest.fixture
def bucket(s3: S3Endpoint) -> str:
    return s3.bucket(f"unit-blobs-{next(_buckets)}")


def big_raw(tag: str) -> bytes:
    raw = raw_mail(f"big {tag}", "x" * 70 + "\n")
    return raw + tag.encode() * ((INLINE_BODY_LIMIT + 5000) // len(tag))


def test_put_get_list_modified_delete(s3: S3Endpoint, bucket: str) -> None:
    store = S3BlobStore(bucket, s3.url, region=REGION, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    data = b"attachment " * 1000
    ref = store.put(data)
    assert ref == hashlib.sha256(data).hexdigest()
    assert s3.keys(bucket) == {f"blobs/{ref}"}
    assert store.get(ref) == data
    [(listed, modified)] = list(store.objects())
    assert listed == ref and abs(modified - time.time()) < 5
    assert store.modified(ref) == modified
    assert store.put(data) == ref and len(list(store.objects())) == 1  # content-addressed: one object
    store.delete(ref)
    assert store.modified(ref) is None and s3.keys(bucket) == set()
    with pytest.raises(BlobMissing):
        store.get(ref)


def test_settings_switch_to_s3_with_credentials_from_the_environment(
        s3: S3Endpoint, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(blob_store(tmp_path, Settings.parse([])), LocalBlobStore)
    for name, value in s3.env(bucket).items():
        monkeypatch.setenv(name, value)
    settings = Settings.parse([])
    assert SECRET_KEY not in repr(settings) and ACCESS_KEY not in repr(settings)
    store = blob_store(tmp_path, settings)
    assert isinstance(store, S3BlobStore) and store.bucket == bucket
    credentials = store.client._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key) == (ACCESS_KEY, SECRET_KEY)
    assert store.client.meta.region_name == REGION
    assert store.get(store.put(b"through the settings")) == b"through the settings"
    with pytest.raises(SystemExit):  # no flag for a secret: it would show in `ps`
        Settings.parse(["--s3-secret-key", "x"])


def test_a_large_message_is_in_the_bucket_before_its_batch(s3: S3Endpoint, bucket: str, tmp_path: Path) -> None:
    settings = Settings(hint_interval_s=3600, gc_interval_s=3600, s3_bucket=bucket, s3_endpoint=s3.url,
                        s3_region=REGION, s3_access_key=ACCESS_KEY, s3_secret_key=SECRET_KEY)
    broken = settings.model_copy(update={"s3_bucket": "no-such-bucket"})
    raw = big_raw("s3-unit")
    request = storage_pb2.StoreMessageRequest(user_id=USER, id=mid(1), raw=raw, folder_id="inbox", unread=True,
                                              received_ms=1000, version=1)

    async def body() -> None:
        async with Running(tmp_path, "a", settings=broken) as node:
            with pytest.raises(grpc.aio.AioRpcError):
                await node.stub.StoreMessage(request)
            with pytest.raises(grpc.aio.AioRpcError) as missing:  # the put failed: no record refers to nothing
                await node.stub.GetMessage(storage_pb2.NodeMessageRef(user_id=USER, id=mid(1)))
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        async with Running(tmp_path, "a", settings=settings) as node:
            stored = await node.stub.StoreMessage(request)
            assert stored.created
            assert s3.keys(bucket) == {f"blobs/{hashlib.sha256(raw).hexdigest()}"}
            held = await node.stub.GetMessage(storage_pb2.NodeMessageRef(user_id=USER, id=mid(1)))
            assert held.raw == raw

    run(body)


class SlowStore(LocalBlobStore):
    def put(self, data: bytes) -> str:
        time.sleep(1.0)   # a slow S3 PUT, blocking as boto3's calls do
        return super().put(data)

    def get(self, ref: str) -> bytes:
        time.sleep(1.0)
        return super().get(ref)


def test_slow_object_store_calls_leave_the_event_loop_free(tmp_path: Path) -> None:
    raw = big_raw("slow")

    async def body() -> None:
        async with Running(tmp_path, "a") as node:
            node.node.engine.blobs = SlowStore(tmp_path / "slow")
            store = storage_pb2.StoreMessageRequest(user_id=USER, id=mid(2), raw=raw, folder_id="inbox",
                                                    unread=True, received_ms=1000, version=1)
            for call in (lambda: node.stub.StoreMessage(store),
                         lambda: node.stub.GetMessage(storage_pb2.NodeMessageRef(user_id=USER, id=mid(2)))):
                task = asyncio.ensure_future(call())
                ticks, worst, last = 0, 0.0, time.monotonic()
                while not task.done():
                    await asyncio.sleep(0.01)
                    now = time.monotonic()
                    worst, last, ticks = max(worst, now - last), now, ticks + 1
                assert (await task) is not None
                assert ticks > 20 and worst < 0.5, f"the loop stalled {worst:.2f} s during a blob call"

    run(body)
