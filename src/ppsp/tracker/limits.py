"""What the tracker lets one host, one peer and everyone together hold and do: every bound once.

A tracker on the internet answers anyone.  Each bound here keeps one host address (or one
network prefix) from taking what others need: places in peer lists, registrations, memberships,
requests per second, connections.  The defaults suit a public tracker; ``--limits off`` turns
the per-host bounds off (labs and benchmarks run many peers from one address), the totals stay.

Sans-I/O: plain data.  The tracker core enforces the state bounds (through its storage, so that
they hold over several processes on one Redis), the HTTP layer the request, connection and
timing bounds.  docs/SECURITY.md lists each with its default and the attack it answers.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from ppsp.core.hosts import host_key  # the one rule, shared with the peers' bans

__all__ = ["DEFAULT_LIMITS", "RELAY_PORTS", "Limits", "host_key", "prefix_key"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Every bound on what hosts and peers may hold and do at the tracker."""

    per_host: bool = True
    """Whether the per-host bounds apply (False: ``--limits off``; totals and timeouts stay)."""

    # -- state, enforced by the core through its storage ----------------------------------------
    peers_per_host: int = 256
    """Registered peers whose registration came from one host address."""

    swarms_per_peer: int = 256
    """Swarms one peer may be a member of at a time."""

    peers_total: int = 2_000_000
    """Registered peers in all."""

    swarms_total: int = 1_000_000
    """Swarms in all (a swarm exists while it has a member)."""

    memberships_total: int = 8_000_000
    """Memberships (peer in swarm) in all."""

    # -- peer lists ----------------------------------------------------------------------------
    list_share_per_prefix: int = 2
    """Entries from one network prefix (IPv4 /24, IPv6 /64, by the peers' observed addresses)
    in a peer list while peers of other prefixes are left to list: what a peer says of itself
    (SEED, priority, content map) orders peers only within this bound.  A per-host bound: off
    with ``per_host`` (docs/PROTOCOL.md, "Tracker behaviour")."""

    # -- corrupt-peer reports (the STAT_REPORT extension), kept by the storage ----------------
    suspect_reporters: int = 2
    """Distinct reporter hosts after which a reported peer is a *suspect* in that swarm: listed
    after every other peer in the swarm's peer lists, never removed (docs/SECURITY.md).  Not a
    per-host bound: ``per_host`` does not turn it off."""

    reporters_kept: int = 8
    """Reporter hosts remembered per reported membership; reports from further hosts change
    nothing (the peer is a suspect long before)."""

    # -- content maps (STAT_REPORT), kept by the storage -------------------------------------
    map_segments_kept: int = 16
    """Segments kept of one content map: the first ones, in the order the map gives them (the
    storage drops the rest).  A content has at most 16 representations and a
    peer maps each with one segment; a chunk-scoped peer list reads every segment kept of
    every member it ranks.  Not a per-host bound: ``per_host`` does not turn it off."""

    map_bytes_per_host: int = 16 << 20
    """Bytes of content maps kept for the peers one host registered, each map weighing
    :func:`~ppsp.tracker.storage.base.content_map_bytes` (its bitmaps, 28 bytes a segment,
    and its IDs): about 127 maps of the largest content (2^20 chunks), 30,000 of a content of
    4,096 chunks.  A map that would take its host past it is not kept (docs/PROTOCOL.md,
    "Content maps kept").  A per-host bound: off with ``per_host``."""

    map_bytes_total: int = 1 << 30
    """Bytes of content maps kept in all (a map past it is not kept, as above): about 130
    bytes for each of the 8 million memberships, or the bound of 64 hosts."""

    # -- requests and connections, enforced by the HTTP layer ----------------------------------
    requests_per_second_per_host: float = 100.0
    """Sustained request rate of one host address (token bucket refill)."""

    request_burst_per_host: int = 200
    """Requests one host address may send at once (token bucket size)."""

    connections_per_host: int = 256
    """Open connections from one host address: one kept-alive connection for each of the
    :attr:`peers_per_host` peers one host may register (a hall of viewers behind one NAT, each
    keeping its connection between reports; with 64, the 65th of them was cut)."""

    connections_total: int = 10_000
    """Open connections in all."""

    header_timeout: float = 10.0
    """Seconds a client has to send a request's head once it started one (or connected)."""

    body_timeout: float = 10.0
    """Seconds a client has to send a request's body once its head arrived."""

    idle_timeout: float = 75.0
    """Seconds a kept-alive connection may stay idle between requests."""

    def off(self) -> Limits:
        """These limits with every per-host bound turned off (``--limits off``)."""
        return replace(self, per_host=False)


DEFAULT_LIMITS = Limits()
"""The bounds a tracker applies unless told otherwise."""

RELAY_PORTS = range(49152, 65536)
"""The ports of the one relay (a PROXY address of another host) a peer list carries per entry:
those a TURN server allocates relayed addresses from (RFC 8656 section 7.2, RFC 6335's dynamic
ports), none of a well-known service (docs/PROTOCOL.md, "Whose addresses a peer list
carries")."""


def prefix_key(ip: str) -> str:
    """The network a host is counted in for peer lists: its IPv4 /24 or IPv6 /64."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is None:
            return ipaddress.IPv6Network((address, 64), strict=False).with_prefixlen
        address = address.ipv4_mapped
    return ipaddress.IPv4Network((address, 24), strict=False).with_prefixlen
