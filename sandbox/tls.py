"""A local certificate authority for the sandbox, made once under ``.data/tls/``.

MSAL only accepts https authorities, so the broker, the Entra simulator and the PSC simulator are
served over TLS with a server certificate for ``127.0.0.1`` and ``localhost`` issued by this CA.
This machine sets ``REQUESTS_CA_BUNDLE`` to the system bundle, and that variable beats a
``requests.Session.verify``; so trust is wired explicitly: :func:`ensure` writes ``bundle.pem``
(system CAs + the local CA) and sandbox processes point ``REQUESTS_CA_BUNDLE`` (and the broker's
``BROKER_CA_BUNDLE``) at it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.oid import NameOID

DEFAULT_DIR = Path(__file__).resolve().parent.parent / ".data" / "tls"


@dataclass(frozen=True)
class LocalTls:
    """Paths of the local CA, the server certificate and the trust bundle."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def cert(self) -> Path:
        return self.directory / "server.pem"

    @property
    def key(self) -> Path:
        return self.directory / "server-key.pem"

    @property
    def bundle(self) -> Path:
        return self.directory / "bundle.pem"

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for the sandbox's https servers."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert), str(self.key))
        return context

    def trust_in_this_process(self) -> None:
        """Make requests (and so MSAL and Authlib) in this process trust the local CA."""
        os.environ["REQUESTS_CA_BUNDLE"] = str(self.bundle)
        os.environ["SSL_CERT_FILE"] = str(self.bundle)


def ensure(directory: Path = DEFAULT_DIR) -> LocalTls:
    """Create the CA, server certificate and bundle if missing; return their paths."""
    tls = LocalTls(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if not (tls.ca.exists() and tls.cert.exists() and tls.key.exists() and _still_valid(tls.cert)):
        _issue(tls)
    if not tls.bundle.exists() or tls.bundle.stat().st_mtime < tls.ca.stat().st_mtime:
        _write_bundle(tls)
    return tls


def _still_valid(cert_path: Path) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    remaining = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return remaining > datetime.timedelta(days=7)


def _issue(tls: LocalTls) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sans-couture sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Sans-couture sandbox local CA"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=397))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    tls.key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(tls.key, 0o600)
    tls.cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    tls.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_bundle(tls)


def _write_bundle(tls: LocalTls) -> None:
    system = Path(os.environ.get("SANDBOX_SYSTEM_CA_BUNDLE") or certifi.where())
    if not system.exists():
        system = Path(certifi.where())
    tls.bundle.write_bytes(system.read_bytes().rstrip(b"\n") + b"\n" + tls.ca.read_bytes())
