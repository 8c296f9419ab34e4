"""SIGHUP: a running tracker reads its TLS certificate and its token key again.

Real ``ppsp tracker`` processes on 127.0.0.1 with certificates made on the spot (each from its
own test CA) and keys from ``ppsp keygen``: after the files are replaced and the tracker is sent
SIGHUP, new connections get the new certificate while a connection opened before keeps working,
a key file that gains a second key takes tokens of both, and one that loses the old key
refuses its tokens; a file that cannot be used leaves
the tracker serving with what it had, one warning line said; with several workers the parent
passes the signal on, and a worker started again after it reads the new files too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding as PemEncoding

from e2e.swarm_helpers import Peer, Swarm, run_ppsp
from e2e.test_tracker_trust import Keys, token
from e2e.test_tracker_workers import database, wait_for_children
from e2e.tls_helpers import TLSFiles, make_tls_files
from waits import until

pytestmark = pytest.mark.e2e

READ_AGAIN = "TLS certificate read from"
KEY_READ_AGAIN = "token key read from"
NOT_READ = "TLS certificate not read again, the previous one serves on"


@pytest.fixture
async def swarm(tmp_path: Path) -> AsyncIterator[Swarm]:
    async with Swarm(tmp_path) as running:
        yield running


def der(files: TLSFiles) -> bytes:
    """The DER bytes of the server certificate in ``files``."""
    return x509.load_pem_x509_certificate(files.cert.read_bytes()).public_bytes(PemEncoding.DER)


def install(source: TLSFiles, served: TLSFiles) -> None:
    """Put ``source``'s certificate and key where the tracker reads ``served``'s, each file
    replaced whole (as a renewal tool does)."""
    for src, dst in ((source.cert, served.cert), (source.key, served.key)):
        staged = dst.with_suffix(".new")
        shutil.copyfile(src, staged)
        os.replace(staged, dst)


async def served_certificate(url: str) -> bytes:
    """The DER certificate a new TLS connection to ``url`` is shown."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _, writer = await asyncio.open_connection(host, int(port), ssl=context)
    try:
        shown = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
    assert shown is not None
    return bytes(shown)


