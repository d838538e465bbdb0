"""E-mail: a message over SMTP with STARTTLS (lib.notify.smtp). The URL names the server, the user
to log in as, the sender and the recipients; the secret is that user's password."""

from __future__ import annotations

import re
import ssl
from urllib.parse import SplitResult

from lib.notify.deadline import Deadline
from lib.notify.models import Attempt, Destination, Event
from lib.notify.smtp import EXAMPLE, parse_mail_url, send_mail
from lib.notify.spec import Field, Given, Kind, Sender
from lib.notify.ssrf import Pinned
from lib.notify.urls import characters_problem, host_problem, url_field

PASSWORD_MAX = 256
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


def _mail_url(url: str, parts: SplitResult, given: Given) -> str | None:
    try:
        host = parse_mail_url(url).host
    except ValueError as exc:
        return f"The mail server's URL {exc}"
    return host_problem(host, given.allow) or characters_problem(url)


def _password(password: str, given: Given) -> str | None:
    """smtplib logs in with AUTH PLAIN or LOGIN, which send ASCII only; a user named in the URL
    logs in, so when saving it comes with a password."""
    if password and not _PRINTABLE_ASCII.fullmatch(password):
        return (
            "must be printable ASCII (letters, digits, punctuation, spaces): smtplib logs in with AUTH "
            "PLAIN or LOGIN, which send ASCII only. Give this mail user an ASCII password."
        )
    try:
        user = parse_mail_url(given.url).user
    except ValueError:
        return None  # the URL's own message says what to fix first
    if given.saving and user and not password:
        return (
            "is missing: the URL names a user to log in as; give that user's password, or take the user out of the URL."
        )
    return None


class Email(Sender):
    def address(self, url: str) -> tuple[str, int]:
        server = parse_mail_url(url)
        return server.host, server.port

    def send(
        self, destination: Destination, event: Event, *, pinned: Pinned, deadline: Deadline, ssl_context: ssl.SSLContext
    ) -> Attempt:
        return send_mail(
            parse_mail_url(destination.url),
            destination.secret,
            event,
            pinned=pinned,
            deadline=deadline,
            ssl_context=ssl_context,
        )


KIND = Kind(
    key="email",
    label="E-mail",
    summary="over SMTP with STARTTLS",
    listed=4,
    fields=(
        url_field(f"write it like {EXAMPLE}", EXAMPLE, _mail_url),
        Field(
            "secret",
            "SMTP password",
            "The password of the user named in the URL, in printable ASCII; blank when the URL names no user.",
            PASSWORD_MAX,
            _password,
            secret=True,
        ),
    ),
    sender=Email(),
)
