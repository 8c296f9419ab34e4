"""The NAT lab's network (``ppsp lab vod|live --nat FRACTION``): a namespace per process.

Every process of the run gets a Linux network namespace of its own.  A *switch* namespace
holds a bridge, the shared "public" segment (``10.0.0.0/8``, existing only inside these
namespaces); on it, each with one veth interface and an address of its own /24 (as the
loopback lab's :mod:`ppsp.lab.addresses`, so that the tracker's per-/24 limits see distinct
hosts):

- the tracker ``10.1.0.1``, the source ``10.1.1.1``, the STUN and TURN server (coturn)
  ``10.1.2.1`` (its relays on that address too);
- peer *i* (from 0) ``10.(2 + i // 256).(i % 256).1`` when it is public;
- when peer *i* is behind NAT, that address is its router's (``wan0``): the router namespace
  also has ``lan0``, ``172.(16 + i // 256).(i % 256).1/24``, and masquerades what leaves
  ``wan0`` (nftables, as a home router); the peer is ``172.(16 + i // 256).(i % 256).2`` with
  its default route through the router.  Every NAT has a private network of its own, so a peer
  trying another NATed peer's private address gets "no route" at its router at once.
  A router of a peer in ``symmetric`` (``--symmetric``) maps each destination to a port of
  its own (``masquerade fully-random``: endpoint-dependent mapping), which hole punching
  cannot cross: only a TURN relay reaches the peer behind it.

Link rates: a ``tbf`` qdisc on the uplink (``eth0`` egress) of each process the lab caps (the
source, the peers), at the cap plus :data:`HEADER_ALLOWANCE` for the headers.

:func:`plan_network` is pure (the plan, unit-tested); :class:`NatNetwork` makes it with ``ip``,
``nft``, ``tc`` and ``sysctl`` and deletes every namespace it made in :meth:`NatNetwork.close`.
Needs root.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from ppsp.lab.addresses import AddressPlan

MAX_NAT_PEERS = 1024
"""Peers a NAT lab has room for (each is one or two namespaces)."""
PUBLIC_PREFIX = 8
"""The public segment is ``10.0.0.0/8``: every host on it in a /24 of its own."""
STUN_PORT = 3478
HEADER_ALLOWANCE = 1.05
"""A link's ``tbf`` rate over the process's payload cap: IP/TCP/UDP headers and ACKs."""
TOOLS = {"ip": "iproute2", "nft": "nftables", "tc": "iproute2", "sysctl": "procps",
         "turnserver": "coturn"}  # fmt: skip
"""The commands a NAT lab runs, and the Debian packages that have them."""
COMMAND_TIMEOUT = 30.0
"""Bound on each ``ip``/``nft``/``tc`` command."""


class NetworkError(Exception):
    """A command building or removing the lab's network failed (its command line and error)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Node:
    """One process's namespace: where the process runs and the address it uses there."""

    name: str
    namespace: str
    address: str
    """The address the process binds (a peer behind NAT: its private address)."""
    public: str
    """Its address on the public segment (a peer behind NAT: its router's)."""
    router: str | None = None
    """The router's namespace, for a peer behind NAT."""
    gateway: str | None = None
    """The router's private address (the peer's default route), for a peer behind NAT."""
    per_destination: bool = False
    """Its router maps each destination to a port of its own (a "symmetric" NAT)."""

    @property
    def natted(self) -> bool:
        """Whether the process sits behind a NAT of its own."""
        return self.router is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPlan:
    """The namespaces and addresses of a NAT lab (see the module docstring)."""

    tag: str
    switch: str
    tracker: Node
    source: Node
    stun: Node
    peers: tuple[Node, ...]

    @property
    def natted(self) -> frozenset[int]:
        """Indexes of the peers behind NAT."""
        return frozenset(i for i, peer in enumerate(self.peers) if peer.natted)

    @property
    def symmetric(self) -> frozenset[int]:
        """Indexes of the peers behind a NAT that maps each destination apart."""
        return frozenset(i for i, peer in enumerate(self.peers) if peer.per_destination)

    def nodes(self) -> list[Node]:
        """Every process's node: tracker, source, STUN server, peers."""
        return [self.tracker, self.source, self.stun, *self.peers]

    def namespaces(self) -> list[str]:
        """Every namespace of the plan, the switch first (the order they are made in)."""
        names = [self.switch]
        for node in self.nodes():
            if node.router is not None:
                names.append(node.router)
            names.append(node.namespace)
        return names

    def addresses(self) -> AddressPlan:
        """The addresses the processes bind, in the loopback lab's form."""
        return AddressPlan(
            tracker=self.tracker.address,
            source=self.source.address,
            peers=tuple(peer.address for peer in self.peers),
        )

    @property
    def stun_server(self) -> str:
        """``HOST:PORT`` of the STUN server, as ``--stun`` takes it."""
        return f"{self.stun.address}:{STUN_PORT}"


