"""Each alert channel kind's rules in one place: what its URL and its secret must be to be saved
(lib.services.alerts.channels, so the console and the command line obey the same rules) and to be sent
(lib.notify.send, which checks again what a store may hold from before a rule existed), and the
words the faces show for them. A kind is data (:data:`KINDS`) plus, for Slack and Teams, one
small function that knows the shape of their webhook URLs.

A value is refused here, with a message naming the field and the fix, rather than later inside
httpcore or smtplib, where it raised for every attempt: a URL is ASCII (another script in a path
or query is percent-encoded; a host name uses its xn-- form), bounded in length, https:// (plain
http:// only to a host on SWITCHBOARD_ALERT_ALLOW) and holds no user name or password; a
webhook's signing secret is a Standard Webhooks ``whsec_`` secret; an SMTP user name and
password are printable ASCII, which is what smtplib's AUTH PLAIN and LOGIN send.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from lib.kernel.errors import FieldError, ValidationError
from lib.notify import signing
from lib.notify.models import ChannelKind
from lib.notify.smtp import EXAMPLE as MAIL_EXAMPLE
from lib.notify.smtp import parse_mail_url
from lib.notify.ssrf import ALLOW_VARIABLE, Allow, ip_literal, refusal

URL_MAX = 2048  # Teams workflow URLs, the longest kind, run to about 450 characters
HOST_MAX = 180  # what people see of a URL (scheme, host, port) fits its 200-character column
PASSWORD_MAX = 256
SIGNING_SECRET_MAX = 100  # whsec_ and the base64 of at most 64 bytes: 94 characters
# What RFC 3986 lets a URL hold as it is; anything else is percent-encoded.
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True)
class Kind:
    """What one kind of channel takes, for the rules and for the words of the console and CLI."""

    where: str  # where an admin finds the URL
    example: str
    secret: str | None  # the secret field's label; None: the URL itself is the credential
    secret_help: str = ""
    makes_secret: bool = False  # left blank when added, one is made and shown once
    shape: Callable[[SplitResult], str | None] | None = None  # the URL's shape, for hosts not allowed


_SLACK_PATH = re.compile(r"/services/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+")


def _slack(parts: SplitResult) -> str | None:
    if (parts.hostname == "hooks.slack.com" and _SLACK_PATH.fullmatch(parts.path) and not parts.query
            and parts.port in (None, 443)):
        return None
    return ("must be a Slack incoming webhook, https://hooks.slack.com/services/T…/B…/…; copy it from the "
            "Slack app's Incoming Webhooks page.")


# The hosts of the Microsoft services a Teams webhook URL comes from, and the start of their paths:
# Power Automate workflows (both generations) and the Office 365 connectors they replace.
_TEAMS_HOSTS = ((".logic.azure.com", "/workflows/"),
                (".environment.api.powerplatform.com", "/powerautomate/"),
                (".webhook.office.com", "/webhookb2/"))


def _teams(parts: SplitResult) -> str | None:
    host = parts.hostname or ""
    if parts.port in (None, 443) and any(host.endswith(suffix) and len(host) > len(suffix)
                                         and parts.path.startswith(path) for suffix, path in _TEAMS_HOSTS):
        return None
    return ("must be the URL of a Teams workflow: https://….logic.azure.com/workflows/…, "
            "https://….environment.api.powerplatform.com/powerautomate/… or "
            "https://….webhook.office.com/webhookb2/…; copy it from the workflow \"When a Teams webhook "
            "request is received\".")


KINDS: dict[ChannelKind, Kind] = {
    ChannelKind.WEBHOOK: Kind(
        "the receiver's admin can give it", "https://hooks.example.com/switchboard",
        "Signing secret", "The receiver's whsec_… secret (Standard Webhooks). Leave it blank when adding, "
        "and a new one is made and shown once, for you to give to the receiver.", makes_secret=True),
    ChannelKind.SLACK: Kind(
        "copy it from the Slack app's Incoming Webhooks page",
        "https://hooks.slack.com/services/T…/B…/…", None, shape=_slack),
    ChannelKind.TEAMS: Kind(
        "copy it from the Teams workflow \"When a Teams webhook request is received\"",
        "https://….logic.azure.com/workflows/…", None, shape=_teams),
    ChannelKind.EMAIL: Kind(
        f"write it like {MAIL_EXAMPLE}", MAIL_EXAMPLE, "SMTP password",
        "The password of the user named in the URL, in printable ASCII; blank when the URL names no user."),
}


# ---- the URL --------------------------------------------------------------------------------

def url_problem(kind: ChannelKind, url: str, allow: Allow, *, saving: bool = True) -> str | None:
    """What is wrong with ``url`` for ``kind`` (the message after "URL: "), or None. When
    ``saving``, also the kind's own URL shape (Slack, Teams), unless its host is on the
    allow-list. Host names are not resolved here (every attempt does that)."""
    where = KINDS[kind].where
    if not url:
        return f"is missing; {where}."
    if len(url) > URL_MAX:
        return f"is {len(url)} characters long, more than the {URL_MAX} a channel's URL may have; {where}."
    if any(c.isspace() or not c.isprintable() for c in url):
        return ("contains a space, line break or other control character; copy it again (a space in a path "
                "is written %20).")
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"is not a URL this kind can use; {where}."
    problem = (_mail_problem(url, allow) if kind is ChannelKind.EMAIL else _web_problem(kind, url, parts, allow))
    if problem or not saving or KINDS[kind].shape is None or allow.names(parts.hostname or ""):
        return problem
    return KINDS[kind].shape(parts)  # type: ignore[misc]


def _characters_problem(url: str) -> str | None:
    """Characters a URL may not hold as they are: the host was checked before, so any
    non-ASCII one is in the path, query or user name."""
    if not url.isascii():
        return ("must write its path and query in ASCII: percent-encode other characters (é is %C3%A9), "
                "as a browser's address bar does when you copy from it.")
    if not _URL_CHARACTERS.fullmatch(url):
        return ("contains a character a URL may not hold as it is (one of \" < > \\ ^ ` { | }); "
                "percent-encode it.")
    if _BAD_PERCENT.search(url):
        return "has a % that is not followed by two hexadecimal digits; write a % itself as %25."
    return None


def _web_problem(kind: ChannelKind, url: str, parts: SplitResult, allow: Allow) -> str | None:
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"must be an https:// address; {KINDS[kind].where}."
    problem = _host_problem(parts.hostname, allow) or _characters_problem(url)
    if problem:
        return problem
    if parts.username is not None or parts.password is not None:
        return "must not contain a user name or password; a webhook's secret goes in its own field."
    try:
        port_ok = parts.port != 0
    except ValueError:
        port_ok = False
    if not port_ok:
        return "has a port that is not a number from 1 to 65535."
    if "#" in url:
        return "must not end with a #fragment, which is never sent; remove it."
    if parts.scheme == "http" and not allow.names(parts.hostname):
        return (f"must start with https://. Plain http:// would send alerts unencrypted; it is "
                f"only for hosts on {ALLOW_VARIABLE}.")
    return None


def _mail_problem(url: str, allow: Allow) -> str | None:
    try:
        host = parse_mail_url(url).host
    except ValueError as exc:
        return f"The mail server's URL {exc}"
    return _host_problem(host, allow) or _characters_problem(url)


def _host_problem(host: str, allow: Allow) -> str | None:
    if not host.isascii():
        return "must write its host name in ASCII (the xn-- form of an international name)."
    if len(host) > HOST_MAX:
        return f"has a host name of {len(host)} characters; at most {HOST_MAX}."
    if allow.names(host):
        return None
    literal = ip_literal(host)
    reason = refusal(literal) if literal else (
        "this machine" if host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost")
        else None)
    if reason:
        return (f"points at {host}, {reason}. Alerts go only to public internet addresses; "
                f"an internal receiver must be listed in {ALLOW_VARIABLE}.")
    return None


# ---- the secret -----------------------------------------------------------------------------

def secret_problem(kind: ChannelKind, secret: str | None, url: str, *, saving: bool = True) -> str | None:
    """What is wrong with the secret given for ``kind`` (after its label), or None. ``url`` is
    the channel's URL: an e-mail channel logs in only when it names a user, and when
    ``saving``, a user comes with a password."""
    if kind is ChannelKind.WEBHOOK:
        return _signing_secret_problem(secret)
    if kind is ChannelKind.EMAIL:
        return _password_problem(secret, url, saving)
    if secret and saving:
        return f"is not used: a {kind.value} channel's URL is its credential. Leave the secret out."
    return None


def _signing_secret_problem(secret: str | None) -> str | None:
    if not secret:
        return f"is missing; a webhook signs every message. {signing.MAKE_ONE}"
    if len(secret) > SIGNING_SECRET_MAX:
        return (f"is {len(secret)} characters long; a whsec_ secret has at most {SIGNING_SECRET_MAX}. "
                f"{signing.MAKE_ONE}")
    try:
        signing.secret_key(secret)
    except ValidationError as exc:
        return exc.errors[0].message
    return None


def _password_problem(password: str | None, url: str, saving: bool) -> str | None:
    if password and len(password) > PASSWORD_MAX:
        return f"is {len(password)} characters long; at most {PASSWORD_MAX}."
    if password and not _PRINTABLE_ASCII.fullmatch(password):
        return ("must be printable ASCII (letters, digits, punctuation, spaces): smtplib logs in with AUTH "
                "PLAIN or LOGIN, which send ASCII only. Give this mail user an ASCII password.")
    try:
        user = parse_mail_url(url).user
    except ValueError:
        return None  # the URL's own message says what to fix first
    if saving and user and not password:
        return ("is missing: the URL names a user to log in as; give that user's password, or take the user "
                "out of the URL.")
    return None


# ---- both -----------------------------------------------------------------------------------

def check(kind: ChannelKind, url: str, secret: str | None, *, allow: Allow, saving: bool = True) -> None:
    """Refuse a channel that can never be sent to (or, when ``saving``, that breaks a rule
    for saving one): :class:`ValidationError` naming each field that is wrong (the URL, the
    secret) with its fix."""
    errors = []
    if problem := url_problem(kind, url, allow, saving=saving):
        errors.append(FieldError("url", "URL", problem))
    if problem := secret_problem(kind, secret, url, saving=saving):
        errors.append(FieldError("secret", KINDS[kind].secret or "Secret", problem))
    if errors:
        raise ValidationError(errors)

