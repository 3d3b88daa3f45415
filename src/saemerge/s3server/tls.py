"""The embedded store's own certificate authority: mutual TLS between SeaweedFS's components.

SeaweedFS's gRPC ports take only clients with a certificate of the CA its ``security.toml``
names (:mod:`saemerge.s3server.server`). The CA, and the one certificate every component shows as
server and as client, are made here once per store directory; the private keys are readable by
the owner only. The CA's key is not kept: nothing signs later.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

_VALID = datetime.timedelta(days=3650)


def write_store_ca(directory: Path) -> None:
    """Write ``ca.pem``, ``cert.pem`` and ``key.pem`` (0600) under `directory` (mode 0700)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def builder(subject: x509.Name, issuer: x509.Name, key) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALID)
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        builder(name("saemerge-store-ca"), name("saemerge-store-ca"), ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        builder(name("saemerge-store"), ca.subject, key)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _private(
        directory / "key.pem", key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    _private(directory / "cert.pem", cert.public_bytes(pem))
    _private(directory / "ca.pem", ca.public_bytes(pem))


def _private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
