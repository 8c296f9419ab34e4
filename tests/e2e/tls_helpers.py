"""Certificates for TLS tests, made on the spot with ``cryptography``: a test CA and the
certificate it issues to a server on loopback, or a self-signed one nobody trusts.

Each certificate carries what strict verifiers ask for (subject and authority key identifiers,
key usage, serverAuth for the leaf), so that the tests exercise trust, not a quirk of the
certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """PEM files of one server: its certificate and key, and the CA certificate that vouches
    for it (the certificate itself when it is self-signed)."""

    ca: Path
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def make_tls_files(
    directory: Path,
    hosts: Sequence[str] = ("127.0.0.1",),
    *,
    self_signed: bool = False,
    name: str = "tracker",
) -> TLSFiles:
    """Write a server certificate for ``hosts`` (IP addresses or names) into ``directory``.

    Issued by a fresh test CA (``ca`` is the CA's certificate, the file a client trusts), or,
    with ``self_signed``, signed by its own key (``ca`` is then the certificate itself).
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2))
    key = ec.generate_private_key(ec.SECP256R1())
    if self_signed:
        ca_key, ca_name = key, _name(name)
    else:
        ca_key, ca_name = ec.generate_private_key(ec.SECP256R1()), _name(f"{name} test CA")
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid[0])
            .not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(_san(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    cert = builder.sign(ca_key, hashes.SHA256())
    files = TLSFiles(
        ca=directory / f"{name}-ca.pem",
        cert=directory / f"{name}-cert.pem",
        key=directory / f"{name}-key.pem",
    )
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(files.key, key)
    trusted = cert if self_signed else ca_cert
    files.ca.write_bytes(trusted.public_bytes(serialization.Encoding.PEM))
    return files


def server_context(files: TLSFiles) -> ssl.SSLContext:
    """A server-side TLS context presenting ``files``' certificate (for scripted servers)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert, files.key)
    return context
