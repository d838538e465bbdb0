"""Who may do what: roles, permissions and the principal every service call acts for.

OIDC or a password authenticates a person; this module authorises them. Every service
function that changes something or reads the audit trail calls ``require`` first, so a
hidden button is never the only thing standing between a role and an action.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum

from lib.errors import SwitchboardError

REAUTH_VALID = timedelta(minutes=5)  # how long a re-entered password (or fresh OIDC sign-in) counts


class Role(StrEnum):
    ADMIN = "admin"  # everything: connections, users, keys, the audit trail
    OPERATOR = "operator"  # run tests, export, read
    VIEWER = "viewer"  # read status


class Permission(StrEnum):
    READ_STATUS = "read status"
    RUN_TESTS = "run tests"
    EXPORT = "export status"
    MANAGE_CONNECTIONS = "add, change or delete connections"
    MANAGE_USERS = "manage users"
    MANAGE_KEYS = "manage encryption keys"
    READ_AUDIT = "read the audit trail"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.OPERATOR: frozenset({Permission.READ_STATUS, Permission.RUN_TESTS, Permission.EXPORT}),
    Role.VIEWER: frozenset({Permission.READ_STATUS}),
}


def least_role_for(permission: Permission) -> Role:
    """The least powerful role holding ``permission`` (roles are ordered viewer < operator < admin)."""
    return next(role for role in (Role.VIEWER, Role.OPERATOR, Role.ADMIN) if permission in GRANTS[role])


@dataclass(frozen=True)
class Principal:
    """The person (or shell) an action is done for; what the audit trail records."""

    name: str
    role: Role
    address: str | None = None  # the client address, when known
    via: str = "local"  # "local" password, "oidc", "cli", or "setup code"
    reauthenticated_at: datetime | None = None  # last proof of identity in this session

    def can(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    def proved_recently(self, now: datetime) -> bool:
        """Whether a sensitive action may go ahead without asking for the password again.
        The shell and the setup code are proof in themselves."""
        if self.via in ("cli", "setup code"):
            return True
        return self.reauthenticated_at is not None and now - self.reauthenticated_at <= REAUTH_VALID


def shell() -> Principal:
    """Whoever runs ``python -m lib``: shell access to the key file is admin access anyway."""
    return Principal(name=f"cli:{getpass.getuser()}", role=Role.ADMIN, via="cli")


class NotAllowed(SwitchboardError):
    """The signed-in role may not do this; says which role may, and who can grant it."""

    def __init__(self, principal: Principal, permission: Permission) -> None:
        self.permission = permission
        needed = least_role_for(permission)
        super().__init__(f"Your role ({principal.role}) may not {permission}. "
                         f"Ask a Switchboard admin for the {needed} role if you need to.")


class ReauthenticationRequired(SwitchboardError):
    def __init__(self) -> None:
        super().__init__("Confirm it is you first: enter your password again (or sign in again "
                         "with your company account), then repeat the action.")


def require(principal: Principal, permission: Permission, *, recent_proof: bool = False) -> None:
    """Refuse unless ``principal`` holds ``permission`` and, with ``recent_proof``, also proved
    who they are within REAUTH_VALID."""
    if not principal.can(permission):
        raise NotAllowed(principal, permission)
    if recent_proof and not principal.proved_recently(datetime.now(timezone.utc)):
        raise ReauthenticationRequired()
