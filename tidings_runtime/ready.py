"""The ready file: once a process serves, it writes the ports it bound there as JSON
(`{"grpc": 7101, "metrics": 9101}`), atomically, so whoever started it with port 0
learns the real ports without racing for a free one."""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_ready(path: Path | None, ports: dict[str, int | None]) -> None:
    """Write `ports` (those that are not None) to `path`, if there is one."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps({name: port for name, port in ports.items() if port is not None}))
    os.replace(temporary, path)


def read_ready(path: Path) -> dict[str, int] | None:
    """The ports a ready file holds, or None while it is not written."""
    try:
        return {name: int(port) for name, port in json.loads(path.read_text()).items()}
    except FileNotFoundError:
        return None
