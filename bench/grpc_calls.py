"""What a round trip costs in grpc.aio between two processes: a unary call (the baseline: what
a `StorageNode.Batch` RPC is) against a message each way on an open bidirectional stream (what a
batch on `StorageNode.Batches` is, router/batch_stream.py). CPU a round trip from `/proc` for the
server and `time.process_time` for the client, the same payload, the same concurrency.

Run: python -m bench.grpc_calls [--calls N] [--callers C] [--payload BYTES]
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

TICK = os.sysconf("SC_CLK_TCK")


def _same(value: bytes) -> bytes:
    return value


async def _echo(request: bytes, context: Any) -> bytes:
    return request


async def _echo_stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request


def _serve(ports: Any) -> None:
    async def main() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {
            "Unary": grpc.unary_unary_rpc_method_handler(_echo, _same, _same),
            "Stream": grpc.stream_stream_rpc_method_handler(_echo_stream, _same, _same)}),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        ports.put(port)
        await server.wait_for_termination()
    asyncio.run(main())


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def _measure(pid: int, calls: int, callers: int, caller: Callable[[int], Awaitable[None]]
                   ) -> tuple[float, float, float]:
    """(client ms, server ms, round trips a second) a round trip, `callers` at once."""
    await caller(100)                                  # warm: channel, stream, code paths
    client, server, wall = time.process_time(), _cpu(pid), time.perf_counter()
    await asyncio.gather(*(caller(calls // callers) for _ in range(callers)))
    done = calls // callers * callers
    return ((time.process_time() - client) * 1000 / done, (_cpu(pid) - server) * 1000 / done,
            done / (time.perf_counter() - wall))


async def _run(port: int, pid: int, calls: int, callers: int, payload: bytes) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        unary = channel.unary_unary("/bench.Echo/Unary", _same, _same)
        stream = channel.stream_stream("/bench.Echo/Stream", _same, _same)

        async def unary_calls(n: int) -> None:
            for _ in range(n):
                await unary(payload)

        async def stream_messages(n: int) -> None:
            call = stream()
            for _ in range(n):
                await call.write(payload)
                await call.read()
            await call.done_writing()

        rows = [("unary call (baseline)", await _measure(pid, calls, callers, unary_calls)),
                ("stream message", await _measure(pid, calls, callers, stream_messages))]
    print(f"grpc.aio round trips, {calls} of {len(payload)} B, {callers} at once, two processes")
    print(f"{'kind':<24} {'client ms':>10} {'server ms':>10} {'a second':>9}")
    for name, (client, server, rate) in rows:
        print(f"{name:<24} {client:>10.3f} {server:>10.3f} {rate:>9.0f}")
    (uc, us, _), (sc, ss, _) = rows[0][1], rows[1][1]
    print(f"stream / unary CPU a round trip: client {sc / uc:.2f}x, server {ss / us:.2f}x")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--payload", type=int, default=200)
    args = parser.parse_args(argv)
    ports: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(ports,), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        assert server.pid is not None
        asyncio.run(_run(port, server.pid, args.calls, args.callers, b"x" * args.payload))
    finally:
        server.kill()


if __name__ == "__main__":
    main()
