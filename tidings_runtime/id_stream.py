"""Requests and answers matched by id on one long-lived gRPC stream (the router's batch streams
to the nodes) and the calls the `Mail.Calls` stream carries. The client distribution owns both,
for its own `Mail.Calls` stream, and every part reads them from here (as ids.py)."""
from __future__ import annotations

from tidings_client.call_stream import CARRIED
from tidings_client.id_stream import IdStream, answered_error, rpc_error

__all__ = ["CARRIED", "IdStream", "answered_error", "rpc_error"]
