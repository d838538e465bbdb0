"""Status badges for wikis and runbooks: a small SVG per connection or per environment, saying
"ok", "failing N", "never tested" or "not ticked" from the status API's own verdict
(lib.services.reporting.machine_status).

A wiki embeds an image without headers, so the credential travels in the URL, and URLs end up
in logs, browser histories and pasted pages. So a badge URL carries no API token (those open
the whole API) but a badge token: an HMAC-SHA256 over the badge's subject ("connection" or
"environment" and its name as names compare: case and surrounding blanks do not count), keyed
by a key derived (HKDF, its own label) from the keyring's active key. A leaked badge URL opens
that one badge and nothing else; nothing about badges is stored; and making a new active key
(``switchboard keys add``) revokes every badge URL at once, because only tokens of the active
key are accepted (docs/operating/monitoring.md#badges).

The token is checked before the database is read, and an unknown subject is answered like a bad
token: the same grey "unknown" badge, 404, so badges tell nobody which names exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote
from xml.sax.saxutils import escape

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine

from lib.catalogue.limits import ENVIRONMENT_MAX, NAME_MAX
from lib.kernel.errors import FieldError, NotFoundError, ValidationError
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, Role, Standing, require
from lib.store.db import write_session
from lib.store.vault import Keyring

_KEY_LABEL = b"switchboard badge token v1"  # HKDF info: a badge key is never the data key itself
TOKEN_MAX = 100  # characters of a presented badge token; a real one has at most 32 + 1 + 43
PARAMETER = "badge"  # the query parameter a badge URL carries its token in


class Kind(StrEnum):
    CONNECTION = "connection"
    ENVIRONMENT = "environment"


# The longest name of each kind (lib.catalogue.limits): a longer one cannot be a subject.
LONGEST = {Kind.CONNECTION: NAME_MAX, Kind.ENVIRONMENT: ENVIRONMENT_MAX}
ROUTES = {Kind.CONNECTION: "/api/v1/badges/connections/", Kind.ENVIRONMENT: "/api/v1/badges/environments/"}


@dataclass(frozen=True)
class Subject:
    """What one badge shows: a connection or an environment, by name."""

    kind: Kind
    name: str

    @property
    def key(self) -> str:
        """The name as names compare (connections' names and environment labels alike)."""
        from lib.services.history.status import environment_key

        return environment_key(self.name)

    def path(self) -> str:
        """The badge's path, its name escaped as one path segment."""
        return f"{ROUTES[self.kind]}{quote(self.name.strip(), safe='')}.svg"


# --- tokens --------------------------------------------------------------------------------


def _mac(key: bytes, subject: Subject) -> str:
    badge_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_LABEL).derive(key)
    signed = f"{subject.kind.value}\n{subject.key}".encode()
    return base64.urlsafe_b64encode(hmac.new(badge_key, signed, hashlib.sha256).digest()).rstrip(b"=").decode()


def sign(keyring: Keyring, subject: Subject) -> str:
    """The badge token of ``subject``: ``<kid>.<HMAC>``, under the keyring's active key."""
    return f"{keyring.active}.{_mac(keyring.keys[keyring.active], subject)}"


def opens(keyring: Keyring, subject: Subject, presented: str | None) -> bool:
    """Whether ``presented`` is ``subject``'s badge token under the active key. Tokens of an
    older key are refused: a new active key is how badge URLs are revoked."""
    if not presented or len(presented) > TOKEN_MAX or len(subject.name) > LONGEST[subject.kind]:
        return False
    kid, _, mac = presented.partition(".")
    if kid != keyring.active:
        return False
    return hmac.compare_digest(mac.encode(), _mac(keyring.keys[kid], subject).encode())


# --- the verdict ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BadgeGrant:
    """A valid badge token (``access.LiveSession``): reads status as a viewer, for this request."""

    def standing(self) -> Standing:
        return Standing(Role.VIEWER, None)


def _reader(subject: Subject, address: str | None) -> Principal:
    return Principal(f"badge:{subject.kind.value}", Role.VIEWER, address, via="badge", session=BadgeGrant())


def _verdict(engine: Engine, subject: Subject, actor: Principal) -> dict[str, object]:
    """The status API's answer for ``subject`` (NotFoundError when there is nothing to show)."""
    # pandas, by way of the verdict: loaded at the first badge, not on the way to a listening server
    from lib.services.reporting import machine_status

    if subject.kind is Kind.CONNECTION:
        return machine_status.everything(engine, actor=actor, names=[subject.name])
    found = machine_status.everything(engine, actor=actor, environments=[subject.name])
    if not found["connections"]:
        raise NotFoundError(f"No connection has the environment '{subject.name.strip()}'.")
    return found


