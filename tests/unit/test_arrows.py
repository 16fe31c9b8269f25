"""The arrows of ../shared/ARCHITECTURE.md, checked on the source: edges -> client -> router ->
storage_node -> search_node, with tidings_runtime (shared, importing no part) and the
generated `tidings` stubs open to all. Any other import between parts fails here."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATED = "tidings"
RUNTIME = "tidings_runtime"

# part -> the other parts it may import (besides itself, the runtime and the generated stubs)
ALLOWED: dict[str, set[str]] = {
    RUNTIME: set(),
    "search_node": set(),
    "storage_node": {"search_node"},
    "router": set(),
    "tidings_client": set(),
    "smtp_edge": {"tidings_client"},
    "http_edge": {"tidings_client"},
    "imap_edge": {"tidings_client"},
    "tidings_cli": {"tidings_client"},
}
PARTS = set(ALLOWED)
SOURCES = {"tidings_client": ROOT / "clients" / "python" / "tidings_client"}


def _imported_parts(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {name.split(".")[0] for name in names} & (PARTS | {GENERATED})


def _modules(part: str) -> list[Path]:
    folder = SOURCES.get(part, ROOT / part)
    return sorted(folder.rglob("*.py")) if folder.is_dir() else []


@pytest.mark.parametrize("part", sorted(PARTS))
def test_a_part_imports_only_what_its_arrows_allow(part: str) -> None:
    allowed = ALLOWED[part] | {part, GENERATED} | ({RUNTIME} if part != RUNTIME else set())
    if part == RUNTIME:
        # the client distribution ships the wire contract: the stubs and the entry-id format
        allowed = {RUNTIME, GENERATED, "tidings_client"}
    wrong = {f"{path.relative_to(ROOT)} imports {other}"
             for path in _modules(part) for other in _imported_parts(path) - allowed}
    assert not wrong, sorted(wrong)


def test_every_part_has_modules() -> None:
    assert all(_modules(part) for part in PARTS - {"imap_edge"})
