"""``ppsp stun`` against a real STUN server (coturn): on loopback addresses of its own, and
from a host behind a masquerading NAT in network namespaces, where the reflexive address it
reports is the NAT's and not the host's.

The STUN server's retransmission window (requests at 0, 0.25, 0.75 and 1.75 s) covers
coturn's start, so no test waits for the server by polling.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from e2e.nat_helpers import (
    CLIENT,
    PUBLIC,
    ROUTER_PUBLIC,
    free_udp_port,
    natted,
    require,
    stun_server,
)
from e2e.swarm_helpers import ENV

pytestmark = pytest.mark.e2e

PPSP = [sys.executable, "-m", "ppsp"]
SERVER = "127.0.71.71"
LOCAL = "127.0.72.72"


def ppsp_stun(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *PPSP, "stun", *args], capture_output=True, text=True, timeout=60, env=ENV
    )


def test_stun_reports_the_local_address_when_nothing_translates(tmp_path: Path) -> None:
    require()
    port = free_udp_port(SERVER)
    with stun_server(SERVER, port, tmp_path):
        result = ppsp_stun(f"{SERVER}:{port}", "--host", LOCAL, "--port", "0")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith(f"reflexive {LOCAL}:"), line
    assert line.endswith("no NAT between this host and the server"), line
    reflexive, local = line.split()[1], line.split()[3].rstrip("):")
    assert reflexive == local  # the same port: nothing rewrote it


def test_stun_without_a_server_is_one_line_and_exit_1(tmp_path: Path) -> None:
    port = free_udp_port(SERVER)  # nobody listens there
    result = ppsp_stun(f"{SERVER}:{port}", "--host", LOCAL)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"ppsp: STUN server {SERVER}:{port}: no STUN answer after 4 requests"
    )
    assert result.stdout == ""


def test_behind_a_nat_stun_reports_the_nat_s_address(tmp_path: Path) -> None:
    require(namespaces=True)
    with natted() as net:
        prefix = ("ip", "netns", "exec")
        client = (*prefix, net.client)
        with stun_server(PUBLIC, 3478, tmp_path, prefix=(*prefix, net.public), probe_from=client):
            result = ppsp_stun(PUBLIC, "--host", CLIENT, "--port", "40404", prefix=client)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    # The server saw the router's public address, not the client's private one.
    assert line.startswith(f"reflexive {ROUTER_PUBLIC}:"), line
    assert f"(local {CLIENT}:40404)" in line
    assert line.endswith("behind a NAT"), line
