"""Which address a peer advertises to the tracker and to other peers (pure functions).

A peer serves on ``--host``/``--port``.  Others must be told an address they can reach: never a
wildcard (``0.0.0.0``, ``::``), which means "every local address" to the one that binds it and
nothing to anyone else.  ``--advertise HOST[:PORT]`` names the address outright (a public
address, a port that a NAT forwards); without it a peer bound to a wildcard advertises the local
address its packets to the tracker leave from (the I/O layer asks the kernel's routing), and a
peer bound to one address advertises that address.
"""

from __future__ import annotations

import ipaddress

from ppsp.wire.common import AddressFamily, AddressType, PeerAddress

__all__ = [
    "PPSPP_PEER_PROTOCOL",
    "format_host",
    "is_wildcard",
    "parse_advertise",
    "ppspp_addresses",
]

PPSPP_PEER_PROTOCOL = "PPSPP"
"""The ``peerProtocol`` of the PeerAddresses of a peer's PPSPP (RFC 7574) UDP socket (the
transport's TRANSPORT_NEGOTIATION type)."""


def is_wildcard(host: str) -> bool:
    """Whether ``host`` is an unspecified address (binding it means every local address)."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return host == ""


def _checked_ip(text: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address (the tracker protocol carries IPs)"
        ) from None
    if address.is_unspecified:
        raise ValueError(f"{text} is a wildcard address, which no other peer can reach")
    if address.is_multicast or (address.version == 4 and text == "255.255.255.255"):
        raise ValueError(f"{text} is not the address of one host")
    return address.compressed


def parse_advertise(text: str) -> tuple[str, int | None]:
    """``HOST[:PORT]`` or ``[V6]:PORT`` (a bare IPv6 address has no port) as (ip, port or None).

    ValueError with a one-line reason for anything else: a name (the tracker protocol carries
    IP addresses), a wildcard, a multicast or broadcast address, a port outside 1-65535.
    """
    text = text.strip()
    port_text: str | None = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: write an IPv6 address with a port as [ADDRESS]:PORT")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host = text
    ip = _checked_ip(host)
    if port_text is None:
        return ip, None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{port_text!r} is not a port (1-65535)")
    return ip, int(port_text)


def format_host(ip: str) -> str:
    """``ip`` as the host part of a URL (IPv6 in brackets)."""
    return f"[{ip}]" if ":" in ip else ip


def ppspp_addresses(
    ip: str, port: int, reflexive: tuple[str, int] | None = None
) -> list[PeerAddress]:
    """The PeerAddresses of a PPSPP UDP socket on ``ip``:``port``: HOST, and REFLEXIVE when
    STUN told a different one, both with ``peer_protocol`` :data:`PPSPP_PEER_PROTOCOL`."""
    found = [(ip, port, AddressType.HOST)]
    if reflexive is not None and reflexive != (ip, port):
        found.append((reflexive[0], reflexive[1], AddressType.REFLEXIVE))
    return [
        PeerAddress(
            ip=host, port=number, type=kind, peer_protocol=PPSPP_PEER_PROTOCOL,
            family=AddressFamily.IPV6 if ":" in host else AddressFamily.IPV4,
        )
        for host, number, kind in found
    ]  # fmt: skip
