"""Standard Webhooks signatures: the spec's published vector, and the reference verifier (the
``standardwebhooks`` package) accepting what we sign and refusing what we did not."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from lib.kernel.errors import ValidationError
from lib.notify.signing import new_secret, secret_key, signature, signed_headers

# The example of the Standard Webhooks reference libraries' tests.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_published_vector() -> None:
    assert signature(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_a_second_fixed_vector_computed_by_hand() -> None:
    # HMAC-SHA256 with key 32 bytes of 0x01 over "evt_1.1700000000.{}", checked with openssl:
    # printf 'evt_1.1700000000.{}' | openssl dgst -sha256 -mac HMAC -macopt hexkey:0101…01 -binary | base64
    secret = "whsec_" + base64.b64encode(bytes([1]) * 32).decode()
    assert signature(secret, "evt_1", 1700000000, b"{}") == "v1,QwqMkShzqrc1Gme9vey76orVgdgb2XWjbuHPBS2IVKY="


def test_the_reference_verifier_accepts_our_headers_and_refuses_a_changed_body() -> None:
    secret = new_secret()
    body = '{"type":"check.failed","data":{"connection":"Acme ünïcode"}}'.encode()
    headers = signed_headers(secret, "evt_42", int(time.time()), body)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert Webhook(secret).verify(body, headers) == {"type": "check.failed", "data": {"connection": "Acme ünïcode"}}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"Acme", b"Acne"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    stale = signed_headers(secret, "evt_42", int(time.time()) - 3600, body)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(body, stale)


def test_a_new_secret_is_whsec_and_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert len(secret_key(first)) == 32


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", "must be whsec_ followed by base64"),
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must be whsec_ followed by base64"),
        ("whsec_", "must be whsec_ followed by base64"),
        ("whsec_not base64!", "must be whsec_ followed by base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "holds 5 bytes; a signing secret holds 24 to 64"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "holds 65 bytes"),
    ],
)
def test_a_malformed_secret_is_refused_naming_the_field(secret: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        secret_key(secret)
    assert [(e.field, e.label) for e in refused.value.errors] == [("secret", "Signing secret")]


def test_an_unpadded_secret_is_read_as_the_reference_verifier_reads_it() -> None:
    unpadded = "whsec_" + base64.b64encode(bytes(range(32))).decode().rstrip("=")
    assert secret_key(unpadded) == bytes(range(32))
