"""A host behind a NAT, and a STUN server, for end-to-end tests of NAT traversal.

:func:`natted` makes three network namespaces: ``public`` (10.232.0.1, where servers run),
``router`` (10.232.0.2 on the public side, 10.233.0.1 on the private one, masquerading the
private network with nftables, as a home router does) and ``client`` (10.233.0.2, its default
route through the router).  Everything is deleted when the ``with`` block ends.

:func:`two_nats` makes two such routers, each with a client behind it, and a public source host
(its uplink rate capped with ``tbf``) beside the public servers, all on one public bridge.

:func:`stun_server` runs coturn (Debian's ``turnserver``) as a STUN-only server.  Both need
what ``.ci/run`` installs (coturn, nftables) and root; :func:`require` skips a test on a
machine without them and fails it in CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from e2e.netns_helpers import IP, NamespaceError, can_make_namespaces, ip
from e2e.swarm_helpers import ENV, LISTENING, OFFERING, Peer, Swarm

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
NFT = shutil.which("nft") or "/usr/sbin/nft"
PUBLIC, ROUTER_PUBLIC = "10.232.0.1", "10.232.0.2"
ROUTER_PRIVATE, CLIENT = "10.233.0.1", "10.233.0.2"


def require(*, namespaces: bool = False) -> None:
    """Skip (fail in CI) when coturn, or with ``namespaces`` root, nftables or namespaces,
    are missing."""
    missing = []
    if not Path(TURNSERVER).exists():
        missing.append("coturn's turnserver (apt-get install coturn)")
    if namespaces:
        if os.geteuid() != 0:
            missing.append("root, for network namespaces")
        elif not Path(NFT).exists():
            missing.append("nftables' nft (apt-get install nftables)")
        else:
            reason = can_make_namespaces()
            if reason is not None:
                missing.append(f"network namespaces ({reason})")
    if missing:
        message = "needs " + "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass(frozen=True, slots=True)
class Natted:
    """The three namespaces of :func:`natted`, by role."""

    public: str
    router: str
    client: str

    def run(self, namespace: str, command: Sequence[str]) -> list[str]:
        """``command`` as run inside ``namespace`` (``ip netns exec``)."""
        return [IP, "netns", "exec", namespace, *command]


def _veth(a: str, a_dev: str, b: str, b_dev: str) -> None:
    ip("link", "add", a_dev, "netns", a, "type", "veth", "peer", "name", b_dev, "netns", b)


@contextlib.contextmanager
def natted() -> Iterator[Natted]:
    """A client behind a masquerading router, and a public host (see the module docstring)."""
    tag = secrets.token_hex(3)
    made: list[str] = []
    names = Natted(f"ppsp-{tag}-pub", f"ppsp-{tag}-nat", f"ppsp-{tag}-cli")
    try:
        for namespace in (names.public, names.router, names.client):
            ip("netns", "add", namespace)
            made.append(namespace)
        _veth(names.public, "eth0", names.router, "wan0")
        _veth(names.client, "eth0", names.router, "lan0")
        for namespace, dev, address in (
            (names.public, "eth0", f"{PUBLIC}/24"),
            (names.router, "wan0", f"{ROUTER_PUBLIC}/24"),
            (names.router, "lan0", f"{ROUTER_PRIVATE}/24"),
            (names.client, "eth0", f"{CLIENT}/24"),
        ):
            ip("-n", namespace, "addr", "add", address, "dev", dev)
            ip("-n", namespace, "link", "set", dev, "up")
        for namespace in made:  # a server's own clients (a probe beside it) go through lo
            ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", names.client, "route", "add", "default", "via", ROUTER_PRIVATE)
        # The public host has no route to the private network: only the NAT's address answers.
        subprocess.run(
            names.run(names.router, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]),
            check=True, timeout=30, capture_output=True,
        )  # fmt: skip
        rules = (
            "table ip ppspnat {\n  chain post {\n"
            '    type nat hook postrouting priority srcnat; oifname "wan0" masquerade;\n'
            "  }\n}\n"
        )
        subprocess.run(
            names.run(names.router, [NFT, "-f", "-"]),
            input=rules, text=True, check=True, timeout=30, capture_output=True,
        )  # fmt: skip
        yield names
    finally:
        for namespace in reversed(made):
            with contextlib.suppress(NamespaceError, subprocess.TimeoutExpired):
                ip("netns", "delete", namespace)


@dataclass(frozen=True, slots=True)
class TwoNats:
    """The namespaces of :func:`two_nats`, by role."""

    public: str
    """The public servers' host (tracker, STUN), holding the public bridge."""
    source: str
    """A public host whose uplink is capped (a source that cannot serve everything quickly)."""
    router_a: str
    client_a: str
    router_b: str
    client_b: str

    def run(self, namespace: str, command: Sequence[str]) -> list[str]:
        """``command`` as run inside ``namespace`` (``ip netns exec``)."""
        return [IP, "netns", "exec", namespace, *command]

    def prefixes(self) -> tuple[list[str], list[str], list[str], list[str]]:
        """What runs a command on the public host, the source host, client A and client B."""
        run = self.run
        return (
            run(self.public, []),
            run(self.source, []),
            run(self.client_a, []),
            run(self.client_b, []),
        )


