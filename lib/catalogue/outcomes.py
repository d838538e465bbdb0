"""What a test can come back with: one entry per outcome, with everything people are told
about it (cause, who must act, the fix, one more sentence of help, a guide anchor) and how the
console treats it (severity; whether 8x8 could be asked at all). Keys are a contract
(see shared/design.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from lib.catalogue.policy import CHECK_DEADLINE_S, MAX_RETRIES, MAX_RETRY_AFTER_S, times


class OutcomeKey(StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    PRODUCT_NOT_ENABLED = "product_not_enabled"
    FORBIDDEN = "forbidden"
    MISSING_CONFIG = "missing_config"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    VENDOR_ERROR = "vendor_error"
    TIMEOUT = "timeout"
    NETWORK_ERROR = "network_error"
    TLS_ERROR = "tls_error"
    UNEXPECTED_RESPONSE = "unexpected_response"
    CREDENTIAL_UNREADABLE = "credential_unreadable"


class Actor(StrEnum):
    """Who must act to fix an outcome."""

    ADMIN = "8x8 admin (Admin Console)"
    SUPER_ADMIN = "8x8 Super Admin"
    SWITCHBOARD_ADMIN = "Switchboard admin"
    VENDOR = "8x8"
    NETWORK = "Network administrator"
    NOBODY = "Nobody"


Severity = Literal["success", "warning", "error"]


@dataclass(frozen=True)
class Outcome:
    key: OutcomeKey
    label: str
    icon: str
    cause: str
    actor: Actor
    fix: str
    help: str  # one more sentence, for the guide's troubleshooting entry
    guide_anchor: str
    severity: Severity = "error"
    unreachable: bool = False  # 8x8 could not be asked (as opposed to: 8x8 said no)

    @property
    def ok(self) -> bool:
        return self.key is OutcomeKey.OK

    @property
    def badge(self) -> str:
        return f"{self.icon} {self.label}"


class Judged:
    """Anything with an ``outcome`` key (a probe result, a stored check): ``ok`` is defined here."""

    __slots__ = ()
    outcome: str

    @property
    def ok(self) -> bool:
        return self.outcome == OutcomeKey.OK


OUTCOMES: Mapping[str, Outcome] = MappingProxyType(
    {
        o.key: o
        for o in (
            Outcome(
                OutcomeKey.OK,
                "OK",
                "✅",
                cause="8x8 answered the test call as expected.",
                actor=Actor.NOBODY,
                fix="Nothing to do.",
                help="The product works for this app with these settings.",
                guide_anchor="outcome-ok",
                severity="success",
            ),
            Outcome(
                OutcomeKey.BAD_CREDENTIALS,
                "Credentials refused",
                "🔑",
                cause="8x8 refused the Client ID and Client Secret.",
                actor=Actor.ADMIN,
                fix="Copy the Client ID and Client Secret again from Home > API Management in the 8x8 "
                "Admin Console (regenerate the secret if it is lost) and update the connection.",
                help="Check for a missing last character or a space picked up while copying. A "
                "regenerated "
                "secret replaces the old one at once.",
                guide_anchor="outcome-bad-credentials",
            ),
            Outcome(
                OutcomeKey.PRODUCT_NOT_ENABLED,
                "Product not enabled",
                "🚫",
                cause="The API app is not allowed to use this product.",
                actor=Actor.ADMIN,
                fix="In the 8x8 Admin Console, edit the API app and tick this product; changes can "
                "take a "
                "few minutes to reach 8x8's gateway. Cloud Storage needs a Super Admin.",
                help="8x8 issued a token, but the token's product list does not cover this product. "
                "Compare the '8x8 granted' column with what you expected.",
                guide_anchor="outcome-product-not-enabled",
            ),
            Outcome(
                OutcomeKey.FORBIDDEN,
                "Access denied",
                "⛔",
                cause="8x8 accepted the app but denied access to this resource (for example a tenant "
                "that "
                "does not belong to your company).",
                actor=Actor.ADMIN,
                fix="Check the tenant ID and PBX name in the connection against 8x8 Configuration "
                "Manager; ask an 8x8 Super Admin if the app needs more rights.",
                help="For chat this usually means the tenant ID belongs to another customer; for "
                "analytics, a tenant ID the account does not have.",
                guide_anchor="outcome-forbidden",
            ),
            Outcome(
                OutcomeKey.MISSING_CONFIG,
                "Setting missing",
                "🧩",
                cause="This product needs a setting the connection does not have yet.",
                actor=Actor.SWITCHBOARD_ADMIN,
                fix="Edit the connection in Switchboard and fill in the named setting.",
                help="Switchboard did not call 8x8 for this product; the detail names the missing setting.",
                guide_anchor="outcome-missing-config",
                severity="warning",
            ),
            Outcome(
                OutcomeKey.NOT_FOUND,
                "Not found",
                "🧭",
                cause="8x8 has no such resource at this address, usually because the region is wrong.",
                actor=Actor.SWITCHBOARD_ADMIN,
                fix="Check the region (and tenant ID) of this product in the connection.",
                help="Each product family has its own region list; see 'Find the values some products need'.",
                guide_anchor="outcome-not-found",
            ),
            Outcome(
                OutcomeKey.RATE_LIMITED,
                "Rate limited",
                "🐢",
                cause="8x8 asked Switchboard to slow down.",
                actor=Actor.SWITCHBOARD_ADMIN,
                fix="Wait for the time 8x8 asked for, then test again; test fewer connections at once.",
                help=f"8x8 limits how fast an app may call. Switchboard waits (up to "
                f"{MAX_RETRY_AFTER_S:g} s) "
                f"and retries {times(MAX_RETRIES)} by itself.",
                guide_anchor="outcome-rate-limited",
                severity="warning",
                unreachable=True,
            ),
            Outcome(
                OutcomeKey.VENDOR_ERROR,
                "8x8 error",
                "🛠️",
                cause="8x8 answered with a server error after retries.",
                actor=Actor.VENDOR,
                fix="Test again later; if it persists, check 8x8's status page or contact 8x8 support "
                "with the time of the test.",
                help=f"Switchboard already retried {times(MAX_RETRIES)}. Note the time of the test for 8x8 support.",
                guide_anchor="outcome-vendor-error",
                unreachable=True,
            ),
            Outcome(
                OutcomeKey.TIMEOUT,
                "Timed out",
                "⏱️",
                cause="8x8 did not answer in time.",
                actor=Actor.NETWORK,
                fix="Test again; if it persists, check the network path from this server to "
                "api.8x8.com, "
                "or 8x8's status page.",
                help=f"Switchboard gives each test {CHECK_DEADLINE_S:g} seconds, retries included.",
                guide_anchor="outcome-timeout",
                unreachable=True,
            ),
            Outcome(
                OutcomeKey.NETWORK_ERROR,
                "Network error",
                "📡",
                cause="Switchboard could not reach 8x8 (DNS, firewall, proxy or connection failure).",
                actor=Actor.NETWORK,
                fix="Check that this server can reach api.8x8.com on port 443 (DNS, firewall, proxy).",
                help=f"Switchboard tried {times(MAX_RETRIES + 1)}. Firewalls and proxies must allow "
                "HTTPS to "
                "api.8x8.com.",
                guide_anchor="outcome-network-error",
                unreachable=True,
            ),
            Outcome(
                OutcomeKey.TLS_ERROR,
                "TLS error",
                "🔒",
                cause="The server's certificate could not be verified, so nothing was sent.",
                actor=Actor.NETWORK,
                fix="Something between this server and 8x8 intercepts TLS, or the base URL is wrong. "
                "Fix "
                "the network path or SWITCHBOARD_8X8_BASE_URL; verification is never turned off.",
                help="Usually a proxy that inspects TLS with its own certificate. Switchboard never "
                "turns "
                "certificate checks off.",
                guide_anchor="outcome-tls-error",
                unreachable=True,
            ),
            Outcome(
                OutcomeKey.UNEXPECTED_RESPONSE,
                "Unexpected answer",
                "❓",
                cause="8x8 answered, but not in the form this product returns.",
                actor=Actor.SWITCHBOARD_ADMIN,
                fix="Check SWITCHBOARD_8X8_BASE_URL points at 8x8's API; if it does, 8x8 may have "
                "changed "
                "this API: report it to the Switchboard maintainers.",
                help="The answer did not look like 8x8's, for example a proxy's error page.",
                guide_anchor="outcome-unexpected-response",
            ),
            Outcome(
                OutcomeKey.CREDENTIAL_UNREADABLE,
                "Credential unreadable",
                "🗝️",
                cause="Switchboard could not decrypt the stored credentials, so no call was made.",
                actor=Actor.SWITCHBOARD_ADMIN,
                fix="Restore the missing or wrong encryption key (switchboard keys status), or enter "
                "the credentials again.",
                help="The keyring does not match the stored data; nothing was sent to 8x8.",
                guide_anchor="outcome-credential-unreadable",
            ),
        )
    }
)
UNREACHABLE = frozenset(o.key for o in OUTCOMES.values() if o.unreachable)
