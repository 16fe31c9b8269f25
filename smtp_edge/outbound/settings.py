"""Settings of the delivery worker (`python -m smtp_edge.outbound`), on the shared settings
base: a flag wins over its `TIDINGS_*` variable, which wins over the default."""
from __future__ import annotations

import os
import socket
from typing import Annotated

from pydantic import AfterValidator, Field, PositiveInt

from smtp_edge.outbound.delivery import Relay, Timeouts
from smtp_edge.outbound.retry import DEFAULT_LIFETIME, DEFAULT_SCHEDULE, RetrySchedule
from tidings_runtime.dns import Resolvers, parse_resolvers
from tidings_runtime.settings import Duration, HostPort, MetricsPort, Port, Seconds, ServerSettings, setting


def _schedule(value: str) -> str:
    RetrySchedule.parse(value)
    return value


class Settings(ServerSettings):
    """Tidings delivery worker: leases due items of the outgoing queue and delivers them over SMTP."""

    prog = "smtp_edge.outbound"

    router: HostPort = setting("127.0.0.1:7000", "TIDINGS_ROUTER", help="router gRPC address")
    hostname: str = setting(socket.getfqdn(), "TIDINGS_OUTBOUND_HOSTNAME",
                            help="our name in EHLO, Reporting-MTA and the worker id")
    dns: Resolvers = setting(
        None, "TIDINGS_DNS", help="resolvers IP:PORT[,IP:PORT] (none: the system's)")
    outbound_port: Port = setting(25, "TIDINGS_OUTBOUND_PORT", help="SMTP port of the MX hosts")
    retry_schedule: Annotated[str, AfterValidator(_schedule)] = setting(
        DEFAULT_SCHEDULE, "TIDINGS_RETRY_SCHEDULE", help="waits between attempts; the last repeats")
    queue_lifetime: Duration = setting(
        DEFAULT_LIFETIME, "TIDINGS_QUEUE_LIFETIME",
        help="how long a message is retried before it bounces (for items the router gave no expiry)")
    relayhost: HostPort | None = setting(None, "TIDINGS_RELAYHOST",
                                         help="smart host HOST:PORT taking all mail instead of MX lookup")
    relayhost_user: str | None = setting(None, "TIDINGS_RELAYHOST_USER", help="AUTH user at the smart host")
    relayhost_password: str | None = setting(None, "TIDINGS_RELAYHOST_PASSWORD", cli=False, secret=True,
                                             help="AUTH password at the smart host")
    lease_s: Seconds = setting(1200.0, "TIDINGS_OUTBOUND_LEASE_S",
                               help="seconds an item is ours; an attempt is cut off 30 s before")
    poll_interval_s: Seconds = setting(1.0, "TIDINGS_OUTBOUND_POLL_S", help="seconds between lease rounds")
    concurrency: PositiveInt = setting(16, "TIDINGS_OUTBOUND_CONCURRENCY", help="items delivered at once")
    host_concurrency: PositiveInt = setting(4, "TIDINGS_OUTBOUND_HOST_CONCURRENCY",
                                            help="sessions open at once to one MX host")
    timeout_scale: Annotated[float, Field(gt=0)] = setting(
        1.0, "TIDINGS_OUTBOUND_TIMEOUT_SCALE", help="multiplies the RFC 5321 4.5.3.2 SMTP timeouts")
    rpc_timeout: Seconds = setting(30.0, "TIDINGS_OUTBOUND_RPC_TIMEOUT", help="seconds for a call to the router")
    metrics_port: MetricsPort = setting(9106, "TIDINGS_OUTBOUND_METRICS_PORT", off_flag="--no-metrics",
                                        help="Prometheus /metrics port (0: any)")
    metrics_host: str = setting("127.0.0.1", "TIDINGS_OUTBOUND_METRICS_HOST", help="address of /metrics")

    @property
    def resolvers(self) -> list[tuple[str, int]] | None:
        return parse_resolvers(self.dns) if self.dns else None

    @property
    def schedule(self) -> RetrySchedule:
        return RetrySchedule.parse(self.retry_schedule)

    @property
    def lifetime_ms(self) -> int:
        return round(self.queue_lifetime * 1000)

    @property
    def relay(self) -> Relay | None:
        if self.relayhost is None:
            return None
        host, _, port = self.relayhost.rpartition(":")
        return Relay(host.strip("[]"), int(port), self.relayhost_user, self.relayhost_password)

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts().scaled(self.timeout_scale)

    @property
    def worker_id(self) -> str:
        return f"{self.hostname}:{os.getpid()}"