def choose_natted(peers: int, fraction: float, seed: int) -> frozenset[int]:
    """The peers behind NAT: ``round(fraction * peers)`` of them, chosen with ``seed``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("--nat is a fraction between 0 and 1")
    count = round(fraction * peers)
    return frozenset(random.Random(f"ppsp-lab-nat-{seed}").sample(range(peers), count))


def choose_symmetric(natted: frozenset[int], fraction: float, seed: int) -> frozenset[int]:
    """The peers of ``natted`` behind NATs that map each destination apart:
    ``round(fraction * len(natted))`` of them, chosen with ``seed``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("--symmetric is a fraction between 0 and 1")
    count = round(fraction * len(natted))
    return frozenset(random.Random(f"ppsp-lab-symmetric-{seed}").sample(sorted(natted), count))


def _public(index: int) -> str:
    return f"10.{2 + index // 256}.{index % 256}.1"


def plan_network(
    peers: int,
    natted: frozenset[int],
    tag: str | None = None,
    *,
    symmetric: frozenset[int] = frozenset(),
) -> NetworkPlan:
    """The namespaces and addresses for ``peers`` peers, those in ``natted`` behind NAT, those
    in ``symmetric`` (some of ``natted``) behind NATs that map each destination apart.

    ``tag`` (random by default) is in every namespace name, so that two labs never collide.
    Raises ValueError beyond :data:`MAX_NAT_PEERS` or for an index out of range.
    """
    if not 0 <= peers <= MAX_NAT_PEERS:
        raise ValueError(f"a NAT lab has room for 0 to {MAX_NAT_PEERS} peers")
    if any(not 0 <= i < peers for i in natted):
        raise ValueError("a peer behind NAT that is not in the lab")
    if not symmetric <= natted:
        raise ValueError("a peer behind a symmetric NAT that is not behind NAT")
    tag = tag if tag is not None else secrets.token_hex(3)
    prefix = f"ppsp-lab-{tag}"

    def server(name: str, address: str) -> Node:
        return Node(name=name, namespace=f"{prefix}-{name}", address=address, public=address)

    nodes = []
    for i in range(peers):
        name = f"peer-{i + 1:02d}"
        if i in natted:
            private = f"172.{16 + i // 256}.{i % 256}"
            nodes.append(
                Node(
                    name=name,
                    namespace=f"{prefix}-p{i + 1}",
                    address=f"{private}.2",
                    public=_public(i),
                    router=f"{prefix}-r{i + 1}",
                    gateway=f"{private}.1",
                    per_destination=i in symmetric,
                )
            )
        else:
            nodes.append(
                Node(
                    name=name, namespace=f"{prefix}-p{i + 1}", address=_public(i), public=_public(i)
                )
            )
    return NetworkPlan(
        tag=tag,
        switch=f"{prefix}-sw",
        tracker=server("tracker", "10.1.0.1"),
        source=server("source", "10.1.1.1"),
        stun=server("stun", "10.1.2.1"),
        peers=tuple(nodes),
    )


