"""Settings from environment variables (names are a contract, docs/operating/configuration.md), read once.

Every problem is reported as a :class:`ConfigError` naming the variable and the fix.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from lib.kernel.errors import ConfigError

# The Switchboard folder: the checkout, which `make run` installs into the venv in editable
# mode, so the installed `switchboard` command runs from here whatever the current folder is.
APP_DIR = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE_URL = "sqlite:///data/switchboard.db"  # a relative path: inside APP_DIR
DEFAULT_KEYRING_FILE = "~/.config/switchboard/keyring.json"
DEFAULT_8X8_BASE_URL = "https://api.8x8.com"

SUPPORTED_DB_BACKENDS = ("sqlite", "postgresql")
# What carries the 8x8 client's requests (lib.eightbyeight.transport): aiohttp's client, or httpx's
# own transport, the fallback should an aiohttp release misbehave.
EIGHTBYEIGHT_TRANSPORTS = ("aiohttp", "httpx")


@dataclass(frozen=True)
class Settings:
    database_url: str
    keyring_file: Path
    base_url: str
    # The inline keyring (SWITCHBOARD_KEYS) is key material: kept out of repr.
    inline_keys: str | None = field(default=None, repr=False)
    session_idle: timedelta = timedelta(minutes=30)  # no activity for this long ends a sign-in
    session_lifetime: timedelta = timedelta(hours=12)  # no sign-in lasts longer, active or not
    # The origin people use (scheme://host[:port]), when Switchboard sits behind a proxy.
    public_origin: str | None = None
    # More origins whose pages may open the console's WebSocket and post its forms.
    allowed_origins: tuple[str, ...] = ()
    # Proxies whose X-Forwarded-For / -Proto are believed (addresses or networks); none by default.
    trusted_proxies: tuple[str, ...] = ()
    # Addresses or networks that may read /metrics without a token (a Prometheus server); none by default.
    metrics_allow: tuple[str, ...] = ()
    # Per-connection metric series; off aggregates them per product, for large fleets.
    metrics_connection_label: bool = True
    # The server runs the scheduled checks itself; off when dedicated `switchboard worker`s do.
    worker: bool = True
    # Hosts (lower case) and networks that alert channels may reach although internal, and over
    # plain http:// (lib.notify.ssrf); nothing by default.
    alert_allow: tuple[str, ...] = ()
    # What carries the 8x8 client's requests, one of EIGHTBYEIGHT_TRANSPORTS.
    eightbyeight_transport: str = EIGHTBYEIGHT_TRANSPORTS[0]

    @property
    def secure_cookies(self) -> bool:
        """Cookies get the Secure flag on every response: people reach us over https."""
        return (self.public_origin or "").startswith("https://")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database's file (absolute: _database_url makes it so), None on PostgreSQL."""
        if not self.is_sqlite:
            return None
        from sqlalchemy.engine import make_url

        return Path(make_url(self.database_url).database or "").expanduser()


def _database_url(value: str) -> str:
    # SQLAlchemy loads here, not with this module: the server reads its proxy list before it
    # opens its data (lib.web.state), and that path stays free of SQLAlchemy.
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError:
        raise ConfigError(
            "SWITCHBOARD_DATABASE_URL is not a database URL. Use e.g. "
            "sqlite:///data/switchboard.db or postgresql+psycopg://user@host/db."
        ) from None
    if url.get_backend_name() not in SUPPORTED_DB_BACKENDS:
        raise ConfigError(
            f"SWITCHBOARD_DATABASE_URL uses '{url.get_backend_name()}', which Switchboard does not "
            "support. Use sqlite:///… or postgresql+psycopg://…."
        )
    if url.get_backend_name() != "sqlite":
        return value
    if url.database in (None, "", ":memory:"):
        raise ConfigError(
            "SWITCHBOARD_DATABASE_URL must name a SQLite file (an in-memory database loses every "
            "credential on restart), e.g. sqlite:///data/switchboard.db."
        )
    path = Path(url.database).expanduser()
    if path.is_absolute():
        return value
    # Relative to the Switchboard folder, not to wherever a shell or cron happens to be: the
    # console and every command use the same database.
    return url.set(database=str(APP_DIR / path)).render_as_string(hide_password=False)


def is_loopback(host: str) -> bool:
    """localhost or a loopback IP literal (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_base_url(value: str, variable: str = "SWITCHBOARD_8X8_BASE_URL") -> str:
    """An https URL, or plain http only to a loopback host (the local simulator)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{variable} must be an https:// URL such as https://api.8x8.com.")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"{variable} uses plain http:// to {parts.hostname}; credentials would travel "
            "unencrypted. Use https://, or http:// only to 127.0.0.1/localhost for the simulator."
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"{variable} must not contain credentials, a query or a fragment.")
    return value.rstrip("/")


def _duration(env: Mapping[str, str], variable: str, unit: str, default: timedelta) -> timedelta:
    value = env.get(variable)
    if not value:
        return default
    if not value.isdigit() or int(value) == 0:
        raise ConfigError(
            f"{variable} must be a whole number of {unit} above 0, e.g. {int(default / timedelta(**{unit: 1}))}."
        )
    return timedelta(**{unit: int(value)})


