"""Roles are enforced in the service layer: each role × each action is allowed or refused as
the issue specifies, whatever the pages show; sensitive actions also need fresh proof."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import update

from lib.services import connections
from lib.services.accounts import sessions, users
from lib.services.checking import checks
from lib.services.connections import keys, linking
from lib.services.guard import audit
from lib.services.guard.access import (
    GRANTS,
    REAUTH_VALID,
    NotAllowed,
    Permission,
    Principal,
    ReauthenticationRequired,
    Role,
    SignInEnded,
    least_role_for,
)
from lib.services.reporting import export
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.store.db import write_session
from lib.store.models import WebSession, utcnow
from lib.store.vault import Keyring, Vault, new_key
from tests.fixtures.people import ADMIN, LIMITS, key_of, web
from tests.fixtures.prober import ProberFactory
from tests.test_checks import form_for

PASSWORD = SecretStr("cobalt lantern orchard 42")
Action = Callable[[Principal], object]


def actions(rt: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory) -> dict[str, Action]:
    """Every service-layer action, each runnable again for each role."""
    app = simulator.scenario.apps[0]
    prober = prober_factory(simulator.url)
    made = iter(range(1000))

    def fresh_connection() -> connections.ConnectionView:
        return connections.create(rt.engine, rt.vault, form_for(app, f"c{next(made)}"), actor=ADMIN)

    def fresh_user() -> str:
        name = f"user{next(made)}"
        users.add(rt.engine, name, PASSWORD, "viewer", actor=ADMIN)
        return name

    def update(p: Principal) -> object:
        view = fresh_connection()
        return connections.update(
            rt.engine,
            rt.vault,
            view.id,
            connections.input_from_view(view, environment="x"),
            expected_version=view.version,
            actor=p,
        )

    def rotate(p: Principal) -> object:
        return keys.rotate(rt.engine, Vault(Keyring("k9", {**rt.vault.keyring.keys, "k9": new_key()})), actor=p)

    return {
        "read the audit trail": lambda p: audit.events(rt.engine, p),
        "run tests": lambda p: checks.run_checks(rt, prober, connection_ids=[fresh_connection().id], triggered_by=p),
        "export status": lambda p: export.export(rt.engine, "csv", actor=p),
        "create a connection": lambda p: connections.create(
            rt.engine, rt.vault, form_for(app, f"n{next(made)}"), actor=p
        ),
        "save a verified connection": lambda p: linking.save(rt, prober, form_for(app, f"v{next(made)}"), actor=p),
        "update a connection": update,
        "delete a connection": lambda p: connections.delete(rt.engine, fresh_connection().id, actor=p),
        "rotate keys": rotate,
        "add a user": lambda p: users.add(rt.engine, f"new{next(made)}", PASSWORD, "viewer", actor=p),
        "set a role": lambda p: users.set_role(rt.engine, fresh_user(), "operator", actor=p),
        "reset a password": lambda p: users.reset_password(
            rt.engine, fresh_user(), SecretStr("a fresh long phrase 9"), actor=p
        ),
        "remove a user": lambda p: users.remove(rt.engine, fresh_user(), actor=p),
    }


ALLOWED = {
    Role.ADMIN: {
        "read the audit trail",
        "run tests",
        "export status",
        "create a connection",
        "save a verified connection",
        "update a connection",
        "delete a connection",
        "rotate keys",
        "add a user",
        "set a role",
        "reset a password",
        "remove a user",
    },
    Role.OPERATOR: {"run tests", "export status"},
    Role.VIEWER: set(),
}
SENSITIVE = {"delete a connection", "rotate keys", "add a user", "set a role", "reset a password", "remove a user"}


@pytest.mark.parametrize("role", list(Role))
def test_each_role_and_each_action(
    role: Role, runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    who = web(runtime.engine, f"someone-{role}", role, address="10.1.1.1", proved_at=utcnow())
    for name, act in actions(runtime, simulator, prober_factory).items():
        if name in ALLOWED[role]:
            act(who)
        else:
            with pytest.raises(NotAllowed) as refused:
                act(who)
            assert f"Your role ({role})" in str(refused.value) and "Ask a Switchboard admin" in str(refused.value)


def test_sensitive_actions_need_fresh_proof_of_identity(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    never = web(runtime.engine, "web-admin", Role.ADMIN, address="10.1.1.1")
    long_ago = web(runtime.engine, "web-admin", Role.ADMIN, proved_at=utcnow() - 2 * REAUTH_VALID)
    for name, act in actions(runtime, simulator, prober_factory).items():
        for who in (never, long_ago):
            if name in SENSITIVE:
                with pytest.raises(ReauthenticationRequired):
                    act(who)
            else:
                act(who)
        if name in SENSITIVE:
            # The password entered again now: the same principal object may act, because
            # every action reads its session again.
            sessions.mark_reauthenticated(runtime.engine, key_of(never), never)
            act(never)
            sessions.mark_reauthenticated(runtime.engine, key_of(never), never, now=utcnow() - 2 * REAUTH_VALID)


def test_refusals_change_nothing(runtime: Runtime, simulator: SimulatorServer) -> None:
    viewer = web(runtime.engine, "v", Role.VIEWER)
    before = len(audit.events(runtime.engine, ADMIN))
    with pytest.raises(NotAllowed):
        connections.create(runtime.engine, runtime.vault, form_for(simulator.scenario.apps[0], "x"), actor=viewer)
    assert connections.count(runtime.engine) == 0 and len(audit.events(runtime.engine, ADMIN)) == before


def test_roles_nest_and_every_permission_has_a_least_role() -> None:
    assert GRANTS[Role.VIEWER] < GRANTS[Role.OPERATOR] < GRANTS[Role.ADMIN] == frozenset(Permission)
    assert least_role_for(Permission.RUN_TESTS) is Role.OPERATOR
    assert least_role_for(Permission.READ_STATUS) is Role.VIEWER
    assert least_role_for(Permission.MANAGE_KEYS) is Role.ADMIN


# --- A principal kept after its sign-in changed (what a Streamlit callback used to hold) -----


def _age_session(rt: Runtime, who: Principal, **ago: timedelta) -> None:
    with write_session(rt.engine) as session:
        session.execute(
            update(WebSession)
            .where(WebSession.token_hash == key_of(who).digest)
            .values(**{column: utcnow() - delta for column, delta in ago.items()})
        )


STALE: dict[str, Callable[[Runtime, Principal], object]] = {
    "signed out": lambda rt, who: sessions.end(rt.engine, key_of(who), who),
    "demoted to viewer": lambda rt, who: users.set_role(rt.engine, who.name, "viewer", actor=ADMIN),
    "removed": lambda rt, who: users.remove(rt.engine, who.name, actor=ADMIN),
    "idle for 44 minutes": lambda rt, who: _age_session(rt, who, last_seen_at=timedelta(minutes=44)),
    "older than 12 hours": lambda rt, who: _age_session(rt, who, created_at=timedelta(hours=13)),
    "password reset": lambda rt, who: users.reset_password(
        rt.engine, who.name, SecretStr("fresh long phrase 12"), actor=ADMIN
    ),
}


@pytest.mark.parametrize("stale", list(STALE))
def test_a_principal_kept_after_its_sign_in_changed_can_do_nothing(
    stale: str, runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    web(runtime.engine, "keeper", Role.ADMIN)  # so that "kept" is not the last admin
    kept = web(runtime.engine, "kept", Role.ADMIN, proved_at=utcnow())
    acts = actions(runtime, simulator, prober_factory)
    STALE[stale](runtime, kept)
    since = len(audit.events(runtime.engine, ADMIN))
    for name, act in acts.items():
        with pytest.raises((SignInEnded, NotAllowed)):
            act(kept)
        by_kept = [e for e in audit.events(runtime.engine, ADMIN)[since:] if e.actor == "kept"]
        assert not by_kept, (name, by_kept)


def test_an_oidc_session_acts_with_the_role_the_allow_list_gives_now(runtime: Runtime) -> None:
    key = sessions.Key.of("oidc:https://idp|ann|1|n")
    sessions.start(runtime.engine, key, Principal("ann@example.com", Role.OPERATOR, via="oidc"))
    ann = sessions.principal(runtime.engine, key, LIMITS)
    assert ann is not None and ann.role is Role.OPERATOR
    export.export(runtime.engine, "csv", actor=ann)
    sessions.assign_role(runtime.engine, key, Role.VIEWER)
    with pytest.raises(NotAllowed):
        export.export(runtime.engine, "csv", actor=ann)
    sessions.refuse(runtime.engine, key, ann, "no longer on the [access] allow-list")
    with pytest.raises(SignInEnded):
        audit.events(runtime.engine, ann)


def test_a_web_principal_without_its_session_is_refused(runtime: Runtime) -> None:
    """A principal made up from a name and a role, as a page could once pass around."""
    with pytest.raises(SignInEnded):
        export.export(runtime.engine, "csv", actor=Principal("made-up", Role.ADMIN, via="local"))
