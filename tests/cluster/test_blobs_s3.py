"""Blobs in S3 on a real cluster: three storage node processes keep large bodies in a bucket
of moto's S3 server (HTTP on a loopback port 0), with credentials from TIDINGS_S3_*.
A message with a large attachment reads back byte for byte over the API and its object is in
the bucket; `tidings blobs gc` deletes the blob of a message expunged on every replica once
the grace has passed, keeps a blob shared with a live message, and sweeps nothing while a
node is down (then, with the node back, sweeps). The collecting node reaches the bucket with
its own settings: the command holds no credentials."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import SMTP

import grpc
import pytest

from storage_node.engine import INLINE_BODY_LIMIT
from tests.cluster.grid import Grid, running
from tests.s3_server import REGION, SECRET_KEY, S3Endpoint, moto_s3
from tidings.v1 import mail_pb2, storage_pb2, storage_pb2_grpc
from tidings_runtime.ids import new_entry_id

BUCKET = "tidings-cluster-blobs"
GRACE_S = 0.5


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        endpoint.bucket(BUCKET)
        yield endpoint


@pytest.fixture(scope="module")
def s3_grid(s3: S3Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    flags = ("--s3-bucket", BUCKET, "--s3-endpoint", s3.url, "--s3-region", REGION)
    with pytest.MonkeyPatch.context() as env:   # the nodes inherit the credentials, never as flags
        env.setenv("TIDINGS_S3_ACCESS_KEY", s3.env(BUCKET)["TIDINGS_S3_ACCESS_KEY"])
        env.setenv("TIDINGS_S3_SECRET_KEY", SECRET_KEY)
        with running(tmp_path_factory.mktemp("s3grid"), edges=(),
                     args={f"storage-{i}": flags for i in (1, 2, 3)}) as grid:
            yield grid


_users = iter(range(10**6))


@pytest.fixture
def user(s3_grid: Grid) -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        email = f"s3user{next(_users)}@example.test"
        return email, s3_grid.add_user(email).user_id
    return make


def with_attachment(to: str, tag: str) -> bytes:
    message = EmailMessage()
    message["From"] = "Sender <sender@outside.test>"
    message["To"] = to
    message["Subject"] = f"the scans ({tag})"
    message.set_content("Attached.\n")
    payload = hashlib.sha256(tag.encode()).digest() * ((INLINE_BODY_LIMIT + 100_000) // 32)
    message.add_attachment(payload, maintype="application", subtype="octet-stream", filename=f"{tag}.bin")
    raw = message.as_bytes(policy=SMTP)
    assert len(raw) > INLINE_BODY_LIMIT
    return raw


def deliver(grid: Grid, raw: bytes, *emails: str) -> None:
    grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=raw, recipients=list(emails)), timeout=30)


def inbox_id(grid: Grid, user_id: str) -> str:
    page = grid.mail.ListMessages(mail_pb2.ListMessagesRequest(user_id=user_id, folder_id="inbox"), timeout=30)
    [message] = page.messages
    return str(message.id)


def expunge(grid: Grid, user_id: str, message_id: str) -> None:
    """Delete twice: to Trash, then for good."""
    ref = mail_pb2.MessageRef(user_id=user_id, id=message_id)
    assert not grid.mail.DeleteMessage(ref, timeout=30).expunged
    assert grid.mail.DeleteMessage(ref, timeout=30).expunged


def wait_tombstoned(grid: Grid, user_id: str, message_id: str, nodes: tuple[int, ...] = (1, 2, 3)) -> None:
    """Until every named replica holds the message's tombstone (hints may take a moment)."""
    deadline = time.monotonic() + 30
    for i in nodes:
        with grpc.insecure_channel(grid.layout.storage_address(i)) as channel:
            stub = storage_pb2_grpc.StorageNodeStub(channel)
            while True:
                try:
                    held = stub.GetMessage(storage_pb2.NodeMessageRef(user_id=user_id, id=message_id), timeout=10)
                    if held.tombstone:
                        break
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.NOT_FOUND:
                        raise
                assert time.monotonic() < deadline, f"node {i} never held the tombstone of {message_id}"
                time.sleep(0.1)


