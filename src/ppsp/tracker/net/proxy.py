"""The client address a trusted reverse proxy forwards (``X-Forwarded-For`` or ``Forwarded``).

Behind a reverse proxy every connection comes from the proxy, so the address the tracker
observes (REFLEXIVE addresses, the host a PeerID is bound to, per-host limits) must be the one
the proxy saw.  Proxies append it to a header; anything to its left was written by the client
itself or by proxies nobody vouches for.  So, from a connection whose peer is in one of the
trusted networks only, the observed address is the **last** hop of the chosen header (the one
the trusted proxy added); from anyone else both headers are ignored.  Chains of several
trusted proxies are not followed: the proxy in front of the tracker must add the client's
address itself.

Which header is read is a setting (a proxy that adds one of them passes the other on as the
client wrote it): ``X-Forwarded-For`` by default (nginx ``$proxy_add_x_forwarded_for``,
HAProxy ``option forwardfor``, most load balancers), or ``Forwarded`` (RFC 7239,
HAProxy ``option forwarded``).

Sans-I/O: strings in, an address or None out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

__all__ = [
    "FORWARDED",
    "PROXY_HEADERS",
    "X_FORWARDED_FOR",
    "Network",
    "TrustedProxies",
    "forwarded_address",
    "parse_networks",
]

X_FORWARDED_FOR = "X-Forwarded-For"
"""The de facto header: ``X-Forwarded-For: client, proxy1, proxy2``."""

FORWARDED = "Forwarded"
"""RFC 7239: ``Forwarded: for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"``."""

PROXY_HEADERS = (X_FORWARDED_FOR, FORWARDED)
"""The headers a trusted proxy may carry the client's address in."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
"""A network of trusted proxies."""


def parse_networks(values: Iterable[str | Network]) -> tuple[Network, ...]:
    """Networks from CIDR text (``10.0.0.0/8``, ``::1``, a single address) or network objects.

    Raises ValueError, naming the value, for anything else (host bits set are refused too:
    ``10.0.0.1/8`` is more likely a typo than a network).
    """
    networks: list[Network] = []
    for value in values:
        if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(value)
            continue
        try:
            networks.append(ipaddress.ip_network(str(value).strip()))
        except ValueError as exc:
            raise ValueError(f"not a network of trusted proxies: {exc}") from None
    return tuple(networks)


def forwarded_address(
    header: str, values: Sequence[str], default_port: int
) -> tuple[str, int] | None:
    """The address (ip, port) in the last hop of ``header``'s ``values`` (in header order).

    ``default_port`` is used when the hop names no port.  None when there is no hop or the last
    one holds no IP address (``unknown``, an obfuscated ``_name``, garbage): the caller then
    keeps the connection's own address.
    """
    if not values:
        return None
    last = values[-1].rsplit(",", 1)[-1].strip()
    if header.lower() == FORWARDED.lower():
        node = _forwarded_for(last)
        if node is None:
            return None
        last = node
    return _node(last, default_port)


def _forwarded_for(element: str) -> str | None:
    """The ``for`` parameter of one Forwarded element (RFC 7239 section 4), unquoted."""
    for pair in element.split(";"):
        name, sep, value = pair.partition("=")
        if sep and name.strip().lower() == "for":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            return value
    return None


def _node(node: str, default_port: int) -> tuple[str, int] | None:
    """An RFC 7239 node (``ip``, ``ip:port``, ``[v6]``, ``[v6]:port``) as (ip, port)."""
    port = default_port
    host = node
    if node.startswith("["):
        host, _, rest = node[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:], default_port)
    elif node.count(":") == 1:  # IPv4 with a port (a bare IPv6 address has several colons)
        host, _, text = node.partition(":")
        port = _port(text, default_port)
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped), port
    return address.compressed, port


def _port(text: str, default: int) -> int:
    """A port number, or ``default`` for anything else (an obfuscated ``_port``, garbage)."""
    if text.isdigit() and len(text) <= 5 and 0 < int(text) <= 65535:
        return int(text)
    return default


class TrustedProxies:
    """The networks whose connections may say, in ``header``, which client they forward."""

    def __init__(self, networks: Sequence[Network], header: str = X_FORWARDED_FOR) -> None:
        if header.lower() not in {name.lower() for name in PROXY_HEADERS}:
            raise ValueError(f"a proxy header is one of {', '.join(PROXY_HEADERS)}, not {header}")
        self.networks = tuple(networks)
        self.header = header
        self._known: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, ip: str) -> bool:
        """Whether a connection from ``ip`` comes from a trusted proxy (results kept)."""
        known = self._known.get(ip)
        if known is None:
            try:
                address = ipaddress.ip_address(ip.partition("%")[0])
            except ValueError:
                known = False
            else:
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                    address = address.ipv4_mapped
                known = any(address in network for network in self.networks)
            if len(self._known) >= 4096:
                self._known.clear()
            self._known[ip] = known
        return known

    def client(self, peer: tuple[str, int], values: Sequence[str]) -> tuple[str, int]:
        """The observed address of a request whose connection comes from ``peer``.

        ``values`` are the request's values of :attr:`header`, in order (empty when it has
        none).  ``peer`` itself unless it is a trusted proxy that forwarded an address; the
        port is the forwarded one when the hop names one, else the connection's.
        """
        if not self.networks or not self.trusts(peer[0]):
            return peer
        found = forwarded_address(self.header, values, peer[1])
        return found if found is not None else peer