def tbf_args(rate: float) -> list[str]:
    """``tc qdisc`` arguments capping an uplink at ``rate`` bytes/s of payload.

    The link runs :data:`HEADER_ALLOWANCE` faster (headers, ACKs); the bucket holds 1/20 s of
    the rate (at least 32 KiB: an 8 KiB PPSPP datagram is six 1500-byte fragments), and a
    packet waits at most 200 ms in the queue before it is dropped (LEDBAT's 100 ms target
    fits under it).
    """
    bits = int(rate * 8 * HEADER_ALLOWANCE)
    burst = max(32 * 1024, int(rate / 20))
    return ["root", "tbf", "rate", f"{bits}bit", "burst", str(burst), "latency", "200ms"]


def router_rules(*, per_destination: bool = False) -> str:
    """:data:`ROUTER_RULES`, or with ``per_destination`` the same router mapping each
    destination to a port of its own (``masquerade fully-random``)."""
    if not per_destination:
        return ROUTER_RULES
    return ROUTER_RULES.replace('"wan0" masquerade;', '"wan0" masquerade fully-random;')


ROUTER_RULES = (
    "table ip ppsplab {\n"
    "  chain post {\n"
    '    type nat hook postrouting priority srcnat; oifname "wan0" masquerade;\n'
    "  }\n"
    "  chain incoming {\n"
    "    type filter hook input priority filter; policy accept;\n"
    '    iifname "wan0" ct state established,related accept;\n'
    '    iifname "wan0" drop;\n'
    "  }\n"
    "  chain passing {\n"
    "    type filter hook forward priority filter; policy accept;\n"
    '    iifname "wan0" ct state established,related accept;\n'
    '    iifname "wan0" drop;\n'
    "  }\n"
    "}\n"
)
"""The router's nftables ruleset, a home router's: masquerade what leaves for the public
segment, and drop what comes in from it unasked for (only answers to what went out pass).
Without the drop, a datagram that reaches the router before the peer behind it has punched
towards its sender leaves a connection-tracking entry, and the later outgoing mapping of that
very address pair takes another port: the hole punched would not be where the tracker says."""


def missing_requirements() -> str | None:
    """None when this process can build a NAT lab, else one line naming what is missing."""
    if os.geteuid() != 0:
        return "ppsp lab --nat needs root (network namespaces, nftables, tc)"
    absent = [tool for tool in TOOLS if _which(tool) is None]
    if absent:
        packages = " ".join(dict.fromkeys(TOOLS[tool] for tool in absent))
        return f"ppsp lab --nat needs {', '.join(absent)} (apt-get install {packages})"
    probe = f"ppsp-lab-probe-{secrets.token_hex(3)}"
    try:
        _run(["ip", "netns", "add", probe])
    except NetworkError as exc:
        return f"ppsp lab --nat cannot make network namespaces: {exc}"
    with contextlib.suppress(NetworkError):
        _run(["ip", "netns", "delete", probe])
    return None


def _which(tool: str) -> str | None:
    found = shutil.which(tool)
    if found is not None:
        return found
    for directory in ("/usr/sbin", "/sbin", "/usr/bin"):
        path = os.path.join(directory, tool)
        if os.access(path, os.X_OK):
            return path
    return None


def tool(name: str) -> str:
    """The path of one of :data:`TOOLS` (its bare name when not found)."""
    return _which(name) or name


def _run(command: Sequence[str], stdin: str | None = None) -> None:
    argv = [tool(command[0]), *command[1:]]
    try:
        result = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkError(f"{' '.join(command)}: {exc}") from None
    if result.returncode != 0:
        raise NetworkError(f"{' '.join(command)}: {result.stderr.strip()}")


def in_namespace(namespace: str) -> list[str]:
    """The command prefix that runs a program inside ``namespace`` (keeping its process ID)."""
    return [tool("ip"), "netns", "exec", namespace]


TURN_USER = "ppsp-lab"
"""The TURN user name of a NAT lab's coturn (its password is made for each run)."""
TURN_REALM = "ppsp.lab"


