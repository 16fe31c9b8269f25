#!/opt/tidings/bin/python
"""The image's health probe (`tidings-health`): exit 0 when a gRPC server's grpc.health.v1
says SERVING, or an HTTP URL answers 2xx; else print why and exit 1.

    tidings-health 127.0.0.1:7101 [SERVICE]
    tidings-health http://127.0.0.1:8080/readyz
"""
from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check_grpc(address: str, service: str, timeout: float) -> str | None:
    """None when `service` at `address` is SERVING, else what it is instead."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            return f"{address}: {exc.code().name}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return None if reply.status == health_pb2.HealthCheckResponse.SERVING else f"{address}: {status}"


def check_http(url: str, timeout: float) -> str | None:
    """None when `url` answers 2xx, else its status or error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 (the operator's URL)
            return None if 200 <= reply.status < 300 else f"{url}: HTTP {reply.status}"
    except urllib.error.HTTPError as exc:
        return f"{url}: HTTP {exc.code}"
    except OSError as exc:
        return f"{url}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidings-health", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="HOST:PORT of a gRPC server, or an http:// URL")
    parser.add_argument("service", nargs="?", default="", help="gRPC service name (default: the server)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    args = parser.parse_args(argv)
    if args.target.startswith(("http://", "https://")):
        problem = check_http(args.target, args.timeout)
    else:
        problem = check_grpc(args.target, args.service, args.timeout)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
