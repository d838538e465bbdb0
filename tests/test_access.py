"""Roles are enforced in the service layer: each role × each action is allowed or refused as
the issue specifies, whatever the pages show; sensitive actions also need fresh proof."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from pydantic import SecretStr

from lib import audit, checks, connections, export, keys, users, verify
from lib.access import (
    GRANTS,
    REAUTH_VALID,
    NotAllowed,
    Permission,
    Principal,
    ReauthenticationRequired,
    Role,
    least_role_for,
)
from lib.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.vault import Keyring, Vault, new_key
from tests.fixtures.people import ADMIN, fresh
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
        return connections.update(rt.engine, rt.vault, view.id, connections.input_from_view(view, environment="x"),
                                  expected_version=view.version, actor=p)

    def rotate(p: Principal) -> object:
        return keys.rotate(rt.engine, Vault(Keyring("k9", {**rt.vault.keyring.keys, "k9": new_key()})), actor=p)

    return {
        "read the audit trail": lambda p: audit.events(rt.engine, p),
        "run tests": lambda p: checks.run_checks(rt, prober, connection_ids=[fresh_connection().id], triggered_by=p),
        "export status": lambda p: export.export(rt.engine, "csv", actor=p),
        "create a connection": lambda p: connections.create(rt.engine, rt.vault, form_for(app, f"n{next(made)}"),
                                                            actor=p),
        "save a verified connection": lambda p: verify.save(rt, prober, form_for(app, f"v{next(made)}"), actor=p),
        "update a connection": update,
        "delete a connection": lambda p: connections.delete(rt.engine, fresh_connection().id, actor=p),
        "rotate keys": rotate,
        "add a user": lambda p: users.add(rt.engine, f"new{next(made)}", PASSWORD, "viewer", actor=p),
        "set a role": lambda p: users.set_role(rt.engine, fresh_user(), "operator", actor=p),
        "reset a password": lambda p: users.reset_password(rt.engine, fresh_user(), SecretStr("a fresh long phrase 9"),
                                                           actor=p),
        "remove a user": lambda p: users.remove(rt.engine, fresh_user(), actor=p),
    }


ALLOWED = {
    Role.ADMIN: {"read the audit trail", "run tests", "export status", "create a connection",
                 "save a verified connection", "update a connection", "delete a connection", "rotate keys",
                 "add a user", "set a role", "reset a password", "remove a user"},
    Role.OPERATOR: {"run tests", "export status"},
    Role.VIEWER: set(),
}
SENSITIVE = {"delete a connection", "rotate keys", "add a user", "set a role", "reset a password", "remove a user"}


@pytest.mark.parametrize("role", list(Role))
def test_each_role_and_each_action(role: Role, runtime: Runtime, simulator: SimulatorServer,
                                   prober_factory: ProberFactory) -> None:
    who = fresh(Principal(f"someone-{role}", role, "10.1.1.1", "local"))
    for name, act in actions(runtime, simulator, prober_factory).items():
        if name in ALLOWED[role]:
            act(who)
        else:
            with pytest.raises(NotAllowed) as refused:
                act(who)
            assert f"Your role ({role})" in str(refused.value) and "Ask a Switchboard admin" in str(refused.value)


def test_sensitive_actions_need_fresh_proof_of_identity(runtime: Runtime, simulator: SimulatorServer,
                                                        prober_factory: ProberFactory) -> None:
    stale = Principal("web-admin", Role.ADMIN, "10.1.1.1", "local")
    expired = replace(fresh(stale), reauthenticated_at=fresh(stale).reauthenticated_at - 2 * REAUTH_VALID)
    for name, act in actions(runtime, simulator, prober_factory).items():
        for who in (stale, expired):
            if name in SENSITIVE:
                with pytest.raises(ReauthenticationRequired):
                    act(who)
            else:
                act(who)
        if name in SENSITIVE:
            act(fresh(stale))


def test_refusals_change_nothing(runtime: Runtime, simulator: SimulatorServer) -> None:
    before = len(audit.events(runtime.engine, ADMIN))
    viewer = Principal("v", Role.VIEWER, via="local")
    with pytest.raises(NotAllowed):
        connections.create(runtime.engine, runtime.vault, form_for(simulator.scenario.apps[0], "x"), actor=viewer)
    assert connections.count(runtime.engine) == 0 and len(audit.events(runtime.engine, ADMIN)) == before


def test_roles_nest_and_every_permission_has_a_least_role() -> None:
    assert GRANTS[Role.VIEWER] < GRANTS[Role.OPERATOR] < GRANTS[Role.ADMIN] == frozenset(Permission)
    assert least_role_for(Permission.RUN_TESTS) is Role.OPERATOR
    assert least_role_for(Permission.READ_STATUS) is Role.VIEWER
    assert least_role_for(Permission.MANAGE_KEYS) is Role.ADMIN
