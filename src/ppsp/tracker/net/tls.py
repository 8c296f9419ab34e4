"""The tracker's TLS server context (RFC 7846 section 6.1: TLS between peers and tracker).

A port given a certificate speaks TLS only: a clear-text request there fails the handshake and
its connection is closed.  The context is the standard library's server default (certificate
checks off on the server side, compression and renegotiation off), with:

- TLS 1.2 as the oldest version (RFC 9325 section 3.1: TLS 1.0 and 1.1 MUST NOT be used);
- for TLS 1.2, only AEAD cipher suites with forward secrecy (ECDHE or DHE with AES-GCM or
  ChaCha20-Poly1305: RFC 9325 section 4.2's recommended suites and their kin); TLS 1.3's
  suites are all AEAD and left as OpenSSL has them;
- ALPN ``http/1.1``.

Errors in the certificate or key files are one-line :class:`~ppsp.errors.KeyFileError`\\ s.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from ppsp.errors import KeyFileError

__all__ = ["TLS12_CIPHERS", "server_tls_context"]

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL"
"""OpenSSL cipher list for TLS 1.2: AEAD suites with an ephemeral key exchange."""


def _read(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"no TLS {what} file {path}") from None
    except IsADirectoryError:
        raise KeyFileError(f"{path} is a directory, not a TLS {what} file") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read the TLS {what} file {path}: {exc.strerror}") from None
    if b"-----BEGIN" not in data:
        raise KeyFileError(f"the TLS {what} file {path} is not a PEM file")
    return data


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context with the certificate chain ``cert`` and its private key ``key``.

    Both are PEM files (``cert`` may hold the whole chain, leaf first; ``key`` must not be
    encrypted).  Raises :class:`~ppsp.errors.KeyFileError` naming the file and the problem.
    """
    cert_data = _read(cert, "certificate")
    key_data = _read(key, "key")
    if b"CERTIFICATE" not in cert_data:
        raise KeyFileError(f"the TLS certificate file {cert} holds no certificate")
    if b"PRIVATE KEY" not in key_data:
        raise KeyFileError(f"the TLS key file {key} holds no private key")
    if b"ENCRYPTED" in key_data:
        raise KeyFileError(f"the TLS key file {key} is encrypted: give an unencrypted key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    context.set_alpn_protocols(["http/1.1"])
    try:
        # A password callback that gives nothing: never a prompt on the terminal.
        context.load_cert_chain(cert, key, password=lambda: b"")
    except ssl.SSLError as exc:
        reason = (exc.reason or "").upper()
        if "KEY_VALUES_MISMATCH" in reason:
            raise KeyFileError(
                f"the TLS key {key} does not belong to the certificate {cert}"
            ) from None
        if "PEM" in str(exc).upper() and "CERT" in reason:
            raise KeyFileError(f"the TLS certificate file {cert} cannot be read") from None
        raise KeyFileError(
            f"cannot use the TLS certificate {cert} with the key {key}: {exc.reason or exc}"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read the TLS files {cert}, {key}: {exc.strerror}") from None
    return context
