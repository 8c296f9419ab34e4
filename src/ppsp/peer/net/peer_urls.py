"""Where a peer's connections go and leave from: listed peers' endpoint URLs, and the local
address towards the tracker (I/O layer: :func:`route_source_ip` asks the kernel's routing).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from ppsp.peer.protocol.addressing import PPSPP_PEER_PROTOCOL
from ppsp.wire.tracker import AddressFamily, PeerAddress, PeerInfo

__all__ = ["address_url", "base_url", "route_source_ip", "tracker_source"]


def address_url(address: PeerAddress) -> str:
    """The ``http://`` URL of a peer endpoint at ``address``."""
    host = f"[{address.ip}]" if address.family is AddressFamily.IPV6 else address.ip
    return f"http://{host}:{address.port}"


def base_url(info: PeerInfo) -> str | None:
    """The URL of a listed peer's endpoint: its first advertised HOST address, else any
    (never a PPSPP socket's address: UDP, no HTTP there)."""
    addresses = [a for a in info.addresses if a.peer_protocol != PPSPP_PEER_PROTOCOL]
    if not addresses:
        return None
    for address in addresses:
        if address.type is None or address.type.value != "REFLEXIVE":
            return address_url(address)
    return address_url(addresses[0])


def route_source_ip(tracker_url: str, any_family: bool) -> str:
    """The local address this host's packets to the tracker leave from (no packet is sent).

    A UDP socket "connected" to the tracker's address makes the kernel choose the route and
    the source address; ``getsockname`` tells it.  ``any_family`` for a peer bound to ``::``
    (which also serves IPv4), else IPv4 only.
    """
    url = urlsplit(tracker_url)
    if not url.hostname:
        raise ValueError(f"no host in {tracker_url!r}")
    port = url.port or (443 if url.scheme.lower() == "https" else 80)
    family = socket.AF_UNSPEC if any_family else socket.AF_INET
    infos = socket.getaddrinfo(url.hostname, port, family, socket.SOCK_DGRAM)
    probe_family, _, _, _, address = infos[0]
    with socket.socket(probe_family, socket.SOCK_DGRAM) as probe:
        probe.connect(address)
        return str(probe.getsockname()[0])


def tracker_source(local: str | None, tracker_url: str) -> str | None:
    """Where connections to the tracker leave from: the peer's own address, except a loopback
    address towards a tracker elsewhere (it could not get there)."""
    if local is None or not ipaddress.ip_address(local).is_loopback:
        return local
    host = urlsplit(tracker_url).hostname or ""
    try:
        return local if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        return local if host == "localhost" else None
