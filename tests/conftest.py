"""Shared fixtures: one real cluster (3 storage nodes, router, SMTP and HTTP edges) for
the whole session, and a factory for tests that need a cluster of their own to break."""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from tests.cluster.grid import Grid, running

_users = itertools.count(1)


@pytest.fixture(scope="session")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    with running(tmp_path_factory.mktemp("grid")) as g:
        yield g


@pytest.fixture
def new_user(grid: Grid) -> Callable[[str], str]:
    """Create a user with a unique address on the shared grid; returns the address."""

    def make(prefix: str = "user") -> str:
        email = f"{prefix}{next(_users)}@example.test"
        grid.add_user(email)
        return email

    return make


@pytest.fixture(scope="module")
def own_grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    """A cluster for one module's fault tests, so killing nodes disturbs no one else."""
    with running(tmp_path_factory.mktemp("own-grid")) as g:
        yield g

