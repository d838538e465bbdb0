"""Who may do what: roles, permissions and the principal every service call acts for.

OIDC or a password authenticates a person; this module authorises them. Every service
function that changes something or reads the audit trail calls ``require`` first, so a
hidden button is never the only thing standing between a role and an action.

A principal from a web sign-in is only a claim about the moment it was made: ``require``
asks its session again (still live, account still there, its role now) and refuses when the
answer changed. A Streamlit callback, fragment or download that kept an old principal
therefore fails closed, whatever the page did.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from lib.kernel.errors import SwitchboardError

REAUTH_VALID = timedelta(minutes=5)  # how long a re-entered password (or fresh OIDC sign-in) counts
# Ways of acting that are proof in themselves and have no web session to ask: the shell
# (whoever runs it can read the keyring), the one-time setup code, and the schedule.
SELF_PROVING = frozenset({"cli", "setup code", "schedule"})


class Role(StrEnum):
    ADMIN = "admin"  # everything: connections, users, keys, the audit trail
    OPERATOR = "operator"  # run tests, export, acknowledge alerts, read
    VIEWER = "viewer"  # read status


class Permission(StrEnum):
    READ_STATUS = "read status"
    RUN_TESTS = "run tests"
    EXPORT = "export status"
    MANAGE_CONNECTIONS = "add, change or delete connections"
    MANAGE_USERS = "manage users"
    MANAGE_KEYS = "manage encryption keys"
    READ_AUDIT = "read the audit trail"
    MANAGE_ALERTS = "manage alert channels"
    ACKNOWLEDGE_ALERTS = "acknowledge alerts"  # on-call engineers are operators


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset(
        {Permission.READ_STATUS, Permission.RUN_TESTS, Permission.EXPORT, Permission.ACKNOWLEDGE_ALERTS}
    ),
    Role.VIEWER: frozenset({Permission.READ_STATUS}),
}


def least_role_for(permission: Permission) -> Role:
    """The least powerful role holding ``permission`` (roles are ordered viewer < operator < admin)."""
    return next(role for role in (Role.VIEWER, Role.OPERATOR, Role.ADMIN) if permission in GRANTS[role])


@dataclass(frozen=True)
class Standing:
    """What a web session's row says now: the role and the last proof of identity."""

    role: Role
    reauthenticated_at: datetime | None
    must_change_password: bool = False  # an admin set the password; nothing opens until it is changed


class LiveSession(Protocol):
    """A web sign-in, asked again on every ``require`` (see lib.services.accounts.sessions.Bound)."""

    def standing(self) -> Standing | None:
        """The session's standing now, or None when it ended, expired or lost its account."""
        ...


@dataclass(frozen=True)
class Principal:
    """The person (or shell) an action is done for; what the audit trail records."""

    name: str
    role: Role
    address: str | None = None  # the client address, when known
    via: str = "local"  # "local" password, "oidc", "cli", "setup code", "token" (lib.services.accounts.api_tokens) or "schedule"
    reauthenticated_at: datetime | None = None  # last proof of identity in this session
    # The web session (or API token) this principal came from; None for the shell and the setup code.
    session: LiveSession | None = field(default=None, compare=False, repr=False)

    def can(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    def proved_recently(self, now: datetime) -> bool:
        """Whether a sensitive action may go ahead without asking for the password again.
        The shell and the setup code are proof in themselves."""
        if self.via in ("cli", "setup code"):
            return True
        return self.reauthenticated_at is not None and now - self.reauthenticated_at <= REAUTH_VALID

    def as_of_now(self) -> Principal:
        """This principal with its role and proof as they stand now; raises SignInEnded
        when its web session ended (or it has none to show)."""
        if self.via in SELF_PROVING:
            return self
        standing = self.session.standing() if self.session is not None else None
        if standing is None:
            raise SignInEnded()
        if standing.must_change_password:
            raise PasswordChangeRequired()
        return replace(self, role=standing.role, reauthenticated_at=standing.reauthenticated_at)


def shell() -> Principal:
    """Whoever runs ``switchboard`` (or ``python -m lib``): shell access to the key file is admin access anyway."""
    return Principal(name=f"cli:{getpass.getuser()}", role=Role.ADMIN, via="cli")


def schedule() -> Principal:
    """The schedule's scheduled checks: an operator, so it may run tests and change nothing."""
    return Principal(name="schedule", role=Role.OPERATOR, via="schedule")


class NotAllowed(SwitchboardError):
    """The signed-in role may not do this; says which role may, and who can grant it."""

    def __init__(self, principal: Principal, permission: Permission) -> None:
        self.permission = permission
        needed = least_role_for(permission)
        super().__init__(
            f"Your role ({principal.role}) may not {permission}. "
            f"Ask a Switchboard admin for the {needed} role if you need to."
        )


class SignInEnded(SwitchboardError):
    """The web session behind an action is over: signed out, timed out or the account gone."""

    def __init__(self) -> None:
        super().__init__(
            "Your sign-in has ended (signed out, timed out, or your account was removed). "
            "Sign in again, then repeat the action."
        )


class PasswordChangeRequired(SwitchboardError):
    """An admin set this account's password: its owner chooses their own before doing anything else."""

    def __init__(self) -> None:
        super().__init__(
            "An admin set your password, so choose your own before you go on: open Change password, then come back."
        )


class ReauthenticationRequired(SwitchboardError):
    def __init__(self) -> None:
        super().__init__(
            "Confirm it is you first: enter your password again (or sign in again "
            "with your company account), then repeat the action."
        )


def require(principal: Principal, permission: Permission, *, recent_proof: bool = False) -> Principal:
    """Refuse unless ``principal``, as its session stands now, holds ``permission`` and, with
    ``recent_proof``, also proved who they are within REAUTH_VALID. Returns that current
    principal."""
    current = principal.as_of_now()
    if not current.can(permission):
        raise NotAllowed(current, permission)
    if recent_proof and not current.proved_recently(datetime.now(UTC)):
        raise ReauthenticationRequired()
    return current
