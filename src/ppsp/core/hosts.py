"""What counts as one host: the rule the tracker's per-host bounds and a peer's bans share.

Sans-I/O: plain functions of address text.
"""

from __future__ import annotations

import ipaddress

__all__ = ["host_key"]


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