def key(raw: bytes) -> str:
    return f"blobs/{hashlib.sha256(raw).hexdigest()}"


def blobs_gc(grid: Grid, s3: S3Endpoint, *flags: str) -> subprocess.CompletedProcess[str]:
    time.sleep(GRACE_S + 1.5)   # past the grace, and past S3's one-second LastModified
    done = subprocess.run([sys.executable, "-m", "tidings_cli", "--router", grid.router_address, "blobs", "gc",
                           "--grace-s", str(GRACE_S), "-v", *flags], capture_output=True, text=True, timeout=120)
    assert SECRET_KEY not in done.stdout + done.stderr
    return done


def test_a_large_attachment_is_one_object_in_s3_and_reads_back(s3_grid: Grid, s3: S3Endpoint,
                                                              user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    raw = with_attachment(email, "read-back")
    deliver(s3_grid, raw, email)
    message_id = inbox_id(s3_grid, user_id)
    answer = s3_grid.mail.GetRawMessage(mail_pb2.MessageRef(user_id=user_id, id=message_id), timeout=30)
    assert answer.raw == raw
    assert key(raw) in s3.keys(BUCKET)
    stored = s3.client.get_object(Bucket=BUCKET, Key=key(raw))["Body"].read()
    assert stored == raw
    local = s3_grid.layout.base_dir / "blobs"   # the directory store, unused
    assert not local.exists() or not any(path.is_file() for path in local.rglob("*"))


def test_gc_deletes_the_blob_of_a_message_expunged_everywhere_and_keeps_a_shared_one(
        s3_grid: Grid, s3: S3Endpoint, user: Callable[[], tuple[str, str]]) -> None:
    (alone_email, alone_id), (a_email, a_id), (b_email, b_id) = user(), user(), user()
    alone, shared = with_attachment(alone_email, "expunged"), with_attachment(a_email, "shared")
    deliver(s3_grid, alone, alone_email)
    deliver(s3_grid, shared, a_email, b_email)   # one raw for two users: one object
    alone_message, a_message = inbox_id(s3_grid, alone_id), inbox_id(s3_grid, a_id)
    assert {key(alone), key(shared)} <= s3.keys(BUCKET)

    expunge(s3_grid, alone_id, alone_message)
    expunge(s3_grid, a_id, a_message)            # b still holds the shared blob
    wait_tombstoned(s3_grid, alone_id, alone_message)
    wait_tombstoned(s3_grid, a_id, a_message)

    dry = blobs_gc(s3_grid, s3, "--dry-run")
    assert dry.returncode == 0 and "would delete" in dry.stdout, dry.stdout + dry.stderr
    assert hashlib.sha256(alone).hexdigest() in dry.stdout and key(alone) in s3.keys(BUCKET)
    done = blobs_gc(s3_grid, s3)
    assert done.returncode == 0, done.stdout + done.stderr
    assert hashlib.sha256(alone).hexdigest() in done.stdout and f"s3://{BUCKET}" in done.stdout
    keys = s3.keys(BUCKET)
    assert key(alone) not in keys and key(shared) in keys
    b_message = inbox_id(s3_grid, b_id)
    assert s3_grid.mail.GetRawMessage(mail_pb2.MessageRef(user_id=b_id, id=b_message), timeout=30).raw == shared


def test_a_node_down_means_nothing_is_swept(s3_grid: Grid, s3: S3Endpoint, user: Callable[[], tuple[str, str]]) -> None:
    email, user_id = user()
    raw = with_attachment(email, "while-down")
    deliver(s3_grid, raw, email)
    message_id = inbox_id(s3_grid, user_id)
    expunge(s3_grid, user_id, message_id)
    wait_tombstoned(s3_grid, user_id, message_id)
    s3_grid.kill_storage(3)
    try:
        refused = blobs_gc(s3_grid, s3)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "not swept: nodes 3 did not answer; nothing deleted" in refused.stderr
        assert key(raw) in s3.keys(BUCKET)
    finally:
        s3_grid.start_storage(3)
    done = blobs_gc(s3_grid, s3)
    assert done.returncode == 0, done.stdout + done.stderr
    assert key(raw) not in s3.keys(BUCKET)
