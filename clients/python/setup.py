"""The build of tidings-client: the `tidings.v1` stubs are generated in the build itself.

`pip install ./clients/python` (or `pip install -e clients/python`) runs
`proto/generate.py` of the repository this directory belongs to
(`clients/python/../../proto`) with grpcio-tools, a build requirement, before
setuptools collects the packages; the package's version is that generator's
`VERSION`. From an sdist (`python -m build`), which carries the generated code
and PKG-INFO but no proto/, the carried stubs are used as they are.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.egg_info import egg_info
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "proto"
GENERATOR = PROTO / "generate.py"
PKG_INFO = HERE / "PKG-INFO"  # only in an unpacked sdist


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tidings_proto_generate", GENERATOR)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _from_sdist() -> bool:
    return not GENERATOR.is_file() and PKG_INFO.is_file() and (HERE / "tidings" / "__init__.py").is_file()


def _missing_proto() -> SystemExit:
    return SystemExit(
        f"tidings-client: the protos are not there: {PROTO} (clients/python/../../proto) has no generate.py.\n"
        "Build this package from a checkout of the Tidings repository (pip install ./clients/python), "
        "or from an sdist of it, which carries the generated code."
    )


def _version() -> str:
    if _from_sdist():
        match = re.search(r"^Version: (\S+)$", PKG_INFO.read_text(), re.M)
        assert match, f"no Version in {PKG_INFO}"
        return match.group(1)
    if not GENERATOR.is_file():
        raise _missing_proto()
    return str(_generator().VERSION)


def _packages() -> list[str]:
    if _from_sdist():
        generated = sorted({".".join(p.parent.relative_to(HERE).parts) for p in (HERE / "tidings").rglob("__init__.py")})
    else:
        generated = _generator().python_packages()
    return [*generated, "tidings_client"]


_generated = False


def generate_stubs() -> None:
    """Write the stubs into this directory (once per build), where `make proto` writes them too."""
    global _generated
    if _generated or _from_sdist():
        return
    if not GENERATOR.is_file():
        raise _missing_proto()
    _generator().refresh(HERE)
    _generated = True


class GeneratingBuildPy(build_py):
    def run(self) -> None:
        generate_stubs()
        super().run()


class GeneratingEggInfo(egg_info):
    # egg_info runs first in every build (metadata, wheel, editable, sdist) and lists the sources
    def run(self) -> None:
        generate_stubs()
        super().run()


class GeneratingSdist(sdist):
    def run(self) -> None:
        generate_stubs()
        super().run()


setup(
    version=_version(),
    packages=_packages(),
    package_data={"": ["*.pyi", "py.typed"]},
    cmdclass={"build_py": GeneratingBuildPy, "egg_info": GeneratingEggInfo, "sdist": GeneratingSdist},
)
