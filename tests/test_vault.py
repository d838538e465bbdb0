"""The AES-256-GCM envelope: format, binding, tampering, parsing (security checklist 2-6, 9)."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.kernel.errors import CredentialUnreadable, KeyringError
from lib.store.vault import Binding, Keyring, Vault, new_key, parse_inline_keys, parse_keyring_json

ENVELOPE = re.compile(r"^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+=*$")
HERE = Binding("connection", "client_secret_enc", "6f1c1e8e-8a3e-4d0b-9a43-1b8f5f0d2c11")


def _payload(envelope: str) -> bytes:
    text = envelope.split(".", 2)[2]
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_envelope_format_nonce_and_key_sizes(vault: Vault) -> None:
    envelope = vault.encrypt("a secret", HERE)
    assert ENVELOPE.match(envelope)
    assert envelope.startswith("v1.k1.")
    blob = _payload(envelope)
    assert len(blob) == 12 + len(b"a secret") + 16  # nonce | ciphertext | tag
    assert all(len(key) == 32 for key in vault.keyring.keys.values())


def test_same_plaintext_twice_gives_different_ciphertexts(vault: Vault) -> None:
    first, second = vault.encrypt("same", HERE), vault.encrypt("same", HERE)
    assert first != second
    assert _payload(first)[:12] != _payload(second)[:12]


@pytest.mark.parametrize(
    "elsewhere",
    [
        Binding("connection", "client_secret_enc", "00000000-0000-4000-8000-000000000000"),  # row
        Binding("connection", "client_id_enc", HERE.row_id),  # column
        Binding("other_table", "client_secret_enc", HERE.row_id),  # table
    ],
    ids=["other-row", "other-column", "other-table"],
)
def test_a_value_moved_elsewhere_does_not_decrypt(vault: Vault, elsewhere: Binding) -> None:
    envelope = vault.encrypt("bound value", HERE)
    with pytest.raises(CredentialUnreadable):
        vault.decrypt(envelope, elsewhere)


def test_relabelled_kid_does_not_decrypt() -> None:
    key = new_key()
    vault = Vault(Keyring("k1", {"k1": key, "k2": key}))  # same key under two kids
    envelope = vault.encrypt("x", HERE)
    with pytest.raises(CredentialUnreadable):
        vault.decrypt(envelope.replace("v1.k1.", "v1.k2.", 1), HERE)  # kid is in the AAD


def test_every_single_byte_flip_is_detected(vault: Vault) -> None:
    envelope = vault.encrypt("tamper-evident", HERE)
    blob = _payload(envelope)
    for position in range(len(blob)):  # nonce, ciphertext and tag alike
        flipped = bytearray(blob)
        flipped[position] ^= 0x01
        forged = "v1.k1." + base64.urlsafe_b64encode(bytes(flipped)).decode().rstrip("=")
        with pytest.raises(CredentialUnreadable):
            vault.decrypt(forged, HERE)


@pytest.mark.parametrize("prefix", ["v2.k1.", "V1.k1.", "v1.k9.", "v1..", "k1.", ""])
def test_changed_version_or_kid_prefix_is_refused(vault: Vault, prefix: str) -> None:
    envelope = vault.encrypt("x", HERE)
    forged = prefix + envelope.split(".", 2)[2]
    with pytest.raises(CredentialUnreadable):
        vault.decrypt(forged, HERE)


def test_unknown_kid_names_the_kid_and_no_key_material(vault: Vault) -> None:
    other = Vault(Keyring("k7", {"k7": new_key()}))
    envelope = other.encrypt("x", HERE)
    with pytest.raises(CredentialUnreadable) as info:
        vault.decrypt(envelope, HERE)
    message = str(info.value)
    assert "'k7'" in message and info.value.kid == "k7"
    for key in (*vault.keyring.keys.values(), *other.keyring.keys.values()):
        assert base64.b64encode(key).decode() not in message
        assert key.hex() not in message


def test_older_key_in_ring_still_decrypts() -> None:
    k1, k2 = new_key(), new_key()
    old = Vault(Keyring("k1", {"k1": k1}))
    envelope = old.encrypt("still readable", HERE)
    assert Vault(Keyring("k2", {"k1": k1, "k2": k2})).decrypt(envelope, HERE) == "still readable"


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=4096))
def test_round_trip_any_unicode(text: str) -> None:
    vault = Vault(Keyring("k1", {"k1": new_key()}))
    assert vault.decrypt(vault.encrypt(text, HERE), HERE) == text


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=256), row=st.uuids(), column=st.sampled_from(["client_id_enc", "x"]))
def test_any_other_binding_fails(text: str, row, column: str) -> None:  # type: ignore[no-untyped-def]
    vault = Vault(Keyring("k1", {"k1": new_key()}))
    other = Binding("connection", column, str(row))
    if other == HERE:
        return
    with pytest.raises(CredentialUnreadable):
        vault.decrypt(vault.encrypt(text, HERE), other)


@settings(max_examples=500, deadline=None)
@given(
    junk=st.one_of(
        st.text(),
        st.binary(),
        st.none(),
        st.integers(),
        st.from_regex(r"v1\.k1\.[A-Za-z0-9_-]{0,80}={0,3}", fullmatch=True),
    )
)
def test_envelope_parser_raises_only_credential_unreadable(junk: object) -> None:
    vault = Vault(Keyring("k1", {"k1": new_key()}))
    with pytest.raises(CredentialUnreadable):
        vault.decrypt(junk, HERE)


def test_repr_never_shows_keys(vault: Vault) -> None:
    key = vault.keyring.keys["k1"]
    for text in (repr(vault), repr(vault.keyring), str(vault.keyring)):
        assert base64.b64encode(key).decode() not in text and key.hex() not in text


# --- keyring parsing ------------------------------------------------------------------------

GOOD = base64.b64encode(b"\x01" * 32).decode()
OTHER = base64.b64encode(b"\x02" * 32).decode()


def test_inline_keys_first_is_active() -> None:
    keyring = parse_inline_keys(f"k2:{GOOD}, k1:{OTHER}")
    assert keyring.active == "k2" and set(keyring.keys) == {"k1", "k2"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("k1", "k1:<base64 key>"),
        ("k1:not base64!", "key 'k1' is not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "key 'k1' must decode to 32 bytes, not 5"),
        (f"bad kid!:{GOOD}", "key id 'bad kid!' is not valid"),
        (f"k1:{GOOD},k1:{GOOD}", "'k1' appears twice"),
    ],
)
def test_inline_keys_errors_name_the_problem(value: str, expected: str) -> None:
    with pytest.raises(KeyringError) as info:
        parse_inline_keys(value)
    assert "SWITCHBOARD_KEYS" in str(info.value) and expected in str(info.value)
    assert GOOD not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", "not valid JSON"),
        ('{"active": "k1"}', '"keys"'),
        (f'{{"active": "k9", "keys": {{"k1": "{GOOD}"}}}}', "active key id 'k9'"),
        ('{"active": "k1", "keys": {"k1": "AAAA"}}', "key 'k1' must decode to 32 bytes"),
    ],
)
def test_keyring_file_errors_name_the_problem(text: str, expected: str) -> None:
    with pytest.raises(KeyringError) as info:
        parse_keyring_json(text, "/keys/keyring.json")
    assert "/keys/keyring.json" in str(info.value) and expected in str(info.value)
