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
    "relayed_address",
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


def _ppspp_address(ip: str, port: int, kind: AddressType) -> PeerAddress:
    return PeerAddress(
        ip=ip, port=port, type=kind, peer_protocol=PPSPP_PEER_PROTOCOL,
        family=AddressFamily.IPV6 if ":" in ip else AddressFamily.IPV4,
    )  # fmt: skip


def ppspp_addresses(
    ip: str,
    port: int,
    reflexive: tuple[str, int] | None = None,
    relayed: tuple[str, int] | None = None,
) -> list[PeerAddress]:
    """The PeerAddresses of a PPSPP UDP socket on ``ip``:``port``: HOST, REFLEXIVE when
    STUN told a different one, and PROXY (RFC 7846's type for a relayed address) for the
    address a TURN server relays to it (``relayed``), in that order (most direct first: a
    peer tries them together and keeps the first that answers), all with ``peer_protocol``
    :data:`PPSPP_PEER_PROTOCOL`."""
    found = [_ppspp_address(ip, port, AddressType.HOST)]
    if reflexive is not None and reflexive != (ip, port):
        found.append(_ppspp_address(*reflexive, AddressType.REFLEXIVE))
    if relayed is not None:
        found.append(relayed_address(relayed))
    return found


def relayed_address(relayed: tuple[str, int]) -> PeerAddress:
    """The PROXY PeerAddress (``peer_protocol`` :data:`PPSPP_PEER_PROTOCOL`) of the address
    a TURN server relays to a PPSPP socket: the last of :func:`ppspp_addresses`, also for a
    peer that registers it after the HOST and REFLEXIVE ones."""
    return _ppspp_address(relayed[0], relayed[1], AddressType.PROXY)
