"""A real nginx in front of a real tracker, terminating TLS, as docs/OPERATIONS.md deploys it.

nginx runs ``deploy/nginx/ppsp-tracker.conf`` itself (only its port, certificate paths and
upstream address replaced) under a main configuration of the test's, every path in the test's
directory.  The tracker listens on 127.0.0.1 with ``--trusted-proxy 127.0.0.1/32``; the seeder
and the leecher run on 127.0.0.2 and 127.0.0.3 and talk to ``https://`` nginx, so the tracker
sees every one of their connections come from 127.0.0.1 and learns who they are only from
X-Forwarded-For.  Where nginx is missing the test is skipped on a developer's machine and
fails in CI (``CI`` set), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from e2e.swarm_helpers import CHUNK_SIZE, COMPLETE, Swarm, closed_port, content
from e2e.tls_helpers import TLSFiles, make_tls_files
from e2e.tracker_probe import probe
from ppsp.tracker.net.client_trust import tls_context

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "ppsp-tracker.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
SEEDER, LEECHER, OUTSIDER = "127.0.0.2", "127.0.0.3", "127.0.0.4"
FORGED = "198.51.100.7"
"""An address a client claims in X-Forwarded-For (TEST-NET-2: nobody's)."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """A running nginx: its ``https://`` URL and the files that vouch for its certificate."""

    url: str
    tls: TLSFiles
    process: subprocess.Popen[bytes]
    error_log: Path


def site_config(tls: TLSFiles, port: int, upstream: str) -> str:
    """deploy/nginx/ppsp-tracker.conf with the test's port, certificate and tracker address.

    Each replaced line must be in the file exactly once, so that the file and this test cannot
    drift apart unnoticed.
    """
    text = SITE.read_text(encoding="utf-8")
    for old, new in (
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;"),
        ("server_name tracker.example.org;", "server_name 127.0.0.1;"),
        ("ssl_certificate /etc/ssl/ppsp/tracker-cert.pem;", f"ssl_certificate {tls.cert};"),
        ("ssl_certificate_key /etc/ssl/ppsp/tracker-key.pem;", f"ssl_certificate_key {tls.key};"),
        ("server 127.0.0.1:7000;", f"server {upstream};"),
    ):
        assert text.count(old) == 1, f"{SITE} no longer has {old!r} once"
        text = text.replace(old, new)
    return text


def main_config(directory: Path, site: Path) -> str:
    """An nginx.conf of the test's own: pid, logs and temporary files in ``directory``."""
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, the workers would switch to "nobody", who cannot enter pytest's directories.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\n"
        f"pid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"    access_log {directory / 'access.log'};\n"
        f"{temp}\n"
        f"    include {site};\n"
        "}\n"
    )


def wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Return once nginx accepts connections on ``port`` (fail if it exits first)."""
    for _ in range(200):
        if process.poll() is not None:
            output = process.stderr.read().decode(errors="replace") if process.stderr else ""
            errors = log.read_text(errors="replace") if log.exists() else ""
            pytest.fail(f"nginx exited with {process.returncode}\n{output}\n{errors}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
            return
        process_wait(process, 0.05)
    pytest.fail("nginx did not listen within 10 s")


def process_wait(process: subprocess.Popen[bytes], seconds: float) -> None:
    """Sleep ``seconds``, or less if the process exits."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(seconds)


@pytest.fixture
def tls(tmp_path: Path) -> TLSFiles:
    return make_tls_files(tmp_path / "tls", hosts=("127.0.0.1",))


