"""What tests/deploy reads from deploy/: the compose file, the Kubernetes manifests, the
Tidings containers in them (the module each runs, its environment, its ports), the settings
class of each module and the ports CONTRACT.md names."""
from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from http_edge.settings import Settings as HttpSettings
from imap_edge.settings import Settings as ImapSettings
from router.settings import Settings as RouterSettings
from smtp_edge.config import Settings as SmtpSettings
from smtp_edge.outbound.settings import Settings as OutboundSettings
from storage_node.settings import Settings as StorageSettings
from tidings_cli.cluster import Layout
from tidings_runtime.settings import TidingsSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
CONTRACT = ROOT.parent / "shared" / "CONTRACT.md"

SETTINGS: dict[str, type[TidingsSettings]] = {
    "storage_node": StorageSettings, "router": RouterSettings, "smtp_edge": SmtpSettings,
    "smtp_edge.outbound": OutboundSettings, "http_edge": HttpSettings, "imap_edge": ImapSettings,
}


@dataclass
class Container:
    """One container of the Tidings image: where it is declared, the module it runs
    (`python -m MODULE`), its flags, its TIDINGS_* environment and its container ports."""

    where: str
    module: str
    flags: list[str]
    env: dict[str, str]
    ports: list[int]
    config_maps: list[str] = field(default_factory=list)


def k8s_documents() -> list[dict[str, Any]]:
    """Every resource the kustomization lists, in order."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"]
            for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def _run(argv: list[str]) -> tuple[str, list[str], dict[str, str]]:
    """The module, flags and inline TIDINGS_* assignments of a command (`sh -c "... exec python -m X"` too)."""
    if argv[:2] == ["sh", "-c"]:
        argv = shlex.split(argv[2])
    inline = {}
    while argv and re.fullmatch(r"TIDINGS_[A-Z0-9_]+=.*", argv[0]):
        name, _, value = argv.pop(0).partition("=")
        inline[name] = value
    if argv and argv[0] == "exec":
        argv = argv[1:]
    assert argv[:2] == ["python", "-m"], f"not a `python -m MODULE` command: {argv}"
    return argv[2], argv[3:], inline


def k8s_containers() -> Iterator[Container]:
    for doc in k8s_documents():
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for spec in doc["spec"]["template"]["spec"]["containers"]:
            if spec["image"] != "tidings":
                continue
            module, flags, inline = _run(spec["command"])
            env = {e["name"]: e.get("value", "") for e in spec.get("env", ())}
            maps = [s["configMapRef"]["name"] for s in spec.get("envFrom", ()) if "configMapRef" in s]
            yield Container(f"k8s {doc['metadata']['name']}/{spec['name']}", module, flags, {**env, **inline},
                            [p["containerPort"] for p in spec.get("ports", ())], maps)


def compose_containers() -> Iterator[Container]:
    for name, service in compose()["services"].items():
        if service.get("image") != "tidings:latest" or "entrypoint" in service:
            continue
        module, flags, inline = _run(service["command"])
        env = {k: str(v) for k, v in service.get("environment", {}).items()}
        yield Container(f"compose {name}", module, flags, {**env, **inline}, [])


# CONTRACT.md's "Ports" table, its first column as written there: CONTRACT.md lives beside the
# repository (../shared), which a clone elsewhere (CI's) does not have; test_manifests checks
# this copy against it wherever it is there.
CONTRACT_PORT_CELLS = ("2525", "2587", "8080", "2143 / 2993", "2110", "7000", "7101-7103", "9100-9199")


def contract_port_cells() -> list[str]:
    """The first column of CONTRACT.md's "Ports" table (FileNotFoundError without ../shared)."""
    table = CONTRACT.read_text().split("## Ports", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| ([\d\- /]+) \|", table, re.MULTILINE)


def contract_ports() -> set[int]:
    """The ports of CONTRACT.md's "Ports" table (ranges and `a / b` expanded), and the spare
    storage nodes' 7104-7105 that tidings_cli.cluster.Layout adds to 7101-7103."""
    ports: set[int] = set()
    for cell in CONTRACT_PORT_CELLS:
        for part in cell.split("/"):
            low, _, high = part.strip().partition("-")
            ports.update(range(int(low), int(high or low) + 1))
    return ports | set(Layout.default(Path("var")).storage_ports)
