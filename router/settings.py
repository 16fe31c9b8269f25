"""The router's settings: its address, the initial ring, the quorum (R + W > N), the
default domains."""
from __future__ import annotations

from typing import Annotated, Self

from pydantic import AfterValidator, BeforeValidator, Field, model_validator
from pydantic_settings import NoDecode

from router.ring import NodeInfo
from tidings_runtime.settings import Duration, HostPort, MetricsPort, Seconds, ServerSettings, setting, valid_host_port

DEFAULT_NODES = "1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103"


def parse_nodes(spec: str) -> list[NodeInfo]:
    """`1=127.0.0.1:7101@zone-a,2=...`: node id, address, optional zone."""
    nodes = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        node_id, _, rest = item.partition("=")
        address, _, zone = rest.partition("@")
        if not node_id:
            raise ValueError(f"{item!r} is not ID=HOST:PORT[@ZONE]")
        nodes.append(NodeInfo(node_id=node_id, address=valid_host_port(address), zone=zone or f"zone-{node_id}"))
    if not nodes:
        raise ValueError("no storage nodes")
    return nodes


def _comma_list(value: object) -> object:
    return [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else value


def _node_spec(spec: str) -> str:
    parse_nodes(spec)
    return spec


class Settings(ServerSettings):
    """Run a Tidings router."""

    prog = "router"

    listen: HostPort = setting("127.0.0.1:7000", "TIDINGS_ROUTER_LISTEN", help="gRPC address (port 0: any)")
    nodes: Annotated[str, AfterValidator(_node_spec)] = setting(
        DEFAULT_NODES, "TIDINGS_NODES", help="the initial ring: ID=HOST:PORT[@ZONE],...")
    n: int = setting(3, "TIDINGS_N", flags=["-n"], help="replicas of each partition", ge=1)
    w: int = setting(2, "TIDINGS_W", flags=["-w"], help="replicas a write waits for", ge=1)
    r: int = setting(2, "TIDINGS_R", flags=["-r"], help="replicas a read waits for", ge=1)
    timeout: Seconds = setting(5.0, "TIDINGS_QUORUM_TIMEOUT", help="seconds a replica call may take")
    coalesce: bool = setting(True, "TIDINGS_COALESCE",
                             help="send concurrent calls to one storage node as one Batch RPC")
    lookup_ttl: float = setting(60.0, "TIDINGS_LOOKUP_TTL", ge=0,
                                help="seconds a known account or hosted domain is kept without a read (0: none)")
    anti_entropy_interval: float = setting(
        600.0, "TIDINGS_ANTI_ENTROPY_INTERVAL_S", ge=0,
        help="seconds between scheduled anti-entropy passes (a node coming back starts one); 0: none")
    metrics_port: MetricsPort = setting(None, "TIDINGS_METRICS_PORT", off_flag="--no-metrics",
                                        help="Prometheus /metrics port (0: any)")
    domains: Annotated[list[str], NoDecode, BeforeValidator(_comma_list), Field(min_length=1)] = setting(
        ["example.test"], "TIDINGS_DOMAINS", flags=["--domain"], append=True,
        help="a domain hosted from the start (repeatable; env: comma-separated)")

    queue_lifetime: Duration = setting(
        "5d", "TIDINGS_QUEUE_LIFETIME",
        help="how long an outgoing message is retried before it bounces (30s, 5m, 5d, ...)")

    spam_threshold: float = setting(5.0, "TIDINGS_SPAM_THRESHOLD",
                                    help="a received message scoring this much goes to the recipient's Spam")
    reject_threshold: float = setting(10.0, "TIDINGS_REJECT_THRESHOLD",
                                      help="a received message scoring this much is refused (SMTP 550 5.7.1)")

    @model_validator(mode="after")
    def _thresholds(self) -> Self:
        if self.reject_threshold < self.spam_threshold:
            raise ValueError(f"the reject threshold ({self.reject_threshold}) is below the spam threshold "
                             f"({self.spam_threshold})")
        return self

    @model_validator(mode="after")
    def _quorum(self) -> Self:
        if self.w > self.n or self.r > self.n:
            raise ValueError(f"W ({self.w}) and R ({self.r}) must not exceed N ({self.n})")
        if self.r + self.w <= self.n:
            raise ValueError(f"R + W ({self.r} + {self.w}) must exceed N ({self.n}), "
                             "or a read may miss an acknowledged write")
        return self

    @property
    def ring_nodes(self) -> list[NodeInfo]:
        return parse_nodes(self.nodes)
