"""E-mail alerts received by a real SMTP server (aiosmtpd on 127.0.0.1) over STARTTLS with a
login; a server without STARTTLS gets nothing; the SSRF guard covers the mail host too."""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from lib.notify.models import Destination
from lib.notify.send import deliver
from lib.notify.ssrf import Allow
from tests.fixtures.notify import LOCAL, sample_event, tls_contexts
from tests.fixtures.server import free_port

USER, PASSWORD = "alerts@example.com", "SENTINEL-smtp-password-7f3a"
QUERY = "from=alerts@example.com&to=ops@example.com,oncall@example.com"


@dataclass
class Inbox:
    messages: list[Any] = field(default_factory=list)
    over_tls: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        self.over_tls.append(session.ssl is not None)
        return "250 Message accepted"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


@dataclass
class MailServer:
    inbox: Inbox
    port: int
    client_tls: ssl.SSLContext


def _serve(starttls: bool, names: tuple[str, ...] = ("127.0.0.1",)) -> Iterator[MailServer]:
    server_tls, client_tls = tls_contexts(*names)
    inbox, port = Inbox(), free_port()
    options: dict[str, Any] = {"tls_context": server_tls, "require_starttls": True} if starttls else {}
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=_authenticator, auth_require_tls=True, **options
    )
    controller.start()
    try:
        yield MailServer(inbox, port, client_tls)
    finally:
        controller.stop()


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    yield from _serve(starttls=True)


@pytest.fixture
def plain_mail_server() -> Iterator[MailServer]:
    yield from _serve(starttls=False)


def _url(port: int, host: str = "127.0.0.1", user: str | None = USER) -> str:
    login = user.replace("@", "%40") + "@" if user else ""
    return f"smtp://{login}{host}:{port}?{QUERY}"


def test_an_email_is_received_over_starttls_after_a_login(
    mail_server: MailServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    attempt = deliver(
        Destination("email", _url(mail_server.port), PASSWORD),
        sample_event(),
        allow=LOCAL,
        ssl_context=mail_server.client_tls,
    )
    assert (attempt.delivered, attempt.status, attempt.error) == (True, 250, None)
    [envelope] = mail_server.inbox.messages
    assert mail_server.inbox.over_tls == [True]
    assert envelope.mail_from == "alerts@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    message = message_from_bytes(envelope.content, policy=policy.default)
    assert message["Subject"] == "Acme EU: Contact Center Chat failing (Credentials refused)"
    assert "Fix: Copy the Client ID and Client Secret again." in message.get_body(("plain",)).get_content()
    assert PASSWORD not in envelope.content.decode()
    ours = [r for r in caplog.records if not r.name.startswith("mail.")]  # not the test server's own log
    assert ours and all(PASSWORD not in r.getMessage() for r in ours)


def test_the_mail_host_name_is_pinned_and_checked_by_its_certificate() -> None:
    for server in _serve(starttls=True, names=("mail.example.test",)):
        attempt = deliver(
            Destination("email", _url(server.port, "mail.example.test"), PASSWORD),
            sample_event(),
            allow=LOCAL,
            ssl_context=server.client_tls,
            resolve=lambda host, port: [ipaddress.ip_address("127.0.0.1")],
        )
        assert attempt.delivered, attempt.error
        refused = deliver(
            Destination("email", _url(server.port, "mail.example.test"), PASSWORD),
            sample_event(),
            allow=Allow(),
            ssl_context=server.client_tls,
            resolve=lambda host, port: [ipaddress.ip_address("127.0.0.1")],
        )
        assert refused.refused and "mail.example.test resolves to 127.0.0.1, a loopback address" in refused.error
        assert len(server.inbox.messages) == 1


def test_a_server_without_starttls_gets_nothing(plain_mail_server: MailServer) -> None:
    attempt = deliver(
        Destination("email", _url(plain_mail_server.port), PASSWORD),
        sample_event(),
        allow=LOCAL,
        ssl_context=plain_mail_server.client_tls,
    )
    assert not attempt.delivered
    assert attempt.error == (
        "127.0.0.1 does not offer STARTTLS, and alerts are never mailed "
        "unencrypted. Turn STARTTLS on there, or use another mail server."
    )
    assert plain_mail_server.inbox.messages == []


def test_a_wrong_password_is_named(mail_server: MailServer) -> None:
    attempt = deliver(
        Destination("email", _url(mail_server.port), "wrong"),
        sample_event(),
        allow=LOCAL,
        ssl_context=mail_server.client_tls,
    )
    assert (attempt.delivered, attempt.status) == (False, 535)
    assert "refused the user name or password (SMTP 535)" in attempt.error
    assert mail_server.inbox.messages == []


def test_an_untrusted_certificate_stops_the_mail(mail_server: MailServer) -> None:
    attempt = deliver(
        Destination("email", _url(mail_server.port), PASSWORD),
        sample_event(),
        allow=LOCAL,
        ssl_context=tls_contexts("127.0.0.1")[1],
    )  # another CA
    assert not attempt.delivered and "TLS certificate is not trusted" in attempt.error
    assert mail_server.inbox.messages == []


def test_without_a_user_the_mail_is_sent_without_login(mail_server: MailServer) -> None:
    attempt = deliver(
        Destination("email", _url(mail_server.port, user=None)),
        sample_event(),
        allow=LOCAL,
        ssl_context=mail_server.client_tls,
    )
    assert attempt.delivered and mail_server.inbox.over_tls == [True]


def test_the_mail_host_is_guarded_like_any_other() -> None:
    attempt = deliver(Destination("email", _url(25), PASSWORD), sample_event(), allow=Allow())
    assert attempt.refused and "127.0.0.1, a loopback address" in attempt.error
    attempt = deliver(
        Destination("email", _url(25, "mail.example.test"), PASSWORD),
        sample_event(),
        allow=Allow(),
        resolve=lambda host, port: [ipaddress.ip_address("169.254.169.254")],
    )
    assert attempt.refused and "a link-local address" in attempt.error


def test_a_stored_non_ascii_password_is_a_refused_attempt_not_an_exception(mail_server: MailServer) -> None:
    """Issue 21, item 5: smtplib's AUTH raised UnicodeEncodeError for it, at every attempt."""
    attempt = deliver(
        Destination("email", _url(mail_server.port), "pässwörd"),
        sample_event(),
        allow=LOCAL,
        ssl_context=mail_server.client_tls,
    )
    assert (attempt.delivered, attempt.refused) == (False, True)
    assert attempt.error.startswith("SMTP password: must be printable ASCII")
    assert "pässwörd" not in attempt.error and mail_server.inbox.messages == []
