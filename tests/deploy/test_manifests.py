"""deploy/'s compose file and Kubernetes manifests checked offline, so they cannot rot
silently: yamllint (deploy/.yamllint), the Kubernetes schemas (kubernetes-validate, strict),
the compose spec's schema (check-jsonschema's bundled copy), the shapes the runbook relies
on (StatefulSet with claims, zones, PDB, probes), every TIDINGS_* variable and flag accepted
by the settings class of the process it is given to, and every port one of CONTRACT.md's."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.deploy.manifests import (
    CONTRACT,
    CONTRACT_PORT_CELLS,
    DEPLOY,
    K8S,
    SETTINGS,
    Container,
    compose,
    compose_containers,
    contract_port_cells,
    contract_ports,
    k8s_containers,
    k8s_documents,
)
from tidings_cli.main import build_parser
from tidings_runtime.settings import TidingsSettings

K8S_VERSION = "1.33.0"  # the oldest Kubernetes the manifests are checked against (native gRPC probes: 1.27)


def test_yamllint_passes_over_deploy() -> None:
    config = YamlLintConfig(file=str(DEPLOY / ".yamllint"))
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert len(files) >= 10
    problems = [f"{path.relative_to(DEPLOY)}:{p.line}: {p.desc} ({p.rule})"
                for path in files for p in linter.run(path.read_text(), config, str(path))]
    assert not problems, "\n".join(problems)


def test_yamllint_catches_a_bad_file() -> None:
    config = YamlLintConfig(file=str(DEPLOY / ".yamllint"))
    assert list(linter.run("a: 1\na: 2\n", config))  # a duplicated key


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def test_every_resource_is_valid_for_kubernetes() -> None:
    documents = k8s_documents()
    assert {d["kind"] for d in documents} >= {"StatefulSet", "Deployment", "Service", "ConfigMap",
                                              "PodDisruptionBudget", "ServiceAccount", "ClusterRole"}
    for doc in documents:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kubernetes_validate_rejects_a_wrong_field() -> None:
    statefulset = next(d for d in k8s_documents() if d["kind"] == "StatefulSet")
    broken = {**statefulset, "spec": {**statefulset["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(path)], capture_output=True, text=True, timeout=120)


def test_compose_file_matches_the_compose_spec(tmp_path: Path) -> None:
    run = _check_compose(DEPLOY / "compose.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    bad = compose()
    bad["services"]["router"]["depends_on"] = 7
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(bad))
    assert _check_compose(tmp_path / "compose.yaml").returncode == 1


def _one(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name)


def test_storage_nodes_are_a_statefulset_with_a_claim_each_spread_across_zones() -> None:
    sts = _one("StatefulSet", "tidings-storage")
    assert sts["spec"]["replicas"] == 3
    assert _one("Service", sts["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    assert [c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]] == ["data"]
    pod = sts["spec"]["template"]["spec"]
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} >= {"topology.kubernetes.io/zone"}
    zone = next(c for c in pod["initContainers"] if c["name"] == "zone")
    assert "topology\\.kubernetes\\.io/zone" in " ".join(zone["command"])
    assert pod["serviceAccountName"] == "tidings-topology"
    assert {"nodes"} <= set(_one("ClusterRole", "tidings-topology")["rules"][0]["resources"])
    storage = pod["containers"][0]
    assert {p: storage[p]["grpc"]["port"] for p in ("readinessProbe", "livenessProbe")} == {
        "readinessProbe": 7101, "livenessProbe": 7101}
    assert {m["name"] for m in storage["volumeMounts"]} >= {"data"}
    pdb = _one("PodDisruptionBudget", "tidings-storage")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == sts["spec"]["selector"]


def test_probes_use_grpc_health_and_readyz() -> None:
    router = _one("Deployment", "tidings-router")["spec"]["template"]["spec"]["containers"][0]
    assert router["readinessProbe"]["grpc"]["port"] == 7000
    http = _one("Deployment", "tidings-http")["spec"]["template"]["spec"]["containers"][0]
    assert http["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}


def test_credentials_come_from_secrets_not_the_config_map() -> None:
    settings = _one("ConfigMap", "tidings-settings")["data"]
    secret_names = {name for cls in SETTINGS.values() for name, info in cls.model_fields.items()
                    if (info.json_schema_extra or {}).get("secret")}  # type: ignore[union-attr]
    aliases = {str(cls.model_fields[n].validation_alias) for cls in SETTINGS.values() for n in secret_names
               if n in cls.model_fields}
    assert aliases >= {"TIDINGS_S3_SECRET_KEY", "TIDINGS_TOKEN_SECRET"}
    assert not aliases & set(settings)
    for doc in k8s_documents():
        if doc["kind"] in ("Deployment", "StatefulSet"):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                assert not aliases & {e["name"] for e in c.get("env", ()) if "value" in e}, c["name"]


def _containers() -> list[Container]:
    return [*k8s_containers(), *compose_containers()]


def test_every_tidings_process_is_in_both() -> None:
    assert {c.module for c in k8s_containers()} == set(SETTINGS)
    assert {c.module for c in compose_containers()} == set(SETTINGS)


def _aliases(cls: type[TidingsSettings]) -> set[str]:
    return {str(info.validation_alias) for info in cls.model_fields.values()}


@pytest.mark.parametrize("container", _containers(), ids=lambda c: c.where)
def test_settings_are_ones_the_process_accepts(container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every TIDINGS_* name is a field of the process's settings class, and the process's
    settings parse from them (the ConfigMap's too, which every process loads)."""
    cls = SETTINGS[container.module]
    unknown = {name for name in container.env if name not in _aliases(cls)}
    assert not unknown, f"{container.where}: {cls.prog} does not read {sorted(unknown)}"
    env = dict(container.env)
    for name in container.config_maps:
        env = {**_one("ConfigMap", name)["data"], **env}
    env = {k: v for k, v in env.items() if k in _aliases(cls)}
    env.update({k: "1" for k, v in env.items() if k == "TIDINGS_NODE_ID" and "$" in v})
    if "$" in env.get("TIDINGS_NODES", ""):  # written by the router's initContainer
        env["TIDINGS_NODES"] = "1=tidings-storage-0.tidings-storage.tidings.svc:7101@zone-a"
    if container.module == "http_edge":
        env.setdefault("TIDINGS_TOKEN_SECRET", "a" * 32)  # from the tidings-http Secret
    for name in [n for n in os.environ if n.startswith("TIDINGS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cls.parse(container.flags)


def test_the_settings_check_catches_an_unknown_name() -> None:
    assert "TIDINGS_STORAGE_LISTN" not in _aliases(SETTINGS["storage_node"])
    assert "TIDINGS_STORAGE_LISTEN" in _aliases(SETTINGS["storage_node"])


def test_config_map_names_only_settings_some_consumer_reads() -> None:
    data = _one("ConfigMap", "tidings-settings")["data"]
    consumers = {c.module for c in k8s_containers() if "tidings-settings" in c.config_maps}
    known = set().union(*(_aliases(SETTINGS[m]) for m in consumers))
    assert set(data) <= known, sorted(set(data) - known)


def test_admin_service_runs_the_tidings_command() -> None:
    admin = compose()["services"]["admin"]
    args = build_parser().parse_args([*admin["entrypoint"][1:], *admin["command"]])
    assert args.router == "router:7000"


def _env_ports(container: Container) -> set[int]:
    ports = set()
    for name, value in container.env.items():
        if name.endswith(("_PORT", "_LISTEN")):
            ports.add(int(value.rpartition(":")[2]))
    return ports


@pytest.mark.parametrize("container", _containers(), ids=lambda c: c.where)
def test_ports_are_the_contracts(container: Container) -> None:
    ports = {*container.ports, *_env_ports(container)}
    assert ports, container.where
    assert ports <= contract_ports(), f"{container.where}: {sorted(ports - contract_ports())} not in CONTRACT.md"
    assert set(container.ports) <= _env_ports(container), f"{container.where}: a port no setting binds"


def test_the_port_table_is_contract_mds() -> None:
    if not CONTRACT.exists():
        pytest.skip(f"{CONTRACT} is not beside this clone: the copy is checked where it is")
    assert list(CONTRACT_PORT_CELLS) == contract_port_cells()


def test_contract_ports_are_read() -> None:
    ports = contract_ports()
    assert {7000, 7101, 7103, 2525, 2587, 8080, 2143, 2993, 2110, 9100, 9199} <= ports
    assert 3310 not in ports and 25 not in ports


def test_service_target_ports_name_container_ports() -> None:
    docs = k8s_documents()
    for service in (d for d in docs if d["kind"] == "Service"):
        selector = service["spec"]["selector"]
        pods = [d["spec"]["template"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")
                and d["spec"]["template"]["metadata"]["labels"].items() >= selector.items()]
        assert len(pods) == 1, service["metadata"]["name"]
        named = {p.get("name"): p["containerPort"] for c in pods[0]["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in named, f"{service['metadata']['name']}: {port['targetPort']}"


def test_compose_prometheus_scrapes_the_jobs_of_prometheus_yml() -> None:
    def jobs(name: str) -> dict[str, list[int]]:
        config = yaml.safe_load((DEPLOY / name).read_text())
        return {job["job_name"]: sorted(int(t.rpartition(":")[2]) for s in job["static_configs"] for t in s["targets"])
                for job in config["scrape_configs"]}
    assert jobs("prometheus.compose.yml") == jobs("prometheus.yml")


def test_storage_pod_ordinal_is_node_id_plus_one(tmp_path: Path) -> None:
    """The storage container's shell line, run by sh with `python -m storage_node` swapped for
    `env`: pod tidings-storage-2 runs node 3."""
    command = _one("StatefulSet", "tidings-storage")["spec"]["template"]["spec"]["containers"][0]["command"]
    line = command[2].replace("python -m storage_node", "env")
    run = subprocess.run(["sh", "-c", line], env={"HOSTNAME": "tidings-storage-2", "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=30, check=True)
    assert "TIDINGS_NODE_ID=3" in run.stdout.splitlines()
