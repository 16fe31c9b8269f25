"""The dashboard and the alerts of deploy/ on a real Prometheus (Debian's) scraping a real
local cluster under load.

deploy/prometheus.yml is rewritten only where it must be: each target's default port (the
CONTRACT's, as `Layout.default` gives them) becomes the port the grid's process of that name
bound, the intervals become 1 s, and the rule file its absolute path. Then every Grafana panel's
expression and every alert rule's expression goes through /api/v1/query: each must evaluate,
and each panel must return data, unless it is on NO_DATA_ALLOWED with the reason it can't in a
short test. `pytest -s` prints the figures read.
"""
from __future__ import annotations

import json
import re
import shutil
import smtplib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cluster.grid import PASSWORD, Grid, running
from tests.mailnet import Sink, ThreadedFarEnd, Zone, serving
from tidings.v1 import mail_pb2
from tidings_cli.cluster import DEFAULT_EDGES, Layout
from tidings_client.ids import new_entry_id

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
FAR_HOST = "127.0.0.7"   # far.test's MX: an aiosmtpd sink the delivery worker delivers to
USERS = ("ann@example.test", "ben@example.test", "cai@example.test")
OUTSIDE = "zoe@far.test"
# Grafana's template variables, as a dashboard would have them over a short range
VARIABLES = {"$__rate_interval": "30s", "$__interval": "5s", "$__range": "5m", "$__range_s": "300"}