async def status_on(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """The status line of ``GET /status`` on an open connection."""
    writer.write(b"GET /status HTTP/1.1\r\nHost: t\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


def said(peer: Peer, text: str) -> int:
    """How many lines of ``peer``'s standard error hold ``text``."""
    return sum(text in line for line in peer.stderr)


async def start_tracker(swarm: Swarm, files: TLSFiles, *args: str) -> tuple[Peer, str]:
    tracker = await swarm.spawn(
        "tracker", "tracker", "--host", "127.0.0.1", "--port", "0", "--log-level", "info",
        "--tls-cert", str(files.cert), "--tls-key", str(files.key), *args,
    )  # fmt: skip
    url = (await tracker.wait_line(r"listening on (https://\S+)", stream="stdout")).group(1)
    return tracker, url


async def test_sighup_reads_the_certificate_again_and_keeps_it_when_the_new_one_is_unusable(
    swarm: Swarm, tmp_path: Path
) -> None:
    first = make_tls_files(tmp_path / "first")
    second = make_tls_files(tmp_path / "second")
    served = make_tls_files(tmp_path / "served")
    install(first, served)
    tracker, url = await start_tracker(swarm, served)
    assert await served_certificate(url) == der(first)
    host, port = url.removeprefix("https://").rsplit(":", 1)
    # A kept-alive connection opened before the change (trusting the first CA only).
    reader, writer = await asyncio.open_connection(
        host, int(port), ssl=ssl.create_default_context(cafile=str(first.ca)), server_hostname=host
    )
    try:
        assert await status_on(reader, writer) == b"HTTP/1.1 200 OK"

        install(second, served)
        tracker.signal(signal.SIGHUP)
        await until(lambda: said(tracker, READ_AGAIN) == 1)
        assert "valid until" in next(line for line in tracker.stderr if READ_AGAIN in line)
        assert await served_certificate(url) == der(second)
        assert await status_on(reader, writer) == b"HTTP/1.1 200 OK"  # still served

        # A key that does not belong to the certificate: the second one serves on.
        os.replace(first.key, served.key)
        tracker.signal(signal.SIGHUP)
        await until(lambda: said(tracker, NOT_READ) == 1)
        warning = next(line for line in tracker.stderr if NOT_READ in line)
        assert str(served.key) in warning
        assert await served_certificate(url) == der(second)
        assert tracker.alive
    finally:
        writer.close()
    tracker.signal(signal.SIGTERM)
    assert await tracker.wait() == 0, tracker.output()
    assert "Traceback" not in tracker.output()


async def test_sighup_to_a_tracker_without_files_says_so_and_serves_on(swarm: Swarm) -> None:
    tracker = await swarm.spawn(
        "tracker", "tracker", "--host", "127.0.0.1", "--port", "0", "--log-level", "info"
    )  # fmt: skip
    await tracker.wait_line(r"listening on (http://\S+)", stream="stdout")
    tracker.signal(signal.SIGHUP)
    await tracker.wait_line("SIGHUP: nothing to read again")
    assert tracker.alive
    tracker.signal(signal.SIGTERM)
    assert await tracker.wait() == 0, tracker.output()


def keys_in(directory: Path) -> Keys:
    directory.mkdir()
    result = run_ppsp("keygen", "--out", str(directory / "auth"), cwd=directory)
    assert result.returncode == 0, result.stderr
    return Keys(private=directory / "auth-private.pem", public=directory / "auth-public.pem")


async def test_sighup_reads_the_token_key_again(swarm: Swarm, tmp_path: Path) -> None:
    from ppsp.codecs import tracker_xml as xml_codec
    from ppsp.wire.tracker import ConnectRequest, ProtocolVersion

    old, new = keys_in(tmp_path / "old"), keys_in(tmp_path / "new")
    public = tmp_path / "tracker-key.pem"
    shutil.copyfile(old.public, public)
    files = make_tls_files(tmp_path / "tls")
    tracker, url = await start_tracker(swarm, files, "--auth-key", str(public))
    context = ssl.create_default_context(cafile=str(files.ca))

    async def connect_with(keys: Keys, peer_id: str) -> int:
        body = xml_codec.encode_request(
            ConnectRequest(version=ProtocolVersion.V1_1, transaction_id="1", peer_id=peer_id)
        )
        host, port = url.removeprefix("https://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(
            host, int(port), ssl=context, local_addr=("127.0.0.1", 0)
        )
        try:
            writer.write(
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/xml\r\n"
                + f"Authorization: Bearer {token(keys, peer_id)}\r\n".encode()
                + b"Content-Length: %d\r\n\r\n" % len(body)
                + body
            )
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 10)
        finally:
            writer.close()
        return int(line.split()[1])

    assert await connect_with(old, "peer-a") == 200
    assert await connect_with(new, "peer-b") == 401
    # A rotation: the new key added beside the old one, then the old one removed.
    public.write_bytes(old.public.read_bytes() + new.public.read_bytes())
    tracker.signal(signal.SIGHUP)
    await until(lambda: said(tracker, KEY_READ_AGAIN) == 1)
    assert await connect_with(new, "peer-c") == 200
    assert await connect_with(old, "peer-d") == 200
    os.replace(new.public, public)
    tracker.signal(signal.SIGHUP)
    await until(lambda: said(tracker, KEY_READ_AGAIN) == 2)
    assert await connect_with(new, "peer-e") == 200
    assert await connect_with(old, "peer-f") == 401
    tracker.signal(signal.SIGTERM)
    assert await tracker.wait() == 0, tracker.output()


async def test_workers_read_the_certificate_again_on_the_parents_sighup(
    swarm: Swarm, tmp_path: Path, redis_url: str
) -> None:
    first = make_tls_files(tmp_path / "first")
    second = make_tls_files(tmp_path / "second")
    served = make_tls_files(tmp_path / "served")
    install(first, served)
    tracker, url = await start_tracker(
        swarm, served, "--workers", "2", "--storage", database(redis_url, 14)
    )
    workers = await wait_for_children(tracker.pid, 2)
    install(second, served)
    tracker.signal(signal.SIGHUP)
    await until(lambda: said(tracker, READ_AGAIN) == 2)  # one line from each worker
    # Fresh connections, so that both workers show theirs.
    for _ in range(8):
        assert await served_certificate(url) == der(second)
    # A worker started again reads the files as they are then.
    third = make_tls_files(tmp_path / "third")
    install(third, served)
    killed = min(workers)
    os.kill(killed, signal.SIGKILL)
    await wait_for_children(tracker.pid, 2, without={killed})
    shown = {await served_certificate(url) for _ in range(16)}
    assert shown <= {der(second), der(third)} and der(third) in shown, len(shown)
    tracker.signal(signal.SIGTERM)
    assert await tracker.wait() == 0, tracker.output()
    assert "Traceback" not in tracker.output()
