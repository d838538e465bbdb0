"""Who may use the console when people sign in through OIDC: OIDC proves who someone is,
this list says whether they may come in and with which role.

Configured in ``.streamlit/secrets.toml``::

    [access]
    "alice@example.com" = "admin"     # one address
    "@example.com" = "viewer"          # everyone at a domain

An exact address wins over its domain. An identity whose provider says the address is not
verified (``email_verified`` is anything but the JSON value true: absent, false, or a
string such as "false") is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lib.kernel.errors import ConfigError
from lib.services.guard.access import Role


@dataclass(frozen=True)
class AllowList:
    entries: Mapping[str, Role]

    @classmethod
    def parse(cls, raw: Mapping[str, object]) -> AllowList:
        entries: dict[str, Role] = {}
        roles = ", ".join(r.value for r in Role)
        for key, value in raw.items():
            entry = str(key).strip().casefold()
            if "@" not in entry or entry.endswith("@") or " " in entry:
                raise ConfigError(f"[access] entry '{key}' must be an e-mail address or '@domain'.")
            if value not in {r.value for r in Role}:
                raise ConfigError(f"[access] entry '{key}' has role '{value}'; use one of: {roles}.")
            entries[entry] = Role(str(value))
        return cls(entries)

    def role_for(self, email: str | None, email_verified: object = None) -> Role | None:
        """The role for this identity, or None when it may not come in."""
        if not email or email_verified is not True:
            return None
        address = email.strip().casefold()
        domain = "@" + address.rpartition("@")[2]
        return self.entries.get(address) or self.entries.get(domain)