# (panel title, legend or expression) that may return an empty vector here, and why
NO_DATA_ALLOWED: dict[tuple[str, str], str] = {
    ("Hints pending, by target node", "node {{target}}"):
        "no node is down, so no hints are held: the gauge has a series only for a target that had hints",
    ("Hints written / replayed / dropped", "written (router)"):
        "no node is down, so the router hands no hints (the counter's series are per target)",
    ("Repairs", "read repair {{kind}}"): "no replica is stale, so no read repairs (series per kind)",
    ("Bytes streamed", "{{instance}} {{direction}}"):
        "no ring change and no differing range, so no range is streamed (series per direction)",
}


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, expr: str) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", f"{expr!r}: {r.status_code} {body}"
        return dict(body["data"])

    def get(self, path: str) -> Any:
        r = httpx.get(f"{self.url}{path}", timeout=10)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
        return r.json()["data"]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def wait_for(check: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not after {timeout} s")


def scrape_config(grid: Grid) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """deploy/prometheus.yml with the grid's real metrics ports, and the process names each
    job scrapes. A target whose default port no process of the default layout serves is an
    error in deploy/; one the grid did not start (a spare storage node) is left out."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    by_default_port = {port: name for name, port in Layout.default(Path("unused")).metrics_ports.items()}
    bound = {name: port for name, port in grid.layout.metrics_ports.items() if port}
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / f) for f in config["rule_files"]]
    jobs: dict[str, list[str]] = {}
    for job in config["scrape_configs"]:
        names = []
        for static in job["static_configs"]:
            targets = []
            for target in static["targets"]:
                name = by_default_port.get(int(target.rsplit(":", 1)[1]))
                assert name is not None, f"job {job['job_name']} scrapes {target}: no process has that metrics port"
                if name in bound:
                    targets.append(f"{grid.host}:{bound[name]}")
                    names.append(name)
            static["targets"] = targets
        jobs[job["job_name"]] = names
    return config, jobs


def start_prometheus(config: dict[str, Any], base: Path) -> Prometheus:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: `make setup` (as root) installs Debian's prometheus")
    base.mkdir(parents=True, exist_ok=True)
    (base / "prometheus.yml").write_text(json.dumps(config, indent=1))  # YAML reads JSON
    log = base / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen([binary, f"--config.file={base / 'prometheus.yml'}",
                                    f"--storage.tsdb.path={base / 'data'}", "--web.listen-address=127.0.0.1:0",
                                    "--storage.tsdb.retention.time=1h"],
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def address() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited {process.returncode}:\n{log.read_text()}")
        found = re.search(r'msg="Listening on" address=(127\.0\.0\.1:\d+)', log.read_text())
        return found.group(1) if found else None

    try:
        prometheus = Prometheus(f"http://{wait_for(address, 'prometheus listening', 20)}", process, log)
        wait_for(lambda: httpx.get(f"{prometheus.url}/-/ready", timeout=5).status_code == 200, "prometheus ready", 20)
    except BaseException:
        process.kill()
        process.wait(10)
        raise
    return prometheus


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panels(panel)   # a row's panels


def grafana_targets() -> list[tuple[str, str, str]]:
    """(panel title, legend, expression with the template variables filled) of every dashboard."""
    found = []
    for path in sorted((DEPLOY / "grafana").glob("*.json")):
        for panel in panels(json.loads(path.read_text())):
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in VARIABLES.items():
                    expr = expr.replace(variable, value)
                assert "$" not in expr, f"{path.name}, {panel['title']!r}: unknown template variable in {expr!r}"
                found.append((panel["title"], target.get("legendFormat", expr), expr))
    return found


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


# --- load ---------------------------------------------------------------------------------------

def message(sender: str, recipient: str, subject: str) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, recipient, subject
    m.set_content(f"body of {subject}\n" * 10)
    return m.as_bytes()


def put_load(grid: Grid, accounts: dict[str, str], round_: int) -> None:
    """Mail over SMTP (and one refusal), over Mail.Deliver, mail out to far.test through the
    outgoing queue, a search, and HTTP requests."""
    with smtplib.SMTP(grid.host, grid.smtp_port, timeout=30) as smtp:
        for i in range(12):
            to = USERS[i % len(USERS)]
            smtp.sendmail("someone@outside.test", [to], message("someone@outside.test", to, f"smtp {round_}.{i}"))
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("someone@outside.test", ["nobody@example.test"], b"Subject: x\r\n\r\nx\r\n")
    for i in range(14):   # ann: 4 + 14 a round, so two rounds pass SEAL_DOCS (32) and her index seals
        to = USERS[0]
        grid.mail.Deliver(mail_pb2.DeliverRequest(entry_id=new_entry_id(), raw=message(USERS[1], to, f"grpc {round_}.{i}"),
                                                  recipients=[to]), timeout=30)
    for i in range(2):
        grid.mail.Deliver(mail_pb2.DeliverRequest(
            entry_id=new_entry_id(), raw=message(USERS[1], OUTSIDE, f"out {round_}.{i}"), recipients=[OUTSIDE],
            sender_user_id=accounts[USERS[1]], mail_from=USERS[1]), timeout=30)
    grid.mail.Search(mail_pb2.SearchRequest(user_id=accounts[USERS[0]], query="body", limit=10), timeout=30)
    with httpx.Client(base_url=grid.http_url, timeout=30) as http:
        token = http.post("/v1/auth/token", json={"email": USERS[2], "password": PASSWORD})
        assert token.status_code == 200, token.text
        http.headers["Authorization"] = f"Bearer {token.json()['token']}"
        for _ in range(5):
            assert http.get("/v1/folders").status_code == 200
            assert http.get("/v1/folders/inbox/messages", params={"limit": 20}).status_code == 200
        assert http.get("/v1/messages/no-such-message").status_code == 404


# --- the test -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def far_end(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Zone, int, Sink]]:
    """far.test's DNS and MX: the sink takes mail after refusing the first DATA (a deferral)."""
    far = ThreadedFarEnd(tmp_path_factory.mktemp("far"), 0)
    try:
        sink = far.sink(FAR_HOST, Sink(temp_failures=1))
        with serving(Zone()) as zone:
            zone.mx("far.test", (10, "mx.far.test", FAR_HOST))
            yield zone, far.far.port, sink
    finally:
        far.close()


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, far_end: tuple[Zone, int, Sink]) -> Iterator[Grid]:
    zone, port, _ = far_end
    worker = ("--dns", zone.address, "--outbound-port", str(port), "--retry-schedule", "1s,2s",
              "--poll-interval-s", "0.2")
    # anti-entropy every 2 s, so its ranges counter has series within the test
    with running(tmp_path_factory.mktemp("observed"), DEFAULT_EDGES, ("--anti-entropy-interval", "2"),
                 args={"outbound": worker}) as grid:
        yield grid