def origin_of(value: str, variable: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL, lower-cased as browsers send it."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{variable}: '{value}' is not an http(s) URL; use e.g. https://switchboard.example.com.")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"{variable}: '{value}' must not contain credentials, a query or a fragment.")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{variable}: '{value}' has a port that is not a number.") from None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    default = {"http": 80, "https": 443}[parts.scheme]
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def _list(env: Mapping[str, str], variable: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in (env.get(variable) or "").split(",") if item.strip())


def _networks(env: Mapping[str, str], variable: str, whose: str) -> tuple[str, ...]:
    values = _list(env, variable)
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ConfigError(
                f"{variable}: '{value}' is not an IP address or network; list {whose} "
                "addresses, e.g. 10.0.0.5,10.0.1.0/24."
            ) from None
    return values


_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")


def _alert_allow(env: Mapping[str, str]) -> tuple[str, ...]:
    """Host names (lower-cased) and networks (normalised, e.g. ``10.0.0.0/8``)."""
    variable = "SWITCHBOARD_ALERT_ALLOW"
    entries: list[str] = []
    for value in _list(env, variable):
        try:
            entries.append(str(ipaddress.ip_network(value, strict=False)))
            continue
        except ValueError:
            pass
        host = value.lower().rstrip(".")
        if not _HOST_NAME.fullmatch(host):
            raise ConfigError(
                f"{variable}: '{value}' is not a host name, IP address or network; list "
                "only the internal hosts alert channels may reach, e.g. "
                "127.0.0.1,hooks.corp.example,10.20.0.0/16 (no scheme, port or path)."
            )
        entries.append(host)
    return tuple(entries)


def _on_off(env: Mapping[str, str], variable: str, default: bool, meaning: str) -> bool:
    value = (env.get(variable) or "").strip().lower()
    if not value:
        return default
    if value not in ("on", "off"):
        raise ConfigError(f"{variable} must be on or off, not '{env[variable]}' ({meaning}).")
    return value == "on"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    return Settings(
        database_url=_database_url(env.get("SWITCHBOARD_DATABASE_URL") or DEFAULT_DATABASE_URL),
        keyring_file=Path(env.get("SWITCHBOARD_KEYRING_FILE") or DEFAULT_KEYRING_FILE).expanduser(),
        base_url=validate_base_url(env.get("SWITCHBOARD_8X8_BASE_URL") or DEFAULT_8X8_BASE_URL),
        inline_keys=env.get("SWITCHBOARD_KEYS") or None,
        session_idle=_duration(env, "SWITCHBOARD_SESSION_IDLE_MINUTES", "minutes", timedelta(minutes=30)),
        session_lifetime=_duration(env, "SWITCHBOARD_SESSION_HOURS", "hours", timedelta(hours=12)),
        public_origin=(
            origin_of(env["SWITCHBOARD_PUBLIC_URL"], "SWITCHBOARD_PUBLIC_URL")
            if env.get("SWITCHBOARD_PUBLIC_URL")
            else None
        ),
        allowed_origins=tuple(
            origin_of(o, "SWITCHBOARD_ALLOWED_ORIGINS") for o in _list(env, "SWITCHBOARD_ALLOWED_ORIGINS")
        ),
        trusted_proxies=trusted_proxies(env),
        metrics_allow=_networks(env, "SWITCHBOARD_METRICS_ALLOW", "your Prometheus servers'"),
        metrics_connection_label=_on_off(
            env,
            "SWITCHBOARD_METRICS_CONNECTION_LABEL",
            True,
            "off drops the connection label of per-connection metrics",
        ),
        worker=_on_off(
            env,
            "SWITCHBOARD_WORKER",
            True,
            "off when dedicated `switchboard worker` processes run the scheduled checks instead of the server",
        ),
        alert_allow=_alert_allow(env),
        eightbyeight_transport=eightbyeight_transport(env),
    )


def trusted_proxies(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """SWITCHBOARD_TRUSTED_PROXIES alone, for the server to read before the other settings."""
    return _networks(os.environ if env is None else env, "SWITCHBOARD_TRUSTED_PROXIES", "the proxy's")


def eightbyeight_transport(env: Mapping[str, str] | None = None) -> str:
    """SWITCHBOARD_8X8_TRANSPORT alone, for the 8x8 client to read when it is made."""
    env = os.environ if env is None else env
    variable = "SWITCHBOARD_8X8_TRANSPORT"
    value = (env.get(variable) or EIGHTBYEIGHT_TRANSPORTS[0]).strip().lower()
    if value not in EIGHTBYEIGHT_TRANSPORTS:
        raise ConfigError(
            f"{variable} must be {' or '.join(EIGHTBYEIGHT_TRANSPORTS)}, not '{env[variable][:40]}' "
            "(aiohttp, the default, or httpx: httpx's own HTTP client, should an aiohttp release "
            "misbehave)."
        )
    return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return load_settings()
