"""A relay on a real TURN server (coturn with long-term credentials): datagrams go both ways
between a peer and a client that has only the relay, on loopback addresses of their own and
from a host behind a masquerading NAT (network namespaces); wrong credentials are one line.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.nat_helpers import (
    CLIENT,
    PUBLIC,
    ROUTER_PUBLIC,
    TURN_PASSWORD,
    TURN_USER,
    free_udp_port,
    natted,
    require,
    stun_server,
)
from e2e.netns_helpers import ip
from e2e.swarm_helpers import ENV
from ppsp.errors import StunError
from ppsp.peer.net.turn import TurnRelay

pytestmark = pytest.mark.e2e

SERVER = "127.0.74.74"
CLIENT_LOOPBACK = "127.0.75.75"
PEER_LOOPBACK = "127.0.76.76"
ECHO_PUBLIC = "10.232.0.3"
HERE = Path(__file__).parent


async def test_datagrams_go_both_ways_through_the_relay(tmp_path: Path) -> None:
    require()
    port = free_udp_port(SERVER)
    with stun_server(SERVER, port, tmp_path, turn=True, loopback_peers=True):
        relay = await TurnRelay.allocate(
            (SERVER, port), TURN_USER, TURN_PASSWORD, local=(CLIENT_LOOPBACK, 0)
        )
        try:
            assert relay.relayed is not None and relay.relayed[0] == SERVER
            assert relay.mapped is not None and relay.mapped[0] == CLIENT_LOOPBACK
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
                peer.bind((PEER_LOOPBACK, 0))
                peer.setblocking(False)
                await relay.permit(PEER_LOOPBACK)
                await loop.sock_sendto(peer, b"to the client", relay.relayed)
                sender, data = await asyncio.wait_for(relay.receive(), 5)
                assert (sender, data) == (peer.getsockname(), b"to the client")
                relay.send(peer.getsockname(), b"to the peer")
                data, source = await asyncio.wait_for(loop.sock_recvfrom(peer, 2048), 5)
                # The peer sees the relay, never the client's own address.
                assert (data, source) == (b"to the peer", relay.relayed)
        finally:
            await relay.close()


async def test_wrong_credentials_are_one_clean_error(tmp_path: Path) -> None:
    require()
    port = free_udp_port(SERVER)
    with stun_server(SERVER, port, tmp_path, turn=True), pytest.raises(StunError) as caught:
        await TurnRelay.allocate((SERVER, port), TURN_USER, "wrong", local=(CLIENT_LOOPBACK, 0))
    assert "401" in str(caught.value) and "\n" not in str(caught.value)


def test_a_host_behind_nat_is_reached_through_its_relay(tmp_path: Path) -> None:
    require(namespaces=True)
    with natted() as net:
        # A second public address for the peer; traffic between the two goes through the
        # namespace's loopback interface, which starts down.
        ip("-n", net.public, "addr", "add", f"{ECHO_PUBLIC}/24", "dev", "eth0")
        ip("-n", net.public, "link", "set", "lo", "up")
        with stun_server(PUBLIC, 3478, tmp_path, prefix=("ip", "netns", "exec", net.public),
                         turn=True, probe_from=("ip", "netns", "exec", net.client)):  # fmt: skip
            echo = subprocess.Popen(
                net.run(net.public, [sys.executable, str(HERE / "udp_echo.py"),
                                     ECHO_PUBLIC, "7000", "20"]),
                stdout=subprocess.PIPE, text=True, env=ENV,
            )  # fmt: skip
            try:
                assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
                result = subprocess.run(
                    net.run(net.client, [sys.executable, str(HERE / "turn_probe.py"),
                                         f"{PUBLIC}:3478", TURN_USER, TURN_PASSWORD, CLIENT,
                                         f"{ECHO_PUBLIC}:7000"]),
                    capture_output=True, text=True, timeout=60, env=ENV,
                )  # fmt: skip
                seen = echo.stdout.readline().strip()
            finally:
                echo.kill()
                echo.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    assert probe["mapped"][0] == ROUTER_PUBLIC  # the TURN server saw the NAT, not the client
    assert probe["relayed"][0] == PUBLIC
    assert probe["data"] == "echo:ping" and probe["sender"] == [ECHO_PUBLIC, 7000]
    # The echo server was sent to from the relay address, not the client's or the NAT's.
    assert seen == f"{probe['relayed'][0]}:{probe['relayed'][1]}"
