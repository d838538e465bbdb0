"""Environment variables: defaults and clear errors naming the variable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from lib.kernel.config import APP_DIR, DEFAULT_8X8_BASE_URL, load_settings
from lib.kernel.errors import ConfigError


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.database_url == f"sqlite:///{APP_DIR / 'data' / 'switchboard.db'}"
    assert settings.base_url == DEFAULT_8X8_BASE_URL
    assert settings.keyring_file.name == "keyring.json" and ".config/switchboard" in str(settings.keyring_file)
    assert settings.inline_keys is None


def test_inline_keys_are_not_in_repr() -> None:
    assert "SECRETKEY" not in repr(load_settings({"SWITCHBOARD_KEYS": "k1:SECRETKEY"}))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SWITCHBOARD_DATABASE_URL": "not a url"}, "SWITCHBOARD_DATABASE_URL is not a database URL"),
        ({"SWITCHBOARD_DATABASE_URL": "mysql://x/y"}, "uses 'mysql'"),
        ({"SWITCHBOARD_DATABASE_URL": "sqlite://"}, "must name a SQLite file"),
        ({"SWITCHBOARD_8X8_BASE_URL": "ftp://api.8x8.com"}, "SWITCHBOARD_8X8_BASE_URL must be an https:// URL"),
        ({"SWITCHBOARD_8X8_BASE_URL": "http://api.8x8.com"}, "plain http:// to api.8x8.com"),
        ({"SWITCHBOARD_8X8_BASE_URL": "http://10.0.0.5:8088"}, "plain http:// to 10.0.0.5"),
        ({"SWITCHBOARD_8X8_BASE_URL": "https://u:p@api.8x8.com"}, "must not contain credentials"),
        (
            {"SWITCHBOARD_SESSION_IDLE_MINUTES": "0"},
            "SWITCHBOARD_SESSION_IDLE_MINUTES must be a whole number of minutes",
        ),
        (
            {"SWITCHBOARD_SESSION_HOURS": "1.5"},
            "SWITCHBOARD_SESSION_HOURS must be a whole number of hours above 0, e.g. 12",
        ),
        (
            {"SWITCHBOARD_METRICS_ALLOW": "10.0.0.5,prometheus.internal"},
            "SWITCHBOARD_METRICS_ALLOW: 'prometheus.internal' is not an IP address or network; list your Prometheus",
        ),
        ({"SWITCHBOARD_TRUSTED_PROXIES": "10.0.0.0/33"}, "SWITCHBOARD_TRUSTED_PROXIES: '10.0.0.0/33' is not an IP"),
        ({"SWITCHBOARD_METRICS_CONNECTION_LABEL": "no"}, "SWITCHBOARD_METRICS_CONNECTION_LABEL must be on or off"),
        ({"SWITCHBOARD_WORKER": "no"}, "SWITCHBOARD_WORKER must be on or off, not 'no' (off when dedicated"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_settings(env)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8088",
        "http://localhost:8088/",
        "http://[::1]:9000",
        "https://api.8x8.com",
        "https://api.8x8.com/",
    ],
)
def test_loopback_http_and_https_are_accepted(url: str) -> None:
    assert load_settings({"SWITCHBOARD_8X8_BASE_URL": url}).base_url == url.rstrip("/")


def test_a_relative_sqlite_path_is_inside_the_switchboard_folder_whatever_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # cron starts commands in $HOME; the console runs in the checkout
    assert APP_DIR == Path(__file__).resolve().parent.parent
    relative = load_settings({"SWITCHBOARD_DATABASE_URL": "sqlite:///data/demo/x.db?timeout=3"}).database_url
    assert relative == f"sqlite:///{APP_DIR / 'data' / 'demo' / 'x.db'}?timeout=3"
    absolute = f"sqlite:///{tmp_path / 'x.db'}"
    assert load_settings({"SWITCHBOARD_DATABASE_URL": absolute}).database_url == absolute


def test_postgres_url_is_accepted() -> None:
    url = "postgresql+psycopg://switchboard@db.internal/switchboard"
    assert load_settings({"SWITCHBOARD_DATABASE_URL": url}).database_url == url


def test_session_limits_default_to_30_minutes_idle_and_12_hours() -> None:
    assert (load_settings({}).session_idle, load_settings({}).session_lifetime) == (
        timedelta(minutes=30),
        timedelta(hours=12),
    )
    tuned = load_settings({"SWITCHBOARD_SESSION_IDLE_MINUTES": "15", "SWITCHBOARD_SESSION_HOURS": "8"})
    assert (tuned.session_idle, tuned.session_lifetime) == (timedelta(minutes=15), timedelta(hours=8))


def test_metrics_settings_default_to_no_address_and_per_connection_labels() -> None:
    assert (load_settings({}).metrics_allow, load_settings({}).metrics_connection_label) == ((), True)
    tuned = load_settings(
        {"SWITCHBOARD_METRICS_ALLOW": " 10.0.0.5, 10.1.0.0/16 ,::1", "SWITCHBOARD_METRICS_CONNECTION_LABEL": "OFF"}
    )
    assert (tuned.metrics_allow, tuned.metrics_connection_label) == (("10.0.0.5", "10.1.0.0/16", "::1"), False)


def test_the_server_runs_the_worker_unless_told_off() -> None:
    assert load_settings({}).worker is True
    assert load_settings({"SWITCHBOARD_WORKER": "on"}).worker is True
    assert load_settings({"SWITCHBOARD_WORKER": " OFF "}).worker is False
