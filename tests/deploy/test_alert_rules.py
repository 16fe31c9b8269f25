"""deploy/prometheus.yml and deploy/alerts.yml as Debian's promtool reads them: the config and
the rules check, and the alerts' unit tests (deploy/alerts_test.yml) pass: a storage node down
fires StorageNodeDown, a growing outgoing queue fires OutboundQueueGrowing, a healthy cluster
fires nothing."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def promtool(*args: str) -> str:
    """promtool's output; the test fails, with everything promtool said, unless it exits 0."""
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is not installed: `make setup` (as root) installs Debian's prometheus")
    run = subprocess.run([tool, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"promtool {' '.join(args)} exited {run.returncode}:\n{run.stdout}{run.stderr}"
    return run.stdout


def load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


def test_prometheus_config_checks() -> None:
    assert "is valid prometheus config file syntax" in promtool("check", "config", "prometheus.yml")


def test_alert_rules_check() -> None:
    rules = [r for g in load("alerts.yml")["groups"] for r in g["rules"]]
    assert f"SUCCESS: {len(rules)} rules found" in promtool("check", "rules", "alerts.yml")


def test_alert_unit_tests_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", "alerts_test.yml")


def test_the_unit_tests_fire_the_named_alerts_and_keep_every_alert_quiet_when_healthy() -> None:
    """The unit tests cannot quietly lose a case: StorageNodeDown and OutboundQueueGrowing are
    expected to fire somewhere, and every alert of alerts.yml is expected silent somewhere."""
    alerts = {r["alert"] for g in load("alerts.yml")["groups"] for r in g["rules"] if "alert" in r}
    cases = [case for test in load("alerts_test.yml")["tests"] for case in test.get("alert_rule_test", [])]
    fired = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert {"StorageNodeDown", "OutboundQueueGrowing"} <= fired
    assert alerts - quiet == set(), "alerts with no healthy case in deploy/alerts_test.yml"
    assert (fired | quiet) - alerts == set(), "deploy/alerts_test.yml names alerts that alerts.yml lacks"
