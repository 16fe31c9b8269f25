"""Schemathesis over `/openapi.json` of the real HTTP edge (the shared `grid`), as a signed-in
user with some mail: for every route, generated requests (valid and not) must get no 5xx, a
status the route documents, and a body of the documented content type and schema.

Bounded for `make test`: a few examples per route (about 20-30 s in all). For a long run:
`.venv/bin/schemathesis run URL/openapi.json -H 'Authorization: Bearer TOKEN' --max-time 600`
against `make run`.
"""
from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from http_edge.app import create_app
from http_edge.settings import Settings
from tests.cluster.grid import PASSWORD, Grid

pytestmark = pytest.mark.timeout(180)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MAX_EXAMPLES = 60  # per route and mode; ~25 s in all against the grid

_users = itertools.count(1)


@pytest.fixture(scope="module")
def auth(grid: Grid) -> Iterator[dict[str, str]]:
    """A fresh user with a message (with an attachment) in their inbox and Sent; their header."""
    email = f"fuzz{next(_users)}@example.test"
    grid.add_user(email)
    with httpx.Client(base_url=grid.http_url, timeout=30) as http:
        r = http.post("/v1/auth/token", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        header = {"Authorization": f"Bearer {r.json()['token']}"}
        r = http.post("/v1/messages", headers=header, json={
            "to": [email], "subject": "seed", "text": "hello", "html": "<p>hello</p>",
            "attachments": [{"filename": "a.txt", "content_type": "text/plain",
                             "content_base64": base64.b64encode(b"abc").decode()}],
        })
        assert r.status_code == 202, r.text
    yield header


def _spec() -> dict[str, Any]:
    return create_app(Settings(token_secret=b"k" * 32)).openapi()


# The spec of this code, read here to name one test per route; the grid's edge serves the same
# (test_grid_serves_this_spec), and the requests go to it.
SCHEMA = schemathesis.openapi.from_dict(_spec())
# (an endless stream, GET /v1/events, is left to tests/http/test_events.py)
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())
              if "text/event-stream" not in op.definition.raw["responses"].get("200", {}).get("content", {})}
# (route, mode): invalid input only for routes that take some
CASES = [(label, mode) for label, op in sorted(OPERATIONS.items())
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode is GenerationMode.POSITIVE or op.path_parameters or op.query or op.body]


def test_grid_serves_this_spec(grid: Grid) -> None:
    assert httpx.get(f"{grid.http_url}/openapi.json", timeout=30).json() == _spec()


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{label} {mode.value}" for label, mode in CASES])
def test_openapi_conformance(label: str, mode: GenerationMode, grid: Grid, auth: dict[str, str]) -> None:
    @given(case=OPERATIONS[label].as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=grid.http_url, headers=auth, checks=CHECKS, timeout=30)

    check()
