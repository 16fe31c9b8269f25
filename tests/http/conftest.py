"""Fixtures for HTTP tests against the shared real-process grid: a client of its HTTP edge,
and a login that turns a user's address into an Authorization header."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.cluster.grid import PASSWORD, Grid

Login = Callable[[str], dict[str, str]]


@pytest.fixture(scope="module")
def http(grid: Grid) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=grid.http_url, timeout=30) as client:
        yield client


@pytest.fixture
def login(http: httpx.Client) -> Login:
    """email -> Authorization header."""

    def do(email: str) -> dict[str, str]:
        r = http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    return do
