"""The vault: a keyring and an AES-256-GCM envelope bound to the row and column it belongs to.

Stored form: ``v1.<kid>.<base64url(nonce | ciphertext | tag)>`` (text, identical on SQLite and
PostgreSQL). The associated data binds each value to the table, column, row id and kid, so a
value copied to another row or column, or relabelled with another kid, does not decrypt.
Every failure to read a value is one typed error, :class:`CredentialUnreadable`.

This module knows nothing about the database; ``lib.services.connections.keys`` checks the keyring against it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lib.kernel.errors import CredentialUnreadable, KeyringError

FORMAT_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
KID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_ENVELOPE = re.compile(r"^v1\.([A-Za-z0-9_-]{1,32})\.([A-Za-z0-9_-]+=*)$")
_AAD_APP = "switchboard"


@dataclass(frozen=True)
class Keyring:
    """Key ids mapped to 32-byte keys, and which one encrypts new values."""

    active: str
    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))

    def __repr__(self) -> str:  # never show key material
        return f"Keyring(active={self.active!r}, kids={sorted(self.keys)!r})"


def _decode_key(kid: str, encoded: object, source: str) -> bytes:
    if not isinstance(kid, str) or not KID_PATTERN.match(kid):
        raise KeyringError(f"{source}: key id {kid!r} is not valid; use 1-32 letters, digits, '-' or '_'.")
    try:
        raw = base64.b64decode(str(encoded).strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{source}: key '{kid}' is not valid base64.") from None
    if len(raw) != KEY_BYTES:
        raise KeyringError(
            f"{source}: key '{kid}' must decode to {KEY_BYTES} bytes, not {len(raw)}. "
            "Generate one with: switchboard keys add"
        )
    return raw


def parse_inline_keys(value: str) -> Keyring:
    """``SWITCHBOARD_KEYS``: ``kid:<base64>,kid:<base64>``; the first key is the active one."""
    source = "SWITCHBOARD_KEYS"
    keys: dict[str, bytes] = {}
    for item in (part.strip() for part in value.split(",")):
        kid, sep, encoded = item.partition(":")
        if not sep:
            raise KeyringError(f"{source}: each entry must look like 'k1:<base64 key>'.")
        kid = kid.strip()
        if kid in keys:
            raise KeyringError(f"{source}: key id '{kid}' appears twice.")
        keys[kid] = _decode_key(kid, encoded, source)
    return Keyring(active=next(iter(keys)), keys=keys)


def parse_keyring_json(text: str, source: str) -> Keyring:
    """The keyring file: ``{"active": "k2", "keys": {"k1": "<base64>", "k2": "<base64>"}}``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        raise KeyringError(f"{source} is not valid JSON.") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict) or not doc["keys"]:
        raise KeyringError(f'{source} must hold {{"active": "<kid>", "keys": {{"<kid>": "<base64>"}}}}.')
    keys = {kid: _decode_key(kid, enc, source) for kid, enc in doc["keys"].items()}
    active = doc.get("active")
    if not isinstance(active, str) or active not in keys:
        raise KeyringError(f"{source}: the active key id {active!r} is not among its keys.")
    return Keyring(active=active, keys=keys)


def keyring_to_json(keyring: Keyring) -> str:
    encoded = {kid: base64.b64encode(key).decode() for kid, key in keyring.keys.items()}
    return json.dumps({"active": keyring.active, "keys": encoded}, indent=2) + "\n"


def write_keyring_file(path: Path, keyring: Keyring) -> None:
    """Write atomically with mode 0600 in a 0700 folder."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keyring-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(keyring_to_json(keyring))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def next_kid(keyring: Keyring) -> str:
    numbers = [int(k[1:]) for k in keyring.keys if re.fullmatch(r"k\d+", k)]
    return f"k{max(numbers, default=0) + 1}"


def with_new_active_key(keyring: Keyring) -> Keyring:
    kid = next_kid(keyring)
    return Keyring(active=kid, keys={**keyring.keys, kid: new_key()})


@dataclass(frozen=True)
class Binding:
    """Where a value lives: the associated data of its envelope (minus the kid)."""

    table: str
    column: str
    row_id: str

    def aad(self, kid: str) -> bytes:
        # A JSON array is canonical and cannot be confused by separators inside a part.
        return json.dumps(
            [_AAD_APP, FORMAT_VERSION, self.table, self.column, self.row_id, kid],
            separators=(",", ":"),
        ).encode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def envelope_kid(envelope: object) -> str:
    """The kid of a stored value, or CredentialUnreadable if it is not an envelope."""
    if not isinstance(envelope, str):
        raise CredentialUnreadable("The stored value is not a Switchboard envelope.")
    match = _ENVELOPE.match(envelope)
    if match is None:
        raise CredentialUnreadable("The stored value is not a Switchboard envelope.")
    return match.group(1)


class Vault:
    """Encrypts and decrypts single values with the keyring; holds no other state."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def __repr__(self) -> str:
        return f"Vault({self.keyring!r})"

    @property
    def active_kid(self) -> str:
        return self.keyring.active

    def encrypt(self, plaintext: str, binding: Binding, *, kid: str | None = None) -> str:
        """Seal under the active key (or ``kid``, used only for per-key canaries)."""
        kid = kid or self.keyring.active
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.keyring.keys[kid]).encrypt(nonce, plaintext.encode("utf-8"), binding.aad(kid))
        payload = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{FORMAT_VERSION}.{kid}.{payload}"

    def decrypt(self, envelope: object, binding: Binding) -> str:
        kid = envelope_kid(envelope)
        assert isinstance(envelope, str)
        key = self.keyring.keys.get(kid)
        if key is None:
            raise CredentialUnreadable(
                f"The stored value was encrypted with key '{kid}', which is not in the keyring. Restore that key.",
                row_id=binding.row_id,
                kid=kid,
            )
        try:
            blob = _b64url_decode(envelope.rsplit(".", 1)[1])
        except (binascii.Error, ValueError):
            blob = b""
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise CredentialUnreadable("The stored value is truncated or damaged.", row_id=binding.row_id, kid=kid)
        try:
            plain = AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], binding.aad(kid))
            return plain.decode("utf-8")
        except (InvalidTag, UnicodeDecodeError):
            raise CredentialUnreadable(
                f"The stored value does not decrypt with key '{kid}': the key is wrong, or the "
                "value was altered or moved.",
                row_id=binding.row_id,
                kid=kid,
            ) from None