def test_every_panel_and_alert_evaluates_on_a_real_prometheus(grid: Grid, far_end: tuple[Zone, int, Sink],
                                                               tmp_path: Path) -> None:
    started = time.monotonic()
    accounts = {email: grid.add_user(email).user_id for email in USERS}
    config, jobs = scrape_config(grid)
    scraped = {name for names in jobs.values() for name in names}
    serving_metrics = {name for name, port in grid.layout.metrics_ports.items() if port}
    assert serving_metrics - scraped == set(), "processes of the cluster that deploy/prometheus.yml does not scrape"
    assert all(jobs.values()), f"jobs with no target in the grid: {jobs}"

    prometheus = start_prometheus(config, tmp_path / "prometheus")
    try:
        targets = len(scraped)

        def all_up() -> bool:
            active = prometheus.get("/api/v1/targets")["activeTargets"]
            return len(active) == targets and all(t["health"] == "up" for t in active)

        wait_for(all_up, f"all {targets} targets up", 15)
        put_load(grid, accounts, 1)
        time.sleep(2)   # two scrapes: the series the first round created exist before the second
        put_load(grid, accounts, 2)
        sink = far_end[2]
        wait_for(lambda: len(sink.received) >= 4, "the 4 outgoing messages at far.test", 20)
        time.sleep(3)   # three more scrapes and rule evaluations

        figures, empty = [], []
        for title, legend, expr in grafana_targets():
            data = prometheus.query(expr)
            result = data["result"]
            if not result:
                empty.append((title, legend))
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):   # a legend naming a label the query lacks
                assert all(label in series["metric"] for series in result), \
                    f"{title!r}: legend {legend!r} names {label!r}, absent from {expr!r}'s series"
            figures.append((title, legend, summary(legend, result)))
        for rule in alert_rules():
            prometheus.query(rule["expr"])   # evaluates (fails the test with Prometheus's error if not)
        rules = [r for g in prometheus.get("/api/v1/rules")["groups"] for r in g["rules"]]
        assert len(rules) == len(alert_rules()), "Prometheus did not load every rule of deploy/alerts.yml"
        failed = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        firing = [r["name"] for r in rules if r.get("state") == "firing"]

        print(f"\nPrometheus {prometheus.url}: {targets} targets ({', '.join(f'{j}={len(n)}' for j, n in jobs.items())}), "
              f"{len(rules)} rules, read {time.monotonic() - started:.1f} s after the test began")
        width = max(len(f"{t} / {lg}") for t, lg, _ in figures)
        for title, legend, value in figures:
            print(f"  {f'{title} / {legend}':<{width}}  {value}")
        print(f"  rules: {sum(r['health'] == 'ok' for r in rules)} ok, firing: {firing or 'none'}")

        assert failed == [], f"alert rules Prometheus could not evaluate: {failed}"
        assert firing == [], f"alerts firing on a healthy cluster: {firing}"
        unexplained = [e for e in empty if e not in NO_DATA_ALLOWED]
        assert unexplained == [], f"panels with no data: {unexplained}"
    finally:
        prometheus.stop()


def summary(legend: str, result: list[dict[str, Any]]) -> str:
    """Each series of a result as legend=value (the legend's {{label}}s filled), a few at most."""
    if not result:
        return "(no data)"
    parts = []
    for series in result[:6]:
        labels = series["metric"]
        name = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m, labels=labels: str(labels.get(m.group(1), "")), legend)
        value = float(series["value"][1])
        parts.append(f"{name}={value:.4g}")
    more = f" (+{len(result) - 6} more)" if len(result) > 6 else ""
    return ", ".join(parts) + more
