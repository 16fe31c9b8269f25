"""The dashboards and alerts in deploy/ read only metrics the code defines, so a renamed
metric cannot leave an operator looking at an empty panel."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("router", "storage_node", "search_node", "smtp_edge", "http_edge")
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def defined_metrics() -> set[str]:
    pattern = re.compile(r"(?:Counter|Gauge|Histogram|Summary)\(\s*\"(tidings_\w+)\"")
    names: set[str] = set()
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            names.update(pattern.findall(path.read_text()))
    return names


def used_metrics() -> set[str]:
    used: set[str] = set()
    for path in [ROOT / "deploy" / "alerts.yml", *(ROOT / "deploy" / "grafana").glob("*.json")]:
        used.update(re.findall(r"tidings_\w+", path.read_text()))
    return used


def base_name(metric: str, defined: set[str]) -> str:
    if metric in defined:
        return metric
    for suffix in SUFFIXES:
        if metric.endswith(suffix) and metric[: -len(suffix)] in defined:
            return metric[: -len(suffix)]
    return metric


def test_every_metric_on_a_dashboard_or_alert_is_defined() -> None:
    defined = defined_metrics()
    assert defined, "no metrics found in the code"
    unknown = {m for m in used_metrics() if base_name(m, defined) not in defined}
    assert not unknown, f"deploy/ reads metrics no code defines: {sorted(unknown)}"