@contextlib.contextmanager
def running_nginx(directory: Path, tls: TLSFiles, upstream: str) -> Iterator[Proxy]:
    """nginx with the deployment's site configuration, stopped (and reaped) on exit."""
    if NGINX is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing: .ci/run installs it")
        pytest.skip("nginx is missing (apt-get install nginx)")
    directory.mkdir()
    port = closed_port()
    site = directory / "ppsp-tracker.conf"
    site.write_text(site_config(tls, port, upstream), encoding="utf-8")
    conf = directory / "nginx.conf"
    conf.write_text(main_config(directory, site), encoding="utf-8")
    error_log = directory / "error.log"
    process = subprocess.Popen(
        [NGINX, "-p", str(directory), "-c", str(conf), "-g", "daemon off;"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(process, port, error_log)
        yield Proxy(f"https://127.0.0.1:{port}/", tls, process, error_log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # nginx's fast shutdown
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture
async def swarm(tmp_path: Path) -> AsyncIterator[Swarm]:
    async with Swarm(tmp_path) as running:
        yield running


async def test_peers_seed_and_get_through_nginx_with_their_own_addresses(
    swarm: Swarm, tmp_path: Path, tls: TLSFiles
) -> None:
    tracker = await swarm.tracker("--trusted-proxy", "127.0.0.1/32")
    direct = swarm.tracker_url  # http://127.0.0.1:PORT, not through nginx
    upstream = direct.removeprefix("http://")
    with running_nginx(tmp_path / "nginx", tls, upstream) as proxy:
        swarm.tracker_url = proxy.url
        data = content(6 * CHUNK_SIZE + 321)
        (tmp_path / "movie.bin").write_bytes(data)
        ca = str(tls.ca)
        _seeder, swarm_id = await swarm.seed(
            tmp_path / "movie.bin", "--host", SEEDER, "--ca-file", ca, name="seeder"
        )
        # The leecher speaks JSON (the seeder XML) and stays as a seeder once complete, so
        # that it is still a member when the tracker is asked about it.
        leecher = await swarm.get(
            swarm_id, tmp_path / "out.bin", "--host", LEECHER, "--ca-file", ca, "--seed-after",
            encoding="json", name="leecher",
        )  # fmt: skip
        await leecher.wait_line(COMPLETE, timeout=60)
        assert (tmp_path / "out.bin").read_bytes() == data

        context = tls_context(tls.ca)
        seen = await probe(proxy.url, swarm_id, local=OUTSIDER, tls=context)
        # Every connection the tracker accepted came from nginx (127.0.0.1); each peer is
        # known at the address it connected to nginx from.
        assert seen.requester == OUTSIDER, seen
        assert sorted(seen.reflexive.values(), key=sorted) == [{SEEDER}, {LEECHER}], seen
        assert sorted(seen.advertised.values(), key=sorted) == [{SEEDER}, {LEECHER}], seen

        # A client that writes X-Forwarded-For itself: through nginx, what it wrote is left of
        # the hop nginx adds, and the tracker reads only that hop.
        forged = {"X-Forwarded-For": FORGED, "Forwarded": f"for={FORGED}"}
        seen = await probe(proxy.url, swarm_id, local="127.0.0.5", headers=forged, tls=context)
        assert seen.requester == "127.0.0.5", seen
        # Straight to the tracker, from an address that is no trusted proxy: both ignored.
        seen = await probe(direct, swarm_id, local="127.0.0.6", headers=forged)
        assert seen.requester == "127.0.0.6", seen

        # The metrics location is for the proxy's own host only.
        timeout = aiohttp.ClientTimeout(total=10)
        for local, status in ((OUTSIDER, 403), ("127.0.0.1", 200)):
            connector = aiohttp.TCPConnector(local_addr=(local, 0))
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
                http.get(proxy.url + "metrics", ssl=context) as answer,
            ):
                assert answer.status == status, (local, answer.status)

        leecher.signal(signal.SIGINT)
        assert await leecher.wait() == 0, leecher.output()
    assert tracker.alive, tracker.output()
    # Nothing to warn about in nginx's log: the configuration, the upstream, the TLS clients.
    # (The one refusal is the metrics request the test made from an outside address.)
    log = proxy.error_log.read_text(errors="replace")
    refused = f"access forbidden by rule, client: {OUTSIDER}"
    bad = [
        line
        for line in log.splitlines()
        if re.search(r"\[(warn|error|crit|alert|emerg)\]", line) and refused not in line
    ]
    assert not bad, log


async def test_a_proxy_writing_forwarded_is_read_with_proxy_header(swarm: Swarm) -> None:
    # A proxy that adds RFC 7239 Forwarded (HAProxy's `option forwarded`), at 127.0.0.8.
    tracker = await swarm.tracker("--trusted-proxy", "127.0.0.8/32", "--proxy-header", "Forwarded")
    assert tracker.alive
    swarm_id = "ab" * 32
    both = {"Forwarded": "for=192.0.2.44", "X-Forwarded-For": FORGED}
    seen = await probe(swarm.tracker_url, swarm_id, local="127.0.0.8", headers=both)
    assert seen.requester == "192.0.2.44", seen  # the chosen header, not the other one
    seen = await probe(swarm.tracker_url, swarm_id, local="127.0.0.9", headers=both)
    assert seen.requester == "127.0.0.9", seen  # not the trusted proxy: neither header
