"""Start and stop one storage node: open RocksDB and the object store, serve StorageNode."""
from __future__ import annotations

from pathlib import Path

from search_node.index import COLUMN_FAMILIES as SEARCH_COLUMN_FAMILIES
from storage_node.blob_gc import BlobGcService
from storage_node.blobs import blob_store
from storage_node.commit import GroupCommitter
from storage_node.engine import Engine
from storage_node.gc import collect_garbage
from storage_node.index_maintenance import IndexMaintainer
from storage_node.indexing import EmbeddedIndex
from storage_node.node_ops import NodeOpsService
from storage_node.service import StorageService
from storage_node.settings import Settings
from tidings.v1 import blobs_pb2, blobs_pb2_grpc, node_ops_pb2, node_ops_pb2_grpc, storage_pb2, storage_pb2_grpc
from tidings_runtime import event_loop, logs
from tidings_runtime.grpc_server import Mounted, serve
from tidings_runtime.periodic import Periodic


def open_engine(data_dir: Path, blob_dir: Path, settings: Settings) -> Engine:
    return Engine(data_dir, blob_store(blob_dir, settings), extra_column_families=SEARCH_COLUMN_FAMILIES,
                  index=EmbeddedIndex())


class StorageNode:
    """One node's parts (engine, group committer, servicer, background tasks), started and
    stopped in order around a gRPC server."""

    def __init__(self, node_id: str, data_dir: Path, blob_dir: Path, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.engine = open_engine(data_dir, blob_dir, self.settings)
        self.committer = GroupCommitter(self.engine)
        self.service = StorageService(self.engine, self.committer, node_id=node_id, settings=self.settings)
        store = f"s3://{self.settings.s3_bucket}" if self.settings.s3_bucket else str(blob_dir)
        self.blob_gc = BlobGcService(self.engine, node_id, self.settings.blob_grace_s, store)
        self.node_ops = NodeOpsService(self.engine, self.committer, node_id, data_dir)
        self._background = Periodic()
        self.index_maintainer = IndexMaintainer(self.engine, self.committer, self.service.search_index)
        if isinstance(self.engine.index, EmbeddedIndex):
            self.engine.index.on_added = self.index_maintainer.touched

    async def start(self) -> None:
        self.committer.start()
        await self.index_maintainer.resume()
        self._background.every("hint-replay", self.settings.hint_interval_s, self.service.hints.replay)
        self._background.every("garbage-collection", self.settings.gc_interval_s, self.collect_garbage)
        self._background.every("index-maintenance", self.settings.index_interval_s, self.index_maintainer.run_round)

    async def collect_garbage(self) -> None:
        await collect_garbage(self.engine, self.committer, self.service.hints, self.settings.grace_ms)

    async def stop(self) -> None:
        await self._background.stop()
        await self.service.peers.close()
        await self.committer.stop()
        self.engine.close()


MOUNT_NAME = storage_pb2.DESCRIPTOR.services_by_name["StorageNode"].full_name
BLOB_GC_NAME = blobs_pb2.DESCRIPTOR.services_by_name["BlobGc"].full_name
NODE_OPS_NAME = node_ops_pb2.DESCRIPTOR.services_by_name["NodeOps"].full_name


async def run(settings: Settings) -> None:
    node = StorageNode(settings.node_id, settings.data_dir, settings.blob_dir, settings)
    await serve([Mounted(storage_pb2_grpc.add_StorageNodeServicer_to_server, node.service, MOUNT_NAME),
                 Mounted(blobs_pb2_grpc.add_BlobGcServicer_to_server, node.blob_gc, BLOB_GC_NAME),
                 Mounted(node_ops_pb2_grpc.add_NodeOpsServicer_to_server, node.node_ops, NODE_OPS_NAME)],
                settings.listen, settings.metrics_port, f"storage_node {settings.node_id}",
                on_start=node.start, on_stop=node.stop, ready_file=settings.ready_file,
                on_stopping=node.service.closing.set)


def main(argv: list[str] | None = None) -> None:
    settings = Settings.load(argv)
    logs.setup("storage_node", settings.log_level, settings.log_format)
    event_loop.run(run(settings))
