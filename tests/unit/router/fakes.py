"""Fakes shared by the router's unit tests."""
from __future__ import annotations

from typing import Any

from router.nodes import NodePool
from router.ring import NodeInfo


class StubPool(NodePool):
    """A NodePool whose stub for a node is the fake object given for its id."""

    def __init__(self, stubs: dict[str, Any]) -> None:
        super().__init__()
        self.nodes = stubs

    def stub(self, node: NodeInfo) -> Any:
        return self.nodes[node.node_id]