SOURCE = "10.232.0.4"
ROUTER_A_PUBLIC, ROUTER_B_PUBLIC = "10.232.0.2", "10.232.0.3"
CLIENT_A, CLIENT_B = "10.233.0.2", "10.234.0.2"


def _router_rules(wan: str, *, per_destination: bool = False) -> str:
    """A home router's nftables rules: masquerade what leaves by ``wan``, and drop what comes
    in by it unasked for (only answers to what went out pass).  Without the drop, a datagram
    to the router's address that nothing asked for (a peer's handshake ahead of the punch)
    leaves a connection-tracking entry that makes the later outgoing mapping of that very
    address pair take another port: the hole punched would not be where the tracker says.

    With ``per_destination`` the router maps each destination to a port of its own
    (``masquerade fully-random``: endpoint-dependent mapping, a "symmetric NAT"), so the
    reflexive address a STUN server sees is not the one any other host is sent from."""
    masquerade = "masquerade fully-random" if per_destination else "masquerade"
    return (
        "table ip ppspnat {\n"
        "  chain post {\n"
        f'    type nat hook postrouting priority srcnat; oifname "{wan}" {masquerade};\n'
        "  }\n"
        "  chain incoming {\n"
        "    type filter hook input priority filter; policy accept;\n"
        f'    iifname "{wan}" ct state established,related accept;\n'
        f'    iifname "{wan}" drop;\n'
        "  }\n"
        "  chain passing {\n"
        "    type filter hook forward priority filter; policy accept;\n"
        f'    iifname "{wan}" ct state established,related accept;\n'
        f'    iifname "{wan}" drop;\n'
        "  }\n"
        "}\n"
    )


