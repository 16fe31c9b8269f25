"""A grpc.aio server on a loopback port for in-process tests: one servicer, started."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc


async def serve(add_servicer: Callable[[Any, grpc.aio.Server], None], servicer: Any,
                port: int = 0) -> tuple[grpc.aio.Server, int]:
    """The started server and its port (`port` 0: any free one; else that one, as after a restart)."""
    server = grpc.aio.server()
    add_servicer(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, bound
