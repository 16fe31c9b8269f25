"""Generate the Python gRPC code for every .proto under proto/ into one package tree.

The one generator of the stubs, run three ways:
- `make proto` (`python proto/generate.py clients/python`);
- the build of the client package, `clients/python/setup.py`, so that
  `pip install ./clients/python` from a fresh clone (or `pip install -e`) has them;
- `tests/unit/test_generated_code.py`, which calls `generate()` into a temporary
  directory and compares, so stale generated code fails the suite.

`VERSION` is the version of the contract these files describe, and so of the
`tidings-client` package (its setup.py reads it here): bump it with the protos.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = PROTO_ROOT.parent / "clients" / "python"

VERSION = "0.3.0"   # 0.3: Mail.Calls; 0.2: the mailbox order, folders, drafts, Batch, ImportMessage, IMAP cells, BlobGc


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def python_packages() -> list[str]:
    """The Python packages the generated code forms ("tidings", "tidings.v1")."""
    names: set[str] = set()
    for proto in proto_files():
        parts = proto.parent.relative_to(PROTO_ROOT).parts
        names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return sorted(names)


def generate(out_dir: Path) -> list[Path]:
    """Write *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every proto; return the files."""
    import grpc_tools  # a build requirement of the client, not of whoever reads VERSION
    from grpc_tools import protoc

    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(grpc_tools.__file__).parent / "_proto"
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed: {' '.join(args)}")
    for package in python_packages():
        init = out_dir.joinpath(*package.split("."), "__init__.py")
        if "." in package:
            init.touch()
        else:
            init.write_text(f'"""Generated from proto/ by proto/generate.py: do not edit."""\n__version__ = "{VERSION}"\n')
    written = sorted(p for p in out_dir.rglob("*") if p.suffix in {".py", ".pyi"})
    return written


def refresh(out_dir: Path) -> list[Path]:
    """Generate into `out_dir` in place: rewrite changed files, drop ones no proto makes any more."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.relative_to(tmp): p for p in generate(Path(tmp))}
        for package in {r.parts[0] for r in fresh}:
            for old in (out_dir / package).rglob("*"):
                if old.suffix in {".py", ".pyi"} and old.relative_to(out_dir) not in fresh:
                    old.unlink()
        for relative, path in fresh.items():
            target = out_dir / relative
            if not target.exists() or target.read_bytes() != path.read_bytes():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
    return sorted(out_dir / r for r in fresh)


if __name__ == "__main__":
    refresh(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