@contextlib.contextmanager
def two_nats(
    source_rate: str = "4mbit", *, symmetric_a: bool = False, symmetric_b: bool = False
) -> Iterator[TwoNats]:
    """Two clients, each behind its own masquerading router, and a public host and a source
    host, on one public bridge (10.232.0.0/24: public .1, router A .2, router B .3, source
    .4; client A 10.233.0.2, client B 10.234.0.2).  The routers forward nothing unasked for
    from outside (:func:`_router_rules`); the source's uplink is capped at ``source_rate``
    (``tbf``).  With ``symmetric_b`` router B maps each destination to a port of its own
    (hole punching through it fails; only a relay reaches client B), with ``symmetric_a``
    router A.  Everything is deleted
    when the ``with`` block ends."""
    tag = secrets.token_hex(3)
    made: list[str] = []
    names = TwoNats(*(f"ppsp-{tag}-{role}" for role in ("pub", "src", "rta", "cla", "rtb", "clb")))
    try:
        for namespace in (names.public, names.source, names.router_a, names.client_a,
                          names.router_b, names.client_b):  # fmt: skip
            ip("netns", "add", namespace)
            made.append(namespace)
            ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", names.public, "link", "add", "br0", "type", "bridge")
        ip("-n", names.public, "addr", "add", f"{PUBLIC}/24", "dev", "br0")
        ip("-n", names.public, "link", "set", "br0", "up")
        uplinks = ((names.source, "eth0", SOURCE), (names.router_a, "wan0", ROUTER_A_PUBLIC),
                   (names.router_b, "wan0", ROUTER_B_PUBLIC))  # fmt: skip
        for number, (namespace, dev, address) in enumerate(uplinks):
            port = f"port{number}"
            _veth(names.public, port, namespace, dev)
            ip("-n", names.public, "link", "set", port, "master", "br0")
            ip("-n", names.public, "link", "set", port, "up")
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", dev)
            ip("-n", namespace, "link", "set", dev, "up")
        for router, client, private, host, per_destination in (
            (names.router_a, names.client_a, "10.233.0.1", CLIENT_A, symmetric_a),
            (names.router_b, names.client_b, "10.234.0.1", CLIENT_B, symmetric_b),
        ):
            _veth(client, "eth0", router, "lan0")
            ip("-n", router, "addr", "add", f"{private}/24", "dev", "lan0")
            ip("-n", router, "link", "set", "lan0", "up")
            ip("-n", client, "addr", "add", f"{host}/24", "dev", "eth0")
            ip("-n", client, "link", "set", "eth0", "up")
            ip("-n", client, "route", "add", "default", "via", private)
            subprocess.run(
                names.run(router, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]),
                check=True, timeout=30, capture_output=True,
            )  # fmt: skip
            subprocess.run(
                names.run(router, [NFT, "-f", "-"]),
                input=_router_rules("wan0", per_destination=per_destination), text=True,
                check=True, timeout=30,
                capture_output=True,
            )  # fmt: skip
        subprocess.run(
            names.run(names.source, ["tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
                                     "rate", source_rate, "burst", "16kb", "latency", "100ms"]),
            check=True, timeout=30, capture_output=True,
        )  # fmt: skip
        yield names
    finally:
        for namespace in reversed(made):
            with contextlib.suppress(NamespaceError, subprocess.TimeoutExpired):
                ip("netns", "delete", namespace)


def set_source_rate(net: TwoNats, rate: str) -> None:
    """Change the cap on :func:`two_nats`' source uplink to ``rate`` (``tbf``)."""
    subprocess.run(
        net.run(net.source, ["tc", "qdisc", "change", "dev", "eth0", "root", "tbf",
                             "rate", rate, "burst", "16kb", "latency", "100ms"]),
        check=True, timeout=30, capture_output=True,
    )  # fmt: skip


def free_udp_port(host: str) -> int:
    """A UDP port free on ``host`` now (taken by the next server started there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


TURN_USER, TURN_PASSWORD, TURN_REALM = "ppsp", "relay-secret", "ppsp.test"
"""The long-term credentials of :func:`stun_server`'s TURN mode."""


