"""Start and stop the router: build the ring from the node list, serve Mail and Admin."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from router.anti_entropy import AntiEntropy
from router.coordinator import Coordinator
from router.directory import Directory
from router.errors import RouterError
from router.membership import Membership
from router.nodes import NodePool
from router.replicas import Consistency, Replicas
from router.ring import NodeInfo, Ring
from router.ring_keeper import RingKeeper
from router.service import AdminService, MailService
from router.settings import Settings
from tidings.v1 import mail_pb2, mail_pb2_grpc
from tidings_runtime.grpc_server import Mounted, serve
from tidings_runtime.hlc import HybridLogicalClock
from tidings_runtime.periodic import Periodic

log = logging.getLogger("router")


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


async def run(listen: str, nodes: list[NodeInfo], consistency: Consistency, metrics_port: int | None,
              domains: list[str], anti_entropy_interval: float, ready_file: Path | None = None) -> None:
    clock = HybridLogicalClock()
    pool = NodePool()
    replicas = Replicas(Ring(nodes), pool, consistency)
    keeper = RingKeeper(replicas)
    anti_entropy = AntiEntropy(replicas, anti_entropy_interval)
    replicas.detector.on_up(lambda node: anti_entropy.soon())
    membership = Membership(replicas, keeper, anti_entropy)
    directory = Directory(replicas, clock)
    coordinator = Coordinator(replicas, directory, clock)
    background = Periodic()
    setup: list[asyncio.Task[None]] = []
    services = [
        Mounted(mail_pb2_grpc.add_MailServicer_to_server, MailService(coordinator, directory),
                mail_pb2.DESCRIPTOR.services_by_name["Mail"].full_name),
        Mounted(mail_pb2_grpc.add_AdminServicer_to_server, AdminService(directory, replicas, anti_entropy, membership),
                mail_pb2.DESCRIPTOR.services_by_name["Admin"].full_name),
    ]

    async def start() -> None:
        await keeper.sync()  # serve the newest ring map the nodes hold (a node may have joined)
        setup.append(asyncio.create_task(ensure_domains(directory, domains)))
        background.every("ring-sync", keeper.interval, keeper.sync)
        background.every("heartbeat", replicas.detector.interval,
                         lambda: replicas.detector.probe_all(serving_nodes(replicas)), immediately=True)
        if anti_entropy.schedule is not None:
            background.start(anti_entropy.schedule)

    async def stop() -> None:
        for task in setup:
            task.cancel()
        await background.stop()
        await pool.close()

    await serve(services, listen, metrics_port, "router", on_start=start, on_stop=stop, ready_file=ready_file)


def main(argv: list[str] | None = None) -> None:
    settings = Settings.load(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s router %(levelname)s %(message)s")
    consistency = Consistency(n=settings.n, w=settings.w, r=settings.r, timeout=settings.timeout)
    asyncio.run(run(settings.listen, settings.ring_nodes, consistency, settings.metrics_port, settings.domains,
                    settings.anti_entropy_interval, settings.ready_file))