GREEN, RED, GREY = "#2e8540", "#c62828", "#6e6e6e"


def message(verdict: dict[str, object]) -> tuple[str, str]:
    """What a badge says and its colour, from an answer's ``ok`` and ``counts``."""
    counts = verdict["counts"]
    assert isinstance(counts, dict)
    if counts["failing"]:
        return f"failing {counts['failing']}", RED
    if counts["ok"]:
        return "ok", GREEN
    if counts["never_tested"]:
        return "never tested", GREY
    return "not ticked", GREY


@dataclass(frozen=True)
class Badge:
    status_code: int
    svg: str


UNKNOWN = "unknown"


def unknown(status_code: int = 404) -> Badge:
    """The one answer for a bad or missing token and for a subject that does not exist."""
    return Badge(status_code, render("8x8", UNKNOWN, GREY))


def badge(
    engine: Engine, keyring: Keyring, subject: Subject, presented: str | None, *, address: str | None = None
) -> Badge:
    """``subject``'s badge for the request's token; the grey "unknown" one, 404, when the token
    does not open it or there is nothing to show. Blocking: call in a thread."""
    if not opens(keyring, subject, presented):
        return unknown()
    try:
        verdict = _verdict(engine, subject, _reader(subject, address))
    except NotFoundError:
        return unknown()
    text, colour = message(verdict)
    return Badge(200, render(f"8x8 {subject.name.strip()}", text, colour))


# --- issuing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    subject: Subject
    path: str  # with its token: /api/v1/badges/…/{name}.svg?badge=…


def issue(engine: Engine, keyring: Keyring, subject: Subject, *, actor: Principal) -> Issued:
    """The badge URL's path and query for ``subject`` (which must exist now), audited (never the
    token). Admins only: a badge URL lets whoever holds it read that subject's status."""
    require(actor, Permission.MANAGE_USERS, recent_proof=True)
    longest, what = LONGEST[subject.kind], subject.kind.value
    if not subject.key or len(subject.name) > longest:
        raise ValidationError(
            [FieldError(what, what.capitalize(), f"Give a {what} name of 1 to {longest} characters.")]
        )
    _verdict(engine, subject, actor)  # NotFoundError names what is missing
    token = sign(keyring, subject)
    with write_session(engine) as session:
        audit.record(
            session,
            actor,
            "badge.issue",
            f"{subject.kind.value}:{subject.name.strip()}"[:200],
            audit.OK,
            f"key {keyring.active}",
        )
    return Issued(subject, f"{subject.path()}?{PARAMETER}={token}")


# --- the SVG -------------------------------------------------------------------------------

LABEL_MAX = 40  # characters of a label; longer ones end in "…"
CHAR_PX, PAD_PX, HEIGHT_PX = 7, 10, 20  # a rough width for Verdana 11px, as badges use


def _shown(text: str) -> str:
    """``text`` safe to show in a label: invisible and formatting characters (controls, bidi
    overrides, surrogates, unassigned code points: everything XML 1.0 refuses among them) become
    U+FFFD, then it is cut to LABEL_MAX characters."""
    clean = "".join("\ufffd" if unicodedata.category(c).startswith("C") else c for c in text)
    return clean if len(clean) <= LABEL_MAX else clean[: LABEL_MAX - 1] + "…"


def _escaped(text: str) -> str:
    return escape(text, {'"': "&quot;", "'": "&apos;"})


def render(label: str, words: str, colour: str) -> str:
    """A flat two-part badge; all text escaped, no script, no link, nothing fetched."""
    label = _shown(label)
    left, right = CHAR_PX * len(label) + PAD_PX, CHAR_PX * len(words) + PAD_PX
    title = _escaped(f"{label}: {words}")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + right}" height="{HEIGHT_PX}" '
        f'role="img" aria-label="{title}"><title>{title}</title>'
        f'<rect width="{left}" height="{HEIGHT_PX}" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="{HEIGHT_PX}" fill="{colour}"/>'
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{left / 2}" y="14">{_escaped(label)}</text>'
        f'<text x="{left + right / 2}" y="14">{_escaped(words)}</text></g></svg>'
    )