@contextlib.contextmanager
def stun_server(
    host: str,
    port: int,
    workdir: Path,
    prefix: Sequence[str] = (),
    *,
    turn: bool = False,
    loopback_peers: bool = False,
    probe_from: Sequence[str] | None = None,
    verbose: bool = False,
) -> Iterator[subprocess.Popen[bytes]]:
    """coturn on ``host:port`` (``prefix`` runs it elsewhere, e.g. in a namespace), answering
    STUN only, or with ``turn`` also relaying (long-term credentials :data:`TURN_USER` /
    :data:`TURN_PASSWORD`, relays on ``host``; ``loopback_peers`` lets peers on 127.x use
    them, which coturn refuses by default); stopped when the block ends.  The block starts once
    the server answers a Binding request sent from ``probe_from`` (a command prefix, e.g. a
    namespace's; by default ``prefix``): on a loaded machine coturn may take longer to start
    than a client's retransmissions last.  With ``verbose`` its log (``turn-PORT.log`` in
    ``workdir``) has a line for each request of each allocation (``refreshed, ...,
    lifetime=0`` for a released one)."""
    mode = (
        ["-a", "-u", f"{TURN_USER}:{TURN_PASSWORD}", "-r", TURN_REALM, "-E", host,
         "--relay-ip", host, "--min-port", "49152", "--max-port", "49999"]
        if turn
        else ["--stun-only"]
    )  # fmt: skip
    if loopback_peers:
        mode.append("--allow-loopback-peers")
    if verbose:
        mode.append("-v")
    command = [
        *prefix, TURNSERVER, "-n", *mode, "--no-cli", "--no-tls", "--no-dtls",
        "-L", host, "-p", str(port), "--pidfile", str(workdir / f"turn-{port}.pid"),
        "--log-file", str(workdir / f"turn-{port}.log"), "--simple-log",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_server(host, port, probe_from if probe_from is not None else prefix)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


PROBE = (
    "import asyncio, sys\n"
    "from ppsp.peer.net.stun import reflexive_address\n"
    "asyncio.run(reflexive_address((sys.argv[1], int(sys.argv[2]))))\n"
)
"""One Binding request and its answer (exit 0), run where the test's clients run."""


def wait_for_server(
    host: str, port: int, prefix: Sequence[str] = (), timeout: float = 30.0
) -> None:
    """Return once a STUN server on ``host:port`` answers a Binding request sent from
    ``prefix`` (each try lasts at most 3.75 s: the client's retransmissions); TimeoutError
    after ``timeout`` seconds."""
    limit = time.monotonic() + timeout
    while True:
        probe = subprocess.run(
            [*prefix, sys.executable, "-c", PROBE, host, str(port)],
            capture_output=True, text=True, timeout=60, env=ENV,
        )  # fmt: skip
        if probe.returncode == 0:
            return
        if time.monotonic() > limit:
            raise TimeoutError(f"no STUN answer from {host}:{port}: {probe.stderr[-300:]}")


PUNCHING = re.compile(r"is behind NAT: punching towards the swarm's peers")
"""What a peer whose PPSPP socket is behind NAT prints before it punches."""
REFLEXIVE = re.compile(r"PPSPP socket udp (\S+):(\d+) has reflexive address (\S+):(\d+)")
"""What a peer prints of the reflexive address STUN told its PPSPP socket."""


async def spawn_in(swarm: Swarm, prefix: Sequence[str], name: str, *args: str) -> Peer:
    """``python -m ppsp ARGS`` run with ``prefix`` (a namespace), killed with the swarm."""
    process = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, "-m", "ppsp", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=swarm.env, cwd=swarm.workdir,
    )  # fmt: skip
    peer = Peer(name, process)
    swarm.peers.append(peer)
    return peer


async def public_tracker(swarm: Swarm, prefix: Sequence[str]) -> str:
    """Start ``ppsp tracker`` on the public host (:data:`PUBLIC`, run with ``prefix``); its URL."""
    tracker = await spawn_in(swarm, prefix, "tracker", "tracker", "--host", PUBLIC, "--port", "0")
    return (await tracker.wait_line(LISTENING, stream="stdout")).group(1)


async def public_seed(
    swarm: Swarm, prefix: Sequence[str], source: Path, url: str, *options: str
) -> tuple[Peer, str]:
    """Start ``ppsp seed SOURCE`` on the source host (:data:`SOURCE`, run with ``prefix``)
    with a PPSPP socket and ``options``; the process and the swarm ID, once it offers PPSPP."""
    seeder = await spawn_in(
        swarm, prefix, "source", "seed", str(source), "--tracker", url,
        "--host", SOURCE, "--ppspp-port", "0", *options,
    )  # fmt: skip
    swarm_id = await seeder.first_stdout_line()
    await seeder.wait_line(OFFERING)
    return seeder, swarm_id
