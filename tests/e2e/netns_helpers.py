"""Hosts of their own for end-to-end tests: Linux network namespaces on one bridge.

:func:`lan` makes a namespace holding a bridge and, per host, a namespace with one veth
interface plugged into that bridge and one address of ``10.231.0.0/24``.  The interfaces are
created inside the namespaces (never in the caller's), so nothing of the machine's own network
changes, and two runs at once cannot collide: every namespace name carries a random tag.  The
hosts' loopback interfaces stay down, so that a process that quietly relies on 127.0.0.1 fails.
Everything is deleted when the ``with`` block ends, however it ends.

:func:`spawn` starts a command inside a host's namespace (``ip netns exec``, which keeps the
process ID, so signals reach the command itself) as an :class:`~e2e.swarm_helpers.Peer`.

Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2's ``ip``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from e2e.swarm_helpers import ENV, Peer

IP = shutil.which("ip") or "/usr/sbin/ip"
SUBNET = ipaddress.ip_network("10.231.0.0/24")
"""The hosts' network: exists only inside the namespaces :func:`lan` makes."""


class NamespaceError(RuntimeError):
    """An ``ip`` command failed (the message has its command line and its error)."""


@dataclass(frozen=True, slots=True)
class Host:
    """One namespace with one address on the bridge."""

    name: str
    namespace: str
    address: str


def ip(*args: str) -> None:
    """Run ``ip ARGS``; raise NamespaceError when it fails."""
    result = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise NamespaceError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def can_make_namespaces() -> str | None:
    """None when this process may make namespaces here, else why not."""
    if shutil.which("ip") is None and not Path(IP).exists():
        return "iproute2's ip is missing (apt-get install iproute2)"
    probe = f"ppsp-probe-{secrets.token_hex(4)}"
    try:
        ip("netns", "add", probe)
    except NamespaceError as exc:
        return str(exc)
    with contextlib.suppress(NamespaceError):
        ip("netns", "delete", probe)
    return None


@contextlib.contextmanager
def lan(names: Sequence[str]) -> Iterator[dict[str, Host]]:
    """One host per name (10.231.0.1, .2, ... in order) on a bridge; all removed on exit."""
    tag = secrets.token_hex(3)
    switch = f"ppsp-{tag}-lan"
    made: list[str] = []
    hosts: dict[str, Host] = {}
    try:
        ip("netns", "add", switch)
        made.append(switch)
        ip("-n", switch, "link", "add", "br0", "type", "bridge")
        ip("-n", switch, "link", "set", "br0", "up")
        for number, name in enumerate(names, start=1):
            namespace = f"ppsp-{tag}-{name}"
            address = str(SUBNET.network_address + number)
            ip("netns", "add", namespace)
            made.append(namespace)
            # Both ends are born inside their namespaces: no name in the caller's namespace.
            port = f"port{number}"
            ip(
                "link", "add", "eth0", "netns", namespace, "type", "veth",
                "peer", "name", port, "netns", switch,
            )  # fmt: skip
            ip("-n", switch, "link", "set", port, "master", "br0", "up")
            ip("-n", namespace, "addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
            hosts[name] = Host(name, namespace, address)
        yield hosts
    finally:
        for namespace in reversed(made):
            with contextlib.suppress(NamespaceError, subprocess.TimeoutExpired):
                ip("netns", "delete", namespace)


async def spawn(host: Host, label: str, command: Sequence[str], cwd: Path) -> Peer:
    """Start ``command`` inside ``host``'s namespace, both output streams captured."""
    process = await asyncio.create_subprocess_exec(
        IP, "netns", "exec", host.namespace, *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
        cwd=cwd,
    )  # fmt: skip
    return Peer(label, process)
