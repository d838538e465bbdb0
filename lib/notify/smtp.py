"""E-mail alerts over SMTP, always encrypted with STARTTLS, to the address the SSRF guard checked.

A mail channel is one URL, ``smtp://[user@]host[:port]?from=ADDR&to=ADDR[,ADDR]``, so it is
stored and guarded like the others; its password is the channel's secret, never in the URL.
A server that does not offer STARTTLS gets nothing: the password and the alert would travel
in the clear.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from lib.notify.deadline import Deadline
from lib.notify.models import Attempt, Event
from lib.notify.payloads import email_message
from lib.notify.ssrf import Pinned, connection_failure

DEFAULT_PORT = 587  # message submission (RFC 6409), where STARTTLS is the rule
EXAMPLE = "smtp://alerts@mail.example.com:587?from=alerts@example.com&to=ops@example.com"
# An ASCII address (smtplib needs SMTPUTF8 for others, which few servers offer), at most 64
# characters before the @ and 254 in all (RFC 5321).
_MAILBOX = re.compile(r"(?=.{3,254}$)[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
RECIPIENTS_MAX = 50
USER_MAX = 256
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")


@dataclass(frozen=True)
class MailServer:
    """Where and to whom an e-mail channel sends, read from its URL."""

    host: str
    port: int
    user: str | None
    sender: str
    recipients: tuple[str, ...]


def parse_mail_url(url: str) -> MailServer:
    """The parts of an ``smtp://`` channel URL; ``ValueError`` with the problem and the fix."""
    parts = urlsplit(url.strip())
    if parts.scheme != "smtp" or not parts.hostname:
        raise ValueError(f"must look like {EXAMPLE} (STARTTLS is always used).")
    if parts.password is not None:
        raise ValueError("must not contain the password: give it as the channel's secret instead.")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError(f"must have no path or fragment, like {EXAMPLE}.")
    try:
        port = parts.port if parts.port is not None else DEFAULT_PORT
    except ValueError:
        port = 0
    if not port:
        raise ValueError("has a port that is not a number from 1 to 65535.")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        query = {}
    unknown = sorted(set(query) - {"from", "to"})
    if unknown:
        raise ValueError(f"has {', '.join(unknown)}, which mail channels do not use; only from= and to=.")
    senders = [a.strip() for a in query.get("from", [])]
    recipients = [a.strip() for value in query.get("to", []) for a in value.split(",") if a.strip()]
    if len(senders) != 1 or not _MAILBOX.fullmatch(senders[0]):
        raise ValueError(f"needs one sender address as from=, like {EXAMPLE}.")
    if not recipients or not all(_MAILBOX.fullmatch(a) for a in recipients):
        raise ValueError(f"needs recipient addresses as to= (separated by commas), like {EXAMPLE}.")
    if len(recipients) > RECIPIENTS_MAX:
        raise ValueError(
            f"has {len(recipients)} recipients; at most {RECIPIENTS_MAX} (a mailing list address reaches more)."
        )
    user = unquote(parts.username) if parts.username else None
    if user is not None and not (len(user) <= USER_MAX and _PRINTABLE_ASCII.fullmatch(user)):
        raise ValueError(
            f"names a user that is not printable ASCII of at most {USER_MAX} characters: "
            "smtplib logs in with AUTH PLAIN or LOGIN, which send ASCII only."
        )
    return MailServer(parts.hostname, port, user, senders[0], tuple(recipients))


class _PinnedSMTP(smtplib.SMTP):
    """smtplib connecting to the checked addresses; the host name still goes to STARTTLS
    (SNI and the certificate check)."""

    def __init__(self, pinned: Pinned, deadline: Deadline) -> None:
        self._pinned = pinned
        self._deadline = deadline
        super().__init__(pinned.host, pinned.port, local_hostname=socket.gethostname(), timeout=deadline.seconds)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        connection = self._pinned.connect(
            lambda address, seconds: socket.create_connection((address, port), seconds, self.source_address),
            (OSError,),
            deadline=self._deadline,
            timeout=timeout,
        )
        self._deadline.watch(connection)  # raises OSError (the connection closed) when it cannot
        return connection


def send_mail(
    server: MailServer,
    password: str | None,
    event: Event,
    *,
    pinned: Pinned,
    deadline: Deadline,
    ssl_context: ssl.SSLContext,
) -> Attempt:
    """One e-mail for ``event``: STARTTLS, then login when the URL names a user, then send."""
    host = server.host
    message = email_message(event, sender=server.sender, recipients=server.recipients)
    try:
        with _PinnedSMTP(pinned, deadline) as client:
            client.ehlo()
            if not client.has_extn("starttls"):
                return Attempt(
                    False,
                    error=f"{host} does not offer STARTTLS, and alerts are never "
                    "mailed unencrypted. Turn STARTTLS on there, or use "
                    "another mail server.",
                )
            client.starttls(context=ssl_context)
            client.ehlo()
            if server.user:
                if not client.has_extn("auth"):
                    return Attempt(
                        False,
                        error=f"{host} offers no login; remove the user name from "
                        "the channel's URL, or use its submission port.",
                    )
                client.login(server.user, password or "")
            refused = client.send_message(message, server.sender, list(server.recipients))
    except smtplib.SMTPAuthenticationError as exc:
        return Attempt(
            False,
            status=exc.smtp_code,
            error=f"{host} refused the user name or password "
            f"(SMTP {exc.smtp_code}); update the channel's user or password.",
        )
    except smtplib.SMTPRecipientsRefused:
        return Attempt(False, error=f"{host} refused every recipient; check the to= addresses.")
    except smtplib.SMTPSenderRefused as exc:
        return Attempt(
            False,
            status=exc.smtp_code,
            error=f"{host} refused the sender address "
            f"(SMTP {exc.smtp_code}); check from= and what the user may send as.",
        )
    except smtplib.SMTPResponseException as exc:
        return Attempt(False, status=exc.smtp_code, error=f"{host} did not take the message (SMTP {exc.smtp_code}).")
    except (smtplib.SMTPException, OSError) as exc:
        return Attempt(False, error=connection_failure(host, exc, deadline.seconds))
    if refused:
        return Attempt(True, status=250, error=f"{host} refused {len(refused)} of {len(server.recipients)} recipients.")
    return Attempt(True, status=250)
