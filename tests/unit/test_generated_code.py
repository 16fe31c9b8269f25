"""Generated code is produced by `make` from proto/; this fails when it is stale."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "clients" / "python"


def _generator():
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["proto_generate"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    fresh = _generator().generate(tmp_path)
    assert fresh, "no code generated"
    for path in fresh:
        relative = path.relative_to(tmp_path)
        current = GENERATED / relative
        assert current.exists(), f"{relative} missing: run `make proto`"
        assert current.read_bytes() == path.read_bytes(), f"{relative} is stale: run `make proto`"
