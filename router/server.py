"""Start and stop the router: build the ring from the node list, serve Mail, Admin and Queue."""
from __future__ import annotations

import asyncio
import logging

from router.anti_entropy import AntiEntropy
from router.change_feed import ChangeFeed
from router.coordinator import Coordinator
from router.directory import Directory
from router.dkim_keys import DkimKeys
from router.errors import RouterError
from router.mailbox_order import MailboxOrder
from router.membership import Membership
from router.nodes import NodePool
from router.queue import OutboundQueue
from router.queue_service import QueueService
from router.replicas import Consistency, Replicas
from router.ring import NodeInfo, Ring
from router.ring_keeper import RingKeeper
from router.service import AdminService, MailService
from router.settings import Settings
from router.spam import SpamFilter
from tidings.v1 import mail_pb2, mail_pb2_grpc, queue_pb2, queue_pb2_grpc
from tidings_runtime import event_loop, logs
from tidings_runtime.grpc_server import Mounted, serve
from tidings_runtime.hlc import HybridLogicalClock
from tidings_runtime.periodic import Periodic

log = logging.getLogger("router")

QUEUE_METRICS_INTERVAL_S = 15.0   # queue depth and oldest item age, for dashboards and alerts


async def ensure_domains(directory: Directory, domains: list[str]) -> None:
    """Host the default domains once enough storage nodes answer (retried until then)."""
    for domain in domains:
        while True:
            try:
                await directory.add_domain(domain)
                break
            except RouterError as exc:
                log.info("default domain %s not yet written: %s", domain, exc)
                await asyncio.sleep(0.5)


def serving_nodes(replicas: Replicas) -> list[NodeInfo]:
    """The nodes of the ring served, and of the ring being moved to."""
    pending = replicas.pending.nodes if replicas.pending is not None else ()
    return list(dict.fromkeys([*replicas.ring.nodes, *pending]))


async def _follow(feed: ChangeFeed, replicas: Replicas) -> None:
    feed.follow(serving_nodes(replicas))


async def run(settings: Settings) -> None:
    consistency = Consistency(n=settings.n, w=settings.w, r=settings.r, timeout=settings.timeout)
    clock = HybridLogicalClock()
    pool = NodePool(settings.coalesce)
    replicas = Replicas(Ring(settings.ring_nodes), pool, consistency)
    keeper = RingKeeper(replicas)
    anti_entropy = AntiEntropy(replicas, settings.anti_entropy_interval)
    replicas.detector.on_up(lambda node: anti_entropy.soon())
    membership = Membership(replicas, keeper, anti_entropy)
    directory = Directory(replicas, clock, settings.lookup_ttl)
    queue = OutboundQueue(directory, int(settings.queue_lifetime * 1000))
    spam = SpamFilter(replicas, directory, settings.spam_threshold, settings.reject_threshold)
    feed = ChangeFeed(replicas)
    order = MailboxOrder(replicas, on_applied=feed.moved, adopt_ring=keeper.adopt)
    coordinator = Coordinator(replicas, directory, clock, queue, spam, order)
    dkim = DkimKeys(directory)
    background = Periodic()
    setup: list[asyncio.Task[None]] = []
    services = [
        Mounted(mail_pb2_grpc.add_MailServicer_to_server, MailService(coordinator, directory, feed),
                mail_pb2.DESCRIPTOR.services_by_name["Mail"].full_name),
        Mounted(mail_pb2_grpc.add_AdminServicer_to_server,
                AdminService(directory, replicas, anti_entropy, membership, dkim),
                mail_pb2.DESCRIPTOR.services_by_name["Admin"].full_name),
        Mounted(queue_pb2_grpc.add_QueueServicer_to_server, QueueService(queue, dkim),
                queue_pb2.DESCRIPTOR.services_by_name["Queue"].full_name),
    ]

    async def start() -> None:
        await keeper.sync()  # serve the newest ring map the nodes hold (a node may have joined)
        setup.append(asyncio.create_task(ensure_domains(directory, settings.domains)))
        background.every("queue-metrics", QUEUE_METRICS_INTERVAL_S, queue.measure)
        background.every("ring-sync", keeper.interval, keeper.sync)
        background.every("order-notices", keeper.interval, lambda: _follow(feed, replicas), immediately=True)
        background.every("heartbeat", replicas.detector.interval,
                         lambda: replicas.detector.probe_all(serving_nodes(replicas)), immediately=True)
        if anti_entropy.schedule is not None:
            background.start(anti_entropy.schedule)

    async def stop() -> None:
        for task in setup:
            task.cancel()
        await background.stop()
        await feed.stop()
        await pool.close()

    await serve(services, settings.listen, settings.metrics_port, "router", on_start=start, on_stop=stop,
                ready_file=settings.ready_file)


def main(argv: list[str] | None = None) -> None:
    settings = Settings.load(argv)
    logs.setup("router", settings.log_level, settings.log_format)
    event_loop.run(run(settings))
