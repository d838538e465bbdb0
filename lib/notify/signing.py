"""Standard Webhooks signatures (spec 1.0): a receiver proves a webhook came from us and was
not replayed late, with the shared ``whsec_…`` secret and the headers below."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from lib.kernel.errors import FieldError, ValidationError

PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec allows 24 to 64 random bytes
_ALLOWED_BYTES = range(24, 65)


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_…`` secret; :class:`ValidationError` when it is not one."""
    encoded = secret.removeprefix(PREFIX) if secret.startswith(PREFIX) else ""
    try:  # padding is optional, as in the reference verifier
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise _invalid("must be whsec_ followed by base64 (the Standard Webhooks form)")
    if len(key) not in _ALLOWED_BYTES:
        raise _invalid(f"holds {len(key)} bytes; a signing secret holds 24 to 64 random bytes")
    return key


MAKE_ONE = (
    "Paste the receiver's whsec_… secret, or have Switchboard make one: leave the secret out when "
    "adding the channel, or ask for a new signing secret when editing it."
)


def _invalid(message: str) -> ValidationError:
    return ValidationError([FieldError("secret", "Signing secret", f"{message}. {MAKE_ONE}")])


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers a Standard Webhooks receiver checks. ``message_id`` is the event's id,
    the same on every retry, so a receiver can drop a repeat."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }
