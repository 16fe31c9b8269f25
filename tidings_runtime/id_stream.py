"""Requests and answers matched by id on one long-lived gRPC stream (the router's batch streams
to the nodes). The client distribution owns it, for its own `Mail.Calls` stream, and every part
reads it from here (as ids.py)."""
from __future__ import annotations

from tidings_client.id_stream import IdStream, rpc_error

__all__ = ["IdStream", "rpc_error"]
