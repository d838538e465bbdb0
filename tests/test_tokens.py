"""API tokens for machines, on a real SQLite file and a real PostgreSQL: shown once, stored as
a hash, acting with their role, read again at every action, revoked at once, and every refused
use audited without the token. Over HTTP: tests/test_api.py."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from lib.kernel.errors import NotFoundError, ValidationError
from lib.services.accounts import api_tokens
from lib.services.guard import audit
from lib.services.guard.access import (
    NotAllowed,
    Permission,
    ReauthenticationRequired,
    Role,
    SignInEnded,
    require,
)
from lib.store.db import read_session, write_session
from lib.store.models import ApiToken, utcnow
from tests.fixtures.people import ADMIN, web


def _refusals(engine: Engine) -> list[tuple[str, str | None, str, str]]:
    return [
        (e.actor, e.client_address, e.target, e.detail)
        for e in audit.events(engine, ADMIN)
        if e.action == "token.use" and e.result == audit.REFUSED
    ]


def _row(engine: Engine, name: str) -> ApiToken:
    with read_session(engine) as session:
        return session.exec(select(ApiToken).where(ApiToken.name == name)).scalars().one()  # type: ignore[call-overload]


def test_a_token_is_shown_once_and_only_its_hash_is_kept(engine: Engine, database_url: str) -> None:
    issued = api_tokens.create(engine, "Prometheus-Prod", "viewer", actor=ADMIN)
    token = issued.token.get_secret_value()
    assert token.startswith("sbt_") and len(token) >= 4 + 43  # 256 random bits, URL-safe
    assert (issued.name, issued.role) == ("prometheus-prod", Role.VIEWER)  # names ignore case
    assert token not in repr(issued)
    row = _row(engine, "prometheus-prod")
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() and row.created_by == ADMIN.name
    assert api_tokens.create(engine, "other", "operator", actor=ADMIN).token.get_secret_value() != token
    if database_url.startswith("sqlite"):
        files = Path(database_url.removeprefix("sqlite:///")).parent.glob("*")
        assert not any(token.encode() in path.read_bytes() for path in files)
    [made, _] = [e for e in audit.events(engine, ADMIN) if e.action == "token.create"]
    assert (made.target, made.detail) == ("prometheus-prod", "role viewer") and token not in made.detail


@pytest.mark.parametrize(
    ("name", "role", "field"),
    [
        ("", "viewer", "name"),
        ("has space", "viewer", "name"),
        ("-dash-first", "viewer", "name"),
        ("x" * 81, "viewer", "name"),
        ("grafana", "admin", "role"),
        ("grafana", "root", "role"),
    ],
)
def test_bad_names_and_roles_are_refused_naming_the_field(engine: Engine, name: str, role: str, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        api_tokens.create(engine, name, role, actor=ADMIN)
    assert [e.field for e in refused.value.errors] == [field]
    assert api_tokens.list_tokens(engine, actor=ADMIN) == []


def test_a_name_is_taken_for_good_even_after_revoking(engine: Engine) -> None:
    api_tokens.create(engine, "grafana", "viewer", actor=ADMIN)
    api_tokens.revoke(engine, "GRAFANA", actor=ADMIN)
    with pytest.raises(ValidationError, match="revoked ones keep their names"):
        api_tokens.create(engine, "Grafana", "viewer", actor=ADMIN)
    with pytest.raises(NotFoundError, match="already revoked"):
        api_tokens.revoke(engine, "grafana", actor=ADMIN)
    with pytest.raises(NotFoundError, match="No API token is named 'nobody'"):
        api_tokens.revoke(engine, "nobody", actor=ADMIN)


def test_only_an_admin_with_a_recent_proof_makes_or_revokes_tokens(engine: Engine) -> None:
    api_tokens.create(engine, "grafana", "viewer", actor=ADMIN)
    operator = web(engine, "olga", Role.OPERATOR, proved_at=utcnow())
    stale_admin = web(engine, "ada", Role.ADMIN)
    for attempt in (
        lambda who: api_tokens.create(engine, "more", "viewer", actor=who),
        lambda who: api_tokens.revoke(engine, "grafana", actor=who),
    ):
        with pytest.raises(NotAllowed):
            attempt(operator)
        with pytest.raises(ReauthenticationRequired):
            attempt(stale_admin)
    with pytest.raises(NotAllowed):
        api_tokens.list_tokens(engine, actor=operator)
    assert [t.name for t in api_tokens.list_tokens(engine, actor=stale_admin)] == ["grafana"]  # listing needs no proof
    fresh_admin = web(engine, "ada", Role.ADMIN, proved_at=utcnow())
    api_tokens.revoke(engine, "grafana", actor=fresh_admin)
    assert api_tokens.list_tokens(engine, actor=ADMIN)[0].revoked_at is not None


def test_a_token_acts_with_its_role_and_records_its_last_use_once_a_minute(engine: Engine) -> None:
    token = api_tokens.create(engine, "grafana", "operator", actor=ADMIN).token.get_secret_value()
    assert api_tokens.list_tokens(engine, actor=ADMIN)[0].last_used_at is None
    me = api_tokens.authenticate(engine, token, address="10.1.2.3", target="GET /api/v1/status")
    assert (me.name, me.role, me.via, me.address) == ("token:grafana", Role.OPERATOR, "token", "10.1.2.3")
    assert require(me, Permission.RUN_TESTS) == me
    with pytest.raises(NotAllowed):
        require(me, Permission.MANAGE_CONNECTIONS)
    with pytest.raises(NotAllowed):
        require(me, Permission.MANAGE_USERS, recent_proof=True)
    assert not me.proved_recently(utcnow())  # a token is never a proof of identity
    first = _row(engine, "grafana").last_used_at
    assert first is not None
    api_tokens.authenticate(engine, token, address="10.1.2.3", target="GET /metrics")
    assert _row(engine, "grafana").last_used_at == first  # within the minute: no write
    with write_session(engine) as session:
        session.execute(update(ApiToken).values(last_used_at=first - timedelta(minutes=2)))
    api_tokens.authenticate(engine, token, address="10.1.2.3", target="GET /metrics")
    assert _row(engine, "grafana").last_used_at > first  # type: ignore[operator]
    assert _refusals(engine) == []


def test_a_revoked_token_stops_at_once_even_mid_request_and_is_audited(engine: Engine) -> None:
    token = api_tokens.create(engine, "grafana", "viewer", actor=ADMIN).token.get_secret_value()
    me = api_tokens.authenticate(engine, token, address="10.1.2.3", target="GET /api/v1/status")
    api_tokens.revoke(engine, "grafana", actor=ADMIN)
    with pytest.raises(SignInEnded):
        require(me, Permission.READ_STATUS)  # a principal taken before the revocation
    with pytest.raises(api_tokens.TokenRefused) as refused:
        api_tokens.authenticate(engine, token, address="10.1.2.3", target="GET /api/v1/status")
    assert refused.value.reason == "revoked token" and token not in str(refused.value)
    assert _refusals(engine) == [("token:grafana", "10.1.2.3", "GET /api/v1/status", "revoked token")]
    assert all(token not in str(vars(e)) for e in audit.events(engine, ADMIN))


def test_unknown_tokens_are_audited_once_a_minute_per_address_and_none_is_not(engine: Engine) -> None:
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        with pytest.raises(api_tokens.TokenRefused):
            api_tokens.authenticate(engine, "sbt_guessed-value", address=address, target="GET /metrics")
    for missing in (None, ""):
        with pytest.raises(api_tokens.TokenRefused, match="Send a valid Switchboard API token"):
            api_tokens.authenticate(engine, missing, address="10.0.0.1", target="GET /metrics")
    assert _refusals(engine) == [
        ("token:unknown", "10.0.0.1", "GET /metrics", "unknown token"),
        ("token:unknown", "10.0.0.2", "GET /metrics", "unknown token"),
    ]
    assert "sbt_guessed-value" not in str([vars(e) for e in audit.events(engine, ADMIN)])


def test_a_role_that_may_not_is_audited(engine: Engine) -> None:
    token = api_tokens.create(engine, "grafana", "viewer", actor=ADMIN).token.get_secret_value()
    me = api_tokens.authenticate(engine, token, address="10.1.2.3", target="POST /api/v1/x")
    api_tokens.refuse(me, Permission.RUN_TESTS, "POST /api/v1/x")
    assert _refusals(engine) == [("token:grafana", "10.1.2.3", "POST /api/v1/x", "role viewer may not run tests")]
