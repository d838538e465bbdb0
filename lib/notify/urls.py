"""The URL field every kind has, and the rules its URLs share.

A URL is refused here, with a message naming the fix, rather than later inside httpcore or
smtplib, where it raised for every attempt: it is ASCII (another script in a path or query is
percent-encoded; a host name uses its xn-- form), bounded in length, has no control character,
and points at a public host unless SWITCHBOARD_ALERT_ALLOW names it. A web URL is also https://
(plain http:// only to an allowed host) with no user name or password; a kind may add the shape
its service gives its URLs (Slack's, Teams'), which an allowed host skips. Host names are not
resolved here: every attempt does that.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import SplitResult, urlsplit

from lib.notify.spec import Field, Given
from lib.notify.ssrf import ALLOW_VARIABLE, Allow, ip_literal, refusal

URL_MAX = 2048  # Teams workflow URLs, the longest kind, run to about 450 characters
HOST_MAX = 180  # what people see of a URL (scheme, host, port) fits its 200-character column
# What RFC 3986 lets a URL hold as it is; anything else is percent-encoded.
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")

# A kind's rules for a URL that splits into parts: what is wrong (after "URL: "), or None.
UrlRule = Callable[[str, SplitResult, Given], str | None]
# The shape a kind's service gives its URLs: what is wrong, or None.
Shape = Callable[[SplitResult], str | None]


def url_field(where: str, example: str, rule: UrlRule, *, credential: bool = False) -> Field:
    """A kind's URL field. ``where`` tells an admin where to find one, as a clause ("copy it
    from …"), in its help and in every refusal that needs it; ``credential``: the URL alone lets
    anyone post to the channel (a Slack or Teams webhook)."""

    def check(url: str, given: Given) -> str | None:
        if not url:
            return f"is missing; {where}."
        if any(c.isspace() or not c.isprintable() for c in url):
            return (
                "contains a space, line break or other control character; copy it again (a space in a "
                "path is written %20)."
            )
        try:
            parts = urlsplit(url)
        except ValueError:
            return f"is not a URL this kind can use; {where}."
        return rule(url, parts, given)

    help_ = f"{where[:1].upper()}{where[1:]}." + (" The URL is the credential." if credential else "")
    return Field("url", "URL", help_, URL_MAX, check, example=example, required=True, secret=credential)


def web_url(where: str, example: str, *, shape: Shape | None = None, credential: bool = False) -> Field:
    """The URL field of a kind that posts over HTTPS; ``shape`` is checked when a channel is
    saved, unless its host is on the allow-list (a local receiver in tests)."""

    def rule(url: str, parts: SplitResult, given: Given) -> str | None:
        problem = _web_problem(where, url, parts, given.allow)
        if problem or shape is None or not given.saving or given.allow.names(parts.hostname or ""):
            return problem
        return shape(parts)

    return url_field(where, example, rule, credential=credential)


def characters_problem(url: str) -> str | None:
    """Characters a URL may not hold as they are: the host was checked before, so any
    non-ASCII one is in the path, query or user name."""
    if not url.isascii():
        return (
            "must write its path and query in ASCII: percent-encode other characters (é is %C3%A9), "
            "as a browser's address bar does when you copy from it."
        )
    if not _URL_CHARACTERS.fullmatch(url):
        return 'contains a character a URL may not hold as it is (one of " < > \\ ^ ` { | }); percent-encode it.'
    if _BAD_PERCENT.search(url):
        return "has a % that is not followed by two hexadecimal digits; write a % itself as %25."
    return None


def host_problem(host: str, allow: Allow) -> str | None:
    if not host.isascii():
        return "must write its host name in ASCII (the xn-- form of an international name)."
    if len(host) > HOST_MAX:
        return f"has a host name of {len(host)} characters; at most {HOST_MAX}."
    if allow.names(host):
        return None
    literal = ip_literal(host)
    reason = (
        refusal(literal)
        if literal
        else ("this machine" if host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost") else None)
    )
    if reason:
        return (
            f"points at {host}, {reason}. Alerts go only to public internet addresses; "
            f"an internal receiver must be listed in {ALLOW_VARIABLE}."
        )
    return None


def _web_problem(where: str, url: str, parts: SplitResult, allow: Allow) -> str | None:
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"must be an https:// address; {where}."
    problem = host_problem(parts.hostname, allow) or characters_problem(url)
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
        return (
            f"must start with https://. Plain http:// would send alerts unencrypted; it is "
            f"only for hosts on {ALLOW_VARIABLE}."
        )
    return None
