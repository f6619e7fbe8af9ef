"""Fixtures for the transport tests: identities, Noise credentials, TLS certificates."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from transport_helpers import SeededRandom, Tls, make_identity

from omega.crypto import Identity
from omega.transport.memory import MemoryNetwork
from omega.transport.noise import NoiseCredentials


@pytest.fixture(scope="session")
def alice() -> Identity:
    return make_identity("alice")


@pytest.fixture(scope="session")
def bob() -> Identity:
    return make_identity("bob")


@pytest.fixture(scope="session")
def mallory() -> Identity:
    return make_identity("mallory")


@pytest.fixture(scope="session")
def alice_credentials(alice: Identity) -> NoiseCredentials:
    return NoiseCredentials.from_identity(alice, rng=SeededRandom(b"alice-static"))


@pytest.fixture(scope="session")
def bob_credentials(bob: Identity) -> NoiseCredentials:
    return NoiseCredentials.from_identity(bob, rng=SeededRandom(b"bob-static"))


@pytest.fixture(scope="session")
def mallory_credentials(mallory: Identity) -> NoiseCredentials:
    return NoiseCredentials.from_identity(mallory, rng=SeededRandom(b"mallory-static"))


@pytest.fixture
def network() -> MemoryNetwork:
    return MemoryNetwork()


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "omega test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    directory: Path = tmp_path_factory.mktemp("tls")
    (directory / "cert.pem").write_bytes(certificate_pem)
    (directory / "key.pem").write_bytes(key_pem)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    client = ssl.create_default_context(cadata=certificate_pem.decode())
    return Tls(server=server, client=client, certificate_pem=certificate_pem, key_pem=key_pem)
