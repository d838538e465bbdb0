"""Linking an 8x8 API app: a connection is saved only after 8x8 issued a token for the values
being saved (unless the caller explicitly saves it untested)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from pydantic import SecretStr

from lib.catalogue.outcomes import OUTCOMES, UNREACHABLE, OutcomeKey
from lib.catalogue.products import PRODUCTS, TOKEN
from lib.eightbyeight.models import Credentials, ProbeResult
from lib.eightbyeight.prober import Prober
from lib.kernel.errors import CredentialUnreadable, SwitchboardError
from lib.services import connections
from lib.services.connections import ConnectionInput, ConnectionView
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, require
from lib.services.runtime import Runtime
from lib.store.models import utcnow


@dataclass(frozen=True)
class TokenAnswer:
    """What 8x8 said about candidate credentials, next to what the admin expected."""

    result: ProbeResult
    expected: tuple[str, ...]

    @property
    def granted(self) -> frozenset[str]:
        return self.result.granted or frozenset()

    @property
    def expected_not_granted(self) -> tuple[str, ...]:
        return tuple(k for k in self.expected if k not in self.granted)

    @property
    def granted_not_expected(self) -> tuple[str, ...]:
        return tuple(k for k in PRODUCTS if k in self.granted and k not in self.expected)

    def warnings(self) -> list[str]:
        return [
            f"{PRODUCTS[k].name} is expected but 8x8 did not grant it to this app; tick it on the "
            "app in the 8x8 Admin Console (changes take a few minutes)."
            for k in self.expected_not_granted
        ]


class TokenRefused(SwitchboardError):
    """8x8 refused the credentials, or could not be asked; nothing was saved."""

    def __init__(
        self, result: ProbeResult, *, given: tuple[str, ...] = ("Client ID", "Client Secret"), editing: bool = False
    ) -> None:
        """``given``: what the person typed or pasted this time (the rest was stored);
        ``editing``: the connection exists and keeps what it has."""
        self.result = result
        outcome = OUTCOMES[result.outcome]
        if result.outcome in UNREACHABLE:
            lead = (
                "Could not ask 8x8 whether these credentials work, so nothing was saved. "
                "Try again, or save without verifying (the connection is then untested)."
            )
        elif result.outcome == OutcomeKey.CREDENTIAL_UNREADABLE:
            lead = f"{outcome.cause} Nothing was saved. {outcome.fix}"
        elif not given:
            lead = (
                "8x8 refused the stored credentials, so nothing was saved. If the Client Secret was "
                "regenerated or the app deleted in the 8x8 Admin Console, copy the Client ID and "
                "Client Secret again from Home > API Management and enter them here."
            )
        else:
            what = "these credentials" if not editing else f"the new {' and '.join(given)}"
            lead = (
                f"8x8 refused {what}, so nothing was saved"
                + (": the connection keeps its stored credentials. " if editing else ". ")
                + f"First check what you pasted as the {' and '.join(given)}: the whole value as the 8x8 "
                "Admin Console shows it, nothing cut off or added (a space, a quote, a line break). If it "
                "is right, the 8x8 admin checks the app in Home > API Management (a secret regenerated "
                "since, or the app deleted)."
            )
        super().__init__(f"{lead} ({outcome.label}: {result.detail}) Who must act: {outcome.actor.value}.")

    @property
    def unreachable(self) -> bool:
        return self.result.outcome in UNREACHABLE


def _candidate(rt: Runtime, data: ConnectionInput, connection_id: uuid.UUID | None) -> Credentials:
    """The credentials being saved: the form's values, completed with the stored ones on an
    edit (a blank Client ID or secret keeps the stored one, so that one is verified).
    Decrypted here, for this one request, and nowhere else."""
    client_id, secret = data.client_id.strip(), data.client_secret.get_secret_value()
    if connection_id is None or (client_id and secret):
        return Credentials(connection_id, client_id, SecretStr(secret))
    try:
        stored = connections.load_credentials(rt.engine, rt.vault, connection_id)
    except CredentialUnreadable:
        raise TokenRefused(
            ProbeResult(
                TOKEN,
                OutcomeKey.CREDENTIAL_UNREADABLE,
                "the stored Client ID or Client Secret does not decrypt with the keyring",
                utcnow(),
            )
        ) from None
    return Credentials(
        connection_id, client_id or stored.client_id, SecretStr(secret) if secret else stored.client_secret
    )


def _ask_8x8(rt: Runtime, prober: Prober, data: ConnectionInput, connection_id: uuid.UUID | None = None) -> TokenAnswer:
    """Ask 8x8 for a token with the values being saved (prechecked by the caller); raise
    TokenRefused if it fails."""
    candidate = _candidate(rt, data, connection_id)
    result = prober.ask_token(candidate)
    if not result.ok:
        given = tuple(
            label
            for label, value in (
                ("Client ID", data.client_id.strip()),
                ("Client Secret", data.client_secret.get_secret_value()),
            )
            if value
        )
        raise TokenRefused(result, given=given, editing=connection_id is not None)
    return TokenAnswer(result, tuple(data.expected_products))


def save(
    rt: Runtime,
    prober: Prober | None,
    data: ConnectionInput,
    *,
    actor: Principal,
    connection_id: uuid.UUID | None = None,
    expected_version: int | None = None,
) -> tuple[ConnectionView, TokenAnswer | None]:
    """Create (or update) a connection after verifying it; ``prober=None`` skips verification
    and saves it untested. Everything that can be refused without 8x8 is refused before 8x8 is
    asked (:func:`connections.precheck`): a pasted secret is sent only with a save that 8x8's
    answer alone decides."""
    require(actor, Permission.MANAGE_CONNECTIONS)
    connections.precheck(rt.engine, data, connection_id=connection_id, expected_version=expected_version)
    try:
        answer = _ask_8x8(rt, prober, data, connection_id) if prober is not None else None
    except TokenRefused as exc:
        audit.record_now(
            rt.engine,
            actor,
            "connection.verify",
            data.name.strip(),
            audit.REFUSED,
            f"{exc.result.outcome}: {exc.result.detail}",
        )
        raise
    granted = answer.granted if answer is not None else None
    if connection_id is None:
        view = connections.create(rt.engine, rt.vault, data, actor=actor, granted_products=granted)
    else:
        assert expected_version is not None, "an update must say which version it edits"
        view = connections.update(
            rt.engine,
            rt.vault,
            connection_id,
            data,
            expected_version=expected_version,
            actor=actor,
            granted_products=granted,
        )
    return view, answer