class NatNetwork:
    """The namespaces of a :class:`NetworkPlan`, made by :meth:`build`, removed by :meth:`close`.

    :meth:`close` deletes every namespace made so far, whatever failed, and may be called more
    than once.  :attr:`turn_password` is the run's TURN password (random, for this run only).
    """

    def __init__(self, plan: NetworkPlan) -> None:
        self.plan = plan
        self.made: list[str] = []
        self.turn_password = secrets.token_urlsafe(18)

    def build(self, rates: dict[str, float | None]) -> None:
        """Make the switch, every node and router, and a ``tbf`` on each node named in
        ``rates`` with a rate (its uplink, bytes/s); NetworkError when a command fails."""
        plan = self.plan
        self._namespace(plan.switch)
        _run(["ip", "-n", plan.switch, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", plan.switch, "link", "set", "br0", "up"])
        for number, node in enumerate(plan.nodes(), start=1):
            # The namespace plugged into the bridge: the node itself, or its router.
            outside = node.router if node.router is not None else node.namespace
            device = "wan0" if node.router is not None else "eth0"
            self._namespace(outside)
            port = f"s{number}"
            _run(
                ["ip", "link", "add", device, "netns", outside, "type", "veth",
                 "peer", "name", port, "netns", plan.switch]
            )  # fmt: skip
            _run(["ip", "-n", plan.switch, "link", "set", port, "master", "br0", "up"])
            self._address(outside, device, f"{node.public}/{PUBLIC_PREFIX}")
            if node.router is not None:
                assert node.gateway is not None
                self._namespace(node.namespace)
                _run(
                    ["ip", "link", "add", "eth0", "netns", node.namespace, "type", "veth",
                     "peer", "name", "lan0", "netns", node.router]
                )  # fmt: skip
                self._address(node.router, "lan0", f"{node.gateway}/24")
                self._address(node.namespace, "eth0", f"{node.address}/24")
                _run(["ip", "-n", node.namespace, "route", "add", "default", "via", node.gateway])
                _run([*in_namespace(node.router), "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
                rules = router_rules(per_destination=node.per_destination)
                _run([*in_namespace(node.router), tool("nft"), "-f", "-"], stdin=rules)
            rate = rates.get(node.name)
            if rate is not None:
                _run(["tc", "-n", node.namespace, "qdisc", "add", "dev", "eth0", *tbf_args(rate)])

    def _namespace(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self.made.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])

    @staticmethod
    def _address(namespace: str, device: str, address: str) -> None:
        _run(["ip", "-n", namespace, "addr", "add", address, "dev", device])
        _run(["ip", "-n", namespace, "link", "set", device, "up"])

    def close(self) -> list[str]:
        """Delete every namespace made (veths and qdiscs go with them); returns the names of
        those that could not be deleted."""
        left = []
        while self.made:
            name = self.made.pop()
            try:
                _run(["ip", "netns", "delete", name])
            except NetworkError:
                left.append(name)
        return left

    def prefix(self, name: str) -> list[str]:
        """The command prefix running a program in the namespace of node ``name``."""
        for node in self.plan.nodes():
            if node.name == name:
                return in_namespace(node.namespace)
        raise KeyError(name)


def turnserver_args(plan: NetworkPlan, workdir: str, turn_password: str | None = None) -> list[str]:
    """coturn's ``turnserver`` on the STUN node's address: STUN only, or with
    ``turn_password`` also a TURN server (long-term credentials :data:`TURN_USER` and that
    password, relays on the same address).  The password is on coturn's command line, seen
    by this host's process list only: it is made for the run and dies with it."""
    host = plan.stun.address
    mode = (
        ["--stun-only"]
        if turn_password is None
        else ["-a", "-u", f"{TURN_USER}:{turn_password}", "-r", TURN_REALM,
              "--relay-ip", host, "--min-port", "49152", "--max-port", "65535"]
    )  # fmt: skip
    return [
        tool("turnserver"), "-n", *mode, "--no-cli", "--no-tls", "--no-dtls",
        "-L", host, "-p", str(STUN_PORT), "--pidfile", f"{workdir}/turnserver.pid",
        "--log-file", f"{workdir}/turnserver.log", "--simple-log",
    ]  # fmt: skip


STUN_PROBE = (
    "import asyncio, sys\n"
    "from ppsp.peer.net.stun import reflexive_address\n"
    "print(asyncio.run(reflexive_address((sys.argv[1], int(sys.argv[2])))))\n"
)
"""One Binding request and its answer (exit 0): run from a namespace to see STUN answer."""
