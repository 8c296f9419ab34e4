"""The tracker over TLS: real handshakes with a certificate made here, and what it refuses."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ppsp.codecs.tracker import codec_for
from ppsp.errors import KeyFileError
from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.net.server import ServerSettings, running_tracker
from ppsp.tracker.net.tls import server_tls_context
from ppsp.wire.tracker import ConnectRequest, Encoding, ProtocolVersion, TrackerResponse

V11 = ProtocolVersion.V1_1


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def make_certificate(directory: Path, name: str = "tracker") -> Certificate:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Certificate(directory / f"{name}.crt", directory / f"{name}.key")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def client_context(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


@contextlib.asynccontextmanager
async def tls_tracker(certificate: Certificate) -> AsyncIterator[str]:
    settings = ServerSettings(tls_cert=certificate.cert, tls_key=certificate.key)
    async with running_tracker(TrackerConfig(), settings=settings) as running:
        yield running.url


async def connect(url: str, context: ssl.SSLContext | bool) -> TrackerResponse:
    body = codec_for(Encoding.XML).encode_request(
        ConnectRequest(version=V11, transaction_id="1", peer_id="tls-peer")
    )
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            url, data=body, headers={"Content-Type": Encoding.XML.content_type}, ssl=context
        ) as resp,
    ):
        data = await resp.read()
        answer = codec_for(Encoding.XML).decode_response(data, resp.status, resp.reason or "")
        assert resp.status == 200 and isinstance(answer, TrackerResponse), answer
        return answer


async def test_https_with_a_real_handshake(tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path)
    async with tls_tracker(certificate) as url:
        assert url.startswith("https://127.0.0.1:")
        await connect(url, client_context(certificate.cert))
        # The negotiated protocol is TLS 1.2 or newer, with an AEAD cipher.
        host, port = url.removeprefix("https://").rsplit(":", 1)
        _, writer = await asyncio.open_connection(
            host, int(port), ssl=client_context(certificate.cert)
        )
        try:
            tls = writer.get_extra_info("ssl_object")
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert tls.selected_alpn_protocol() in (None, "http/1.1")
            assert any(mode in tls.cipher()[0] for mode in ("GCM", "CHACHA20"))
        finally:
            writer.close()


async def test_an_untrusted_client_fails_and_nothing_is_logged_as_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    certificate = make_certificate(tmp_path)
    other = make_certificate(tmp_path, "other")
    caplog.set_level(logging.DEBUG)
    async with tls_tracker(certificate) as url:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await connect(url, client_context(other.cert))
        await connect(url, client_context(certificate.cert))  # still serving
    assert "Traceback" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records if r.levelno >= logging.WARNING)


async def test_no_clear_text_on_a_tls_port(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    certificate = make_certificate(tmp_path)
    caplog.set_level(logging.DEBUG)
    async with tls_tracker(certificate) as url:
        host, port = url.removeprefix("https://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"GET /status HTTP/1.1\r\nHost: t\r\n\r\n")
            await writer.drain()
            try:
                answer = await asyncio.wait_for(reader.read(65536), 10)
            except ConnectionError:
                answer = b""
            # Never an HTTP answer: a TLS alert at most, then the connection is closed.
            assert not answer.startswith(b"HTTP/")
        finally:
            writer.close()
        await connect(url, client_context(certificate.cert))
    assert "Traceback" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records if r.levelno >= logging.WARNING)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_tls_1_1_is_refused(tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path)
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    try:
        old.set_ciphers("ALL:@SECLEVEL=0")
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ssl.SSLError, ValueError):
        pytest.skip("this OpenSSL cannot even offer TLS 1.1")
    async with tls_tracker(certificate) as url:
        host, port = url.removeprefix("https://").rsplit(":", 1)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port), ssl=old), 10
            )
            writer.close()


def test_tls_file_errors_are_one_line(tmp_path: Path) -> None:
    first = make_certificate(tmp_path, "first")
    second = make_certificate(tmp_path, "second")
    with pytest.raises(KeyFileError, match="no TLS certificate file"):
        server_tls_context(tmp_path / "nothing.crt", first.key)
    with pytest.raises(KeyFileError, match="no TLS key file"):
        server_tls_context(first.cert, tmp_path / "nothing.key")
    with pytest.raises(KeyFileError, match="does not belong to the certificate"):
        server_tls_context(first.cert, second.key)
    with pytest.raises(KeyFileError, match="holds no private key"):
        server_tls_context(first.cert, first.cert)
    with pytest.raises(KeyFileError, match="holds no certificate"):
        server_tls_context(first.key, first.key)
    (tmp_path / "garbage.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n")
    with pytest.raises(KeyFileError) as caught:
        server_tls_context(tmp_path / "garbage.crt", first.key)
    assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="both a certificate and its key"):
        ServerSettings(tls_cert=first.cert)


async def test_a_bad_certificate_stops_the_tracker_before_it_listens(tmp_path: Path) -> None:
    first = make_certificate(tmp_path, "first")
    second = make_certificate(tmp_path, "second")
    settings = ServerSettings(tls_cert=first.cert, tls_key=second.key)
    with pytest.raises(KeyFileError):
        async with running_tracker(TrackerConfig(), settings=settings):
            raise AssertionError("listening")
