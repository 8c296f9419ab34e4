"""What the addresses of a request are worth to the tracker: seen, advertised, one host or two.

The tracker service (:mod:`ppsp.tracker.core`) turns the address a request was seen at into
its REFLEXIVE :class:`~ppsp.wire.tracker.PeerAddress` and compares hosts; both it and its
one-round-trip path (:mod:`ppsp.tracker.guarded`) keep only the advertised addresses other
peers can use and the peer may claim (:func:`usable_addresses`; docs/PROTOCOL.md, "Addresses",
"Whose addresses a peer list carries").  Kept apart from either so that both read one
rule; the public names are importable from :mod:`ppsp.tracker.core` as well.  The cached
functions return one shared object per argument: the storage sees an unchanged address as the
same object, and a record keeps one copy of each string.
"""

from __future__ import annotations

import functools
import ipaddress
import operator
from dataclasses import replace
from enum import Enum, IntEnum

from ppsp.tracker.limits import RELAY_PORTS, host_key
from ppsp.wire.tracker import AddressFamily, AddressType, PeerAddress

__all__ = [
    "RELAY_PORTS",
    "AddressUse",
    "Scope",
    "address_scope",
    "address_use",
    "host_of",
    "reflexive_address",
    "same_host",
    "shared_reflexive",
    "usable_addresses",
]


def reflexive_address(observed: tuple[str, int]) -> PeerAddress:
    """The REFLEXIVE address of a peer seen at ``observed`` (ip, port)."""
    ip, port = observed
    # Every IPv6 address, and no IPv4 address, has a colon in its text.
    return PeerAddress(
        ip=ip,
        port=port,
        family=AddressFamily.IPV6 if ":" in ip else AddressFamily.IPV4,
        type=AddressType.REFLEXIVE,
    )


class AddressUse(Enum):
    """What an advertised IP address is worth to the other peers of a list."""

    USABLE = "usable"
    """An address others may connect to (loopback and private ranges included)."""
    UNSPECIFIED = "unspecified"
    """``0.0.0.0`` or ``::``: the peer listens on every interface but did not say which."""
    UNUSABLE = "unusable"
    """Never a destination: multicast, the limited broadcast, the rest of ``0.0.0.0/8``."""


@functools.lru_cache(maxsize=4096)
def address_use(ip: str) -> AddressUse:
    """How an advertised IP address can be used by others (see :class:`AddressUse`).

    An IPv4-mapped IPv6 address (``::ffff:0.0.0.0``) counts as the IPv4 address it maps; text
    that is no IP address at all is unusable.
    """
    try:
        parsed: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(ip)
    except ValueError:
        return AddressUse.UNUSABLE
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    if parsed.is_unspecified:
        return AddressUse.UNSPECIFIED
    if parsed.is_multicast:
        return AddressUse.UNUSABLE
    if isinstance(parsed, ipaddress.IPv4Address) and (
        parsed == _LIMITED_BROADCAST or parsed in _THIS_NETWORK
    ):
        return AddressUse.UNUSABLE
    return AddressUse.USABLE


_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
"""RFC 1122 3.2.1.3: a source address only, never a destination."""


class Scope(IntEnum):
    """How far an IP address reaches, narrowest last (an order: a wider scope is smaller)."""

    GLOBAL = 0
    """A public address: anyone on the internet may reach it."""
    LOCAL = 1
    """Private, link-local, shared (``100.64.0.0/10``) or otherwise not global: a LAN's."""
    LOOPBACK = 2
    """``127.0.0.0/8``, ``::1``: the machine's own."""


@functools.lru_cache(maxsize=4096)
def address_scope(ip: str) -> Scope:
    """How far ``ip`` reaches (:class:`Scope`; an IPv4-mapped IPv6 address as the IPv4 address
    it maps; text that is no IP address is LOCAL)."""
    try:
        parsed: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(ip)
    except ValueError:
        return Scope.LOCAL
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    if parsed.is_loopback:
        return Scope.LOOPBACK
    return Scope.GLOBAL if parsed.is_global else Scope.LOCAL


_PROXY = AddressType.PROXY


def _relay_listed(address: PeerAddress, host_scope: Scope) -> bool:
    """Whether a PROXY address of another host may be a peer's one relay listed to every
    requester: on a port of :data:`RELAY_PORTS`, no narrower than the host the peer was seen
    at (a peer seen on the internet names no LAN or loopback address as its relay)."""
    return (
        address.type is _PROXY
        and address.port in RELAY_PORTS
        and address_scope(address.ip) <= host_scope
    )


def usable_addresses(
    advertised: tuple[PeerAddress, ...], observed: PeerAddress
) -> tuple[PeerAddress, ...]:
    """The advertised addresses that other peers can use and the peer may claim, in order.

    An unspecified IP (the peer serves on ``0.0.0.0`` or ``::``) is replaced by the observed
    IP, keeping the advertised port and the other attributes; an address with port 0 or an IP
    that is never a destination (:class:`AddressUse`) is dropped, as is an address that turns
    into one already kept.  Of the rest, an address on the observed host is kept, and of the
    addresses of other hosts only the first PROXY one on a relay's port (:data:`RELAY_PORTS`)
    no narrower than the observed host (:class:`Scope`): the peer's TURN relay.  Every other
    address of another host is dropped, LAN and loopback ones too (docs/PROTOCOL.md, "Whose
    addresses a peer list carries"): what is kept is listed to every requester.  When every
    address is kept as it came the same tuple is returned.
    """
    observed_ip = observed.ip
    observed_usable = address_use(observed_ip) is AddressUse.USABLE
    if observed_usable:
        for address in advertised:
            if address.port == 0 or address.ip != observed_ip:
                break
        else:
            return advertised  # the common case: the peer's own IP, nothing to change or copy
    kept: list[PeerAddress] = []
    seen: set[tuple[str, int]] = set()
    host_scope = address_scope(observed_ip)
    relay = False
    for address in advertised:
        if address.port == 0:
            continue
        use = address_use(address.ip)
        if use is AddressUse.UNSPECIFIED and observed_usable:
            address = replace(address, ip=observed_ip, family=observed.family)
        elif use is not AddressUse.USABLE:
            continue
        if not same_host(address.ip, observed_ip):
            if relay or not _relay_listed(address, host_scope):
                continue  # another host's address: never listed
            relay = True
        if (address.ip, address.port) not in seen:
            seen.add((address.ip, address.port))
            kept.append(address)
    if len(kept) == len(advertised) and all(map(operator.is_, kept, advertised)):
        return advertised
    return tuple(kept)


@functools.lru_cache(maxsize=1024)
def shared_reflexive(observed: tuple[str, int]) -> PeerAddress:
    """:func:`reflexive_address`, one shared object per observed address (most recent ones).

    Sharing lets the storage see an unchanged address as the same object, and lets the codecs'
    caches find it by identity.
    """
    return reflexive_address(observed)


@functools.lru_cache(maxsize=4096)
def host_of(ip: str) -> str:
    """:func:`~ppsp.tracker.limits.host_key`, or the text itself when it is no IP address.

    When the key is the text itself, the same string object is returned, so that a record
    shares it with its REFLEXIVE address.
    """
    try:
        key = host_key(ip)
    except ValueError:
        return ip
    return ip if key == ip else key


def same_host(ip: str, other: str) -> bool:
    """Whether two observed IP addresses are one host (ports never matter)."""
    return ip == other or host_of(ip) == host_of(other)
