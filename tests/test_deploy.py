"""deploy/: every file is checked by a validator here, or is marked untested in the README.

- nginx.conf: ``nginx -t`` on the deployed file (tests/test_multi_instance.py also runs it).
- systemd units: ``systemd-analyze verify``, with the checkout standing in for /opt/switchboard
  (it checks that the commands exist); skipped where systemd-analyze is missing.
- compose.yaml: the Compose Specification's JSON schema (as check-jsonschema ships it), and
  what it must agree on with nginx.conf and the Dockerfile.
- Dockerfile: its key properties (no container engine runs here, so it is never built).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.fixtures.nginx import UPSTREAMS, configure, require_nginx
from tests.fixtures.server import ROOT

DEPLOY = ROOT / "deploy"
UNITS = ("switchboard-console@.service", "switchboard-worker.service")


def test_the_nginx_config_passes_nginx_t() -> None:
    root, _, _ = configure(require_nginx(), (8501, 8502))  # asserts `nginx -t` succeeds
    shutil.rmtree(root)


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    for unit in UNITS:
        (tmp_path / unit).write_text((DEPLOY / "systemd" / unit).read_text().replace("/opt/switchboard", str(ROOT)))
    checked = subprocess.run(
        [
            analyze,
            "verify",
            "--man=no",
            str(tmp_path / "switchboard-console@8501.service"),
            str(tmp_path / "switchboard-worker.service"),
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert checked.returncode == 0 and not checked.stderr.strip(), checked.stderr  # warnings count too


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def compose_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(
        resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{list(error.path)}: {error.message}" for error in validator.iter_errors(document)]


def test_compose_yaml_follows_the_compose_specification() -> None:
    assert compose_errors(compose()) == []
    broken = compose()
    broken["services"]["worker"]["restart_policy"] = "always"  # not a service key: the schema says so
    assert compose_errors(broken)


def test_compose_yaml_runs_the_roles_as_nginx_conf_and_the_readme_expect() -> None:
    services = compose()["services"]
    consoles = [name for name in services if name.startswith("console-")]
    assert sorted(f"server {name}:8501 " for name in consoles) == sorted(UPSTREAMS)  # nginx.conf's upstreams
    nginx = services["nginx"]
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    proxy_address = nginx["networks"]["switchboard"]["ipv4_address"]
    for name in [*consoles, "worker", "migrate"]:
        service = services[name]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert service["environment"]["SWITCHBOARD_TRUSTED_PROXIES"] == proxy_address, name
        assert any(volume.endswith(":/run/switchboard/keyring.json:ro") for volume in service["volumes"]), name
        assert service["environment"]["SWITCHBOARD_DATABASE_URL"].startswith("postgresql+psycopg://"), name
    assert all(services[name]["environment"]["SWITCHBOARD_WORKER"] == "off" for name in consoles)
    assert services["worker"]["command"] == ["switchboard", "worker"]
    assert services["migrate"]["command"] == ["switchboard", "db", "upgrade"]
    assert all(
        services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        for name in [*consoles, "worker"]
    )


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_the_dockerfile_runs_as_a_user_with_a_healthcheck_on_healthz() -> None:
    steps = dockerfile()
    assert steps[0][0] == "FROM" and steps[0][1].startswith("python:3.11-slim")
    users = [args for instruction, args in steps if instruction == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")  # the last one is who the container runs as
    healthchecks = [args for instruction, args in steps if instruction == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]
    env = " ".join(args for instruction, args in steps if instruction == "ENV")
    assert "SWITCHBOARD_WORKER=off" in env and "HOME=/home/switchboard" in env
    copied = " ".join(args for instruction, args in steps if instruction == "COPY")
    for needed in (
        "requirements.txt",
        "constraints.txt",
        "pyproject.toml",
        "app.py",
        "serve.py",
        ".streamlit/config.toml",
        "lib",
        "pages",
        "migrations",
    ):
        assert needed in copied, needed
        assert (ROOT / needed).exists(), needed
