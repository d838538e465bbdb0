"""deploy/prometheus/ run by Debian's prometheus package, not by our own parser: promtool checks
the scrape config and the alert rules, runs the rules' unit tests
(deploy/prometheus/switchboard-rules.test.yml) and lints a live /metrics answer, and Prometheus
itself scrapes a real server with the deployed job, its token read from a file, and evaluates
the rules over what it got. promtool and prometheus missing: skipped locally, failed under
CI=true (.ci/run installs the package)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from lib.simulator import SimulatorServer
from tests.fixtures.prober import control
from tests.fixtures.server import ROOT, Server, end_group, free_port, start_server
from tests.fixtures.simulator import default_scenario
from tests.fixtures.waiting import eventually

DEPLOYED = ROOT / "deploy" / "prometheus"
TOKEN_FILE = "/etc/prometheus/switchboard.token"
CREDENTIALS = f"credentials_file: {TOKEN_FILE}"


def require(name: str) -> str:
    """A binary of Debian's prometheus package (promtool, prometheus)."""
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required under CI=true (apt-get install prometheus)")
        pytest.skip(f"{name} not installed (apt-get install prometheus)")
    return found


def promtool(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """promtool run in deploy/prometheus/, where the rule files name each other."""
    return subprocess.run(
        [require("promtool"), *args], input=stdin, cwd=DEPLOYED, check=False, capture_output=True, text=True, timeout=60
    )


def layout(folder: Path, swaps: dict[str, str]) -> Path:
    """deploy/prometheus/ copied into ``folder``, with ``swaps`` made in prometheus.yml (each
    text must occur there exactly once, so the file cannot drift away from what is tested)."""
    for name in ("switchboard-rules.yml", "switchboard-rules.test.yml"):
        shutil.copy(DEPLOYED / name, folder / name)
    text = (DEPLOYED / "prometheus.yml").read_text()
    for old, new in swaps.items():
        assert text.count(old) == 1, f"deploy/prometheus/prometheus.yml no longer has exactly one {old!r}"
        text = text.replace(old, new)
    (folder / "prometheus.yml").write_text(text)
    return folder / "prometheus.yml"


# --- the files, checked by promtool ------------------------------------------------------------


def test_the_scrape_job_reads_a_bearer_token_from_a_file_and_passes_promtool_check_config(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOYED / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["job_name"] == "switchboard" and job["metrics_path"] == "/metrics"
    assert job["authorization"] == {"type": "Bearer", "credentials_file": TOKEN_FILE}  # never the token itself
    assert config["rule_files"] == ["switchboard-rules.yml"]
    (tmp_path / "switchboard.token").write_text("sbt_stand-in\n")  # check config wants the file to exist
    checked = promtool(
        "check",
        "config",
        "--lint=all",
        "--lint-fatal",
        str(layout(tmp_path, {CREDENTIALS: f"credentials_file: {tmp_path / 'switchboard.token'}"})),
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout, checked.stdout


def test_the_alert_rules_pass_promtool_check_rules() -> None:
    checked = promtool("check", "rules", "--lint=all", "--lint-fatal", "switchboard-rules.yml")
    assert checked.returncode == 0 and f"SUCCESS: {len(alert_names())} rules found" in checked.stdout, (
        checked.stdout + checked.stderr
    )


def test_the_rules_unit_tests_pass_promtool_test_rules() -> None:
    tested = promtool("test", "rules", "switchboard-rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def alert_names() -> set[str]:
    rules = yaml.safe_load((DEPLOYED / "switchboard-rules.yml").read_text())
    return {rule["alert"] for group in rules["groups"] for rule in group["rules"]}


def test_each_rule_has_a_unit_test_where_it_fires_and_one_where_it_stays_quiet() -> None:
    alerts = alert_names()
    suite = yaml.safe_load((DEPLOYED / "switchboard-rules.test.yml").read_text())
    cases = [case for group in suite["tests"] for case in group["alert_rule_test"]]
    fires = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert fires == alerts and quiet == alerts, (alerts - fires, alerts - quiet)
    for case in cases:  # an alert tested fires with what the operator reads, not only its labels
        assert all(set(alert["exp_annotations"]) == {"summary", "description"} for alert in case["exp_alerts"])


# --- a live server, read by promtool and scraped by Prometheus --------------------------------


@dataclass(frozen=True)
class Live:
    server: Server
    token: str


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    """A server whose /metrics has every family: a connection with one product ok and one
    failing (the simulator answers cc_chat with 404), a worker's tick, and a viewer token."""
    require("promtool")  # before the seconds a server costs
    with SimulatorServer(default_scenario()) as sim:
        server = start_server({}, sim.url)
        try:
            app = sim.scenario.apps[0]
            added = server.cli(
                "connections",
                "add",
                "--name",
                "Prod",
                "--client-id",
                app.client_id,
                "--secret-stdin",
                "--products",
                "cloud_storage,cc_chat",
                "--storage-region",
                "uk",
                "--chat-region",
                "us",
                "--tenant-id",
                app.tenants[0],
                stdin=app.client_secret + "\n",
            )
            assert added.returncode == 0, added.stderr
            control(sim, "POST", "faults", {"route": "cc_chat", "status": 404})
            assert server.cli("check", "Prod", "--product", "cloud_storage").returncode == 0
            assert server.cli("check", "Prod", "--product", "cc_chat").returncode == 1
            ticked = server.cli("worker", "--once")
            assert ticked.returncode in (0, 1), ticked.stderr  # 1: a check it ran failed; the tick worked
            made = server.cli("tokens", "create", "--name", "prometheus", "--role", "viewer")
            assert made.returncode == 0, made.stderr
            yield Live(server, made.stdout.strip())
        finally:
            server.stop()


@pytest.mark.slow
def test_promtool_check_metrics_finds_nothing_wrong_in_a_live_answer(live: Live) -> None:
    with live.server.client() as client:
        scraped = client.get("/metrics", headers={"Authorization": f"Bearer {live.token}"})
    assert scraped.status_code == 200
    families = {family.name for family in text_string_to_metric_families(scraped.text)}
    assert {
        "switchboard_check",
        "switchboard_check_duration_seconds",
        "switchboard_token_steps",
        "switchboard_product_up",
        "switchboard_last_success_timestamp_seconds",
        "switchboard_products",
        "switchboard_uptime_ratio",
        "switchboard_worker_heartbeat_timestamp_seconds",
        "switchboard_worker_last_successful_tick_timestamp_seconds",
        "switchboard_workers_failing",
        "switchboard_secret_oldest_set_timestamp_seconds",
        "switchboard_alert_events",
    } <= families  # every family lib/services/reporting/metrics.py makes, so all are linted
    linted = promtool("check", "metrics", stdin=scraped.text)
    assert linted.returncode == 0 and linted.stdout + linted.stderr == "", linted.stdout + linted.stderr


@contextmanager
def prometheus(config: Path, folder: Path) -> Iterator[httpx.Client]:
    """Prometheus running ``config`` on 127.0.0.1, its data in ``folder``, in a session of its own
    (stopped with it): a client of its HTTP API, once it is ready."""
    port, log = free_port(), folder / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                require("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready() -> bool | None:
        assert process.poll() is None, "prometheus exited:\n" + log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200 or None
        except httpx.TransportError:
            return None

    try:
        eventually(ready, timeout_s=60, what="Prometheus to be ready")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=10) as api:
            yield api
    finally:
        end_group(process, 10)


def data(api: httpx.Client, path: str) -> Any:
    answer = api.get(path)
    answer.raise_for_status()
    return answer.json()["data"]


@pytest.mark.slow
def test_prometheus_scrapes_a_live_server_with_the_token_file_and_evaluates_the_rules(
    live: Live, tmp_path: Path
) -> None:
    """The deployed job and rules in a real Prometheus; only the token's path, the target, the
    scheme (the test server speaks http) and the intervals (seconds, not minutes) replaced."""
    token_file = tmp_path / "switchboard.token"
    token_file.write_text("sbt_not-a-token\n")
    config = layout(
        tmp_path,
        {
            CREDENTIALS: f"credentials_file: {token_file}",
            "scheme: https": "scheme: http",
            '- targets: ["switchboard.example.com"]': f'- targets: ["{live.server.url.removeprefix("http://")}"]',
            "scrape_interval: 1m": "scrape_interval: 3s",
            "scrape_timeout: 30s": "scrape_timeout: 3s",
            "evaluation_interval: 1m": "evaluation_interval: 1s",
        },
    )
    with prometheus(config, tmp_path) as api:

        def target(health: str) -> dict[str, Any] | None:
            found = data(api, "/targets")["activeTargets"]  # empty until discovery has run
            return found[0] if [t["health"] for t in found] == [health] else None

        assert (
            "401" in eventually(lambda: target("down"), timeout_s=60, what="a failed scrape")["lastError"]
        )  # the file is what is sent
        token_file.write_text(live.token + "\n")  # read again at the next scrape: no restart
        assert eventually(lambda: target("up"), timeout_s=60, what="a scrape with the token")["labels"]["job"] == (
            "switchboard"
        )

        def rules() -> dict[str, dict[str, Any]] | None:
            found = {rule["name"]: rule for group in data(api, "/rules")["groups"] for rule in group["rules"]}
            settled = found["SwitchboardProductFailing"]["state"] == "pending" and all(
                found[name]["state"] == "inactive" for name in found if name != "SwitchboardProductFailing"
            )
            return found if settled else None

        # cc_chat fails: pending, firing after 30 minutes of it
        evaluated = eventually(rules, timeout_s=60, what="the rules to be evaluated")
        assert set(evaluated) == alert_names()
        assert all(rule["health"] == "ok" for rule in evaluated.values()), evaluated
        [pending] = evaluated["SwitchboardProductFailing"]["alerts"]
        assert pending["labels"] == {
            "alertname": "SwitchboardProductFailing",
            "severity": "warning",
            "job": "switchboard",
            "instance": live.server.url.removeprefix("http://"),
            "connection": "Prod",
            "product": "cc_chat",
        }
        assert pending["annotations"]["summary"] == "8x8 cc_chat fails on connection Prod."
