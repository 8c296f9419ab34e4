"""What counts as one host: the rule the tracker's per-host bounds and a peer's bans share,
and the canonical form a peer compares a sender's address in.

Sans-I/O: plain functions of address text.
"""

from __future__ import annotations

import ipaddress

__all__ = ["canonical_host", "host_key"]


def host_key(ip: str) -> str:
    """The key of one host: an IPv4 address (an IPv4-mapped IPv6 address as IPv4) in canonical
    form, or the /64 of an IPv6 address (one host commonly holds a whole /64 and may use any
    address of it: per-address bounds would bound nothing there)."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped.compressed
        return ipaddress.IPv6Network((address, 64), strict=False).with_prefixlen
    return address.compressed


def canonical_host(text: str | None) -> str | None:
    """``text`` as a canonical IP address (an IPv4-mapped IPv6 address as IPv4); None if not one.

    A server bound to ``::`` sees IPv4 clients as ``::ffff:a.b.c.d``; the tracker lists them
    as ``a.b.c.d``.  A scope (``%eth0``) is dropped.
    """
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return address.compressed
