"""HTTPS end to end: 8x8 is only ever reached over TLS, so the client's TLS path is tested
against the simulator served with a certificate from a test CA the client is told to trust
(SSL_CERT_FILE, as httpx reads it), and against one it does not trust."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from lib.catalogue.products import PRODUCT_KEYS
from lib.eightbyeight.models import Credentials, Target
from lib.simulator import SimulatorServer, TLSFiles
from tests.fixtures.prober import ProberFactory
from tests.fixtures.simulator import default_scenario


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca_and_leaf(folder: Path) -> tuple[Path, TLSFiles]:
    """A CA certificate (PEM) and a server certificate for 127.0.0.1 and localhost signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Switchboard test CA"))
        .issuer_name(_name("Switchboard test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(_pem(key))
    return folder / "ca.pem", TLSFiles(str(folder / "server.pem"), str(folder / "server.key"))


@pytest.fixture
def https_simulator(tmp_path: Path) -> Iterator[tuple[SimulatorServer, Path]]:
    ca, files = make_ca_and_leaf(tmp_path)
    with SimulatorServer(default_scenario(), tls=files) as server:
        yield server, ca


def _everything(server: SimulatorServer) -> Target:
    app = server.scenario.apps[0]
    settings = {
        "analytics_region": app.analytics_region,
        "storage_region": app.storage_regions[0],
        "qm_region": app.qm_region,
        "chat_region": app.chat_region,
        "tenant_id": app.tenants[0] if app.tenants else None,
        "pbx": app.pbx_names[0] if app.pbx_names else None,
    }
    return Target(Credentials(None, app.client_id, SecretStr(app.client_secret)), settings, PRODUCT_KEYS)


def test_a_trusted_certificate_gets_a_token_and_all_five_products(
    https_simulator,
    prober_factory: ProberFactory,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, ca = https_simulator
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    assert server.url.startswith("https://")
    results: list[tuple[str, str]] = []
    prober_factory(server.url).check([_everything(server)], lambda _t, r: results.append((r.product, r.outcome)))
    assert sorted(results) == sorted([("token", "ok"), *((key, "ok") for key in PRODUCT_KEYS)])


def test_a_certificate_from_an_unknown_ca_is_a_tls_error(https_simulator, prober_factory: ProberFactory) -> None:  # type: ignore[no-untyped-def]
    server, _ = https_simulator
    result = prober_factory(server.url).ask_token(_everything(server).credentials)
    assert result.outcome == "tls_error" and "could not be verified" in result.detail
