"""How many connections a peer's HTTP endpoint holds for one host, and in all.

A peer's endpoint is reached by anyone who knows its address: without a bound, one host opening
hundreds of connections holds the peer's file descriptors (at the process's limit nobody else
is accepted) and the kernel's socket buffers (the bodies they send are bounded by the HTTP
server's body budget, ``ppsp.http.budget``).  :class:`ConnectionBudget` counts the open
connections per *host* (the :func:`~ppsp.core.hosts.host_key` of the connection's source
address: an IPv4 address, an IPv6 /64, the rule of fair serving and of bans) and refuses one
beyond :data:`MAX_CONNECTIONS_PER_HOST` for its host.  This peer's own host is exempt (the
other peers there are processes of this machine, or of its network behind the same address, as
in tests and labs on one loopback address).  The bound in all (:data:`MAX_CONNECTIONS`, kept
below the process's descriptor limit by the I/O layer, ``ppsp.peer.net.guard``) is the HTTP
server's.

Sans-I/O: the I/O layer (``ppsp.peer.net.guard``) asks :meth:`ConnectionBudget.open` when a
connection is made, before anything is read, cuts the connection when it is refused and tells
:meth:`ConnectionBudget.close` when a counted one ends.
"""

from __future__ import annotations

from ppsp.peer.upload.fair import requester_host

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_CONNECTIONS_PER_HOST",
    "ConnectionBudget",
]

MAX_CONNECTIONS_PER_HOST = 64
"""Connections one host may hold open to a peer's endpoint at once (this peer's own host
excepted); a further one is cut before anything is read.

A downloading peer holds at most 32 connections to one other peer: its event loop's HTTP
client at most 16 per host (peer protocol exchanges, descriptions, chunks under 1 MiB), its
chunk threads at most 16 more (chunks of 1 MiB or more, ``ppsp.peer.net.chunkfetch``); a live
viewer uses the first alone.  Twice that lets two such processes share one address (behind a
NAT) without a refusal, which a downloader would count as a failure of this peer; a single host
holds at most 64 descriptors, and its request bodies being read at most 4 MiB (the HTTP server's
body budget, ``ppsp.http.bounds.BODY_BUDGET_PER_HOST``)."""

MAX_CONNECTIONS = 1024
"""Connections a peer's endpoint holds open in all (fewer when the process's descriptor limit
is lower, ``ppsp.peer.net.guard``); a further one is answered 503 with ``Retry-After`` (busy,
no fault of the peer) and closed.  Sixteen hosts at their bound, or some hundred downloaders
at a few connections each."""


class ConnectionBudget:
    """Open connections per host, and whether one more may be made (see the module).

    ``per_host`` is the bound of one host (:data:`MAX_CONNECTIONS_PER_HOST`);
    :attr:`local_host` is this peer's own address, whose host is not bounded.
    """

    __slots__ = ("_local", "open_per_host", "per_host", "refused")

    def __init__(self, *, per_host: int = MAX_CONNECTIONS_PER_HOST) -> None:
        if per_host < 1:
            raise ValueError("a connection bound needs per_host >= 1")
        self.per_host = per_host
        self.open_per_host: dict[str, int] = {}
        """Connections counted open, per host (a host with none is absent)."""
        self.refused = 0
        """Connections refused so far."""
        self._local: str | None = None

    @property
    def local_host(self) -> str | None:
        """The host this peer itself is reached at (not bounded); None while not known."""
        return self._local

    @local_host.setter
    def local_host(self, address: str | None) -> None:
        self._local = None if address is None else requester_host(address)

    def open(self, address: str) -> str | None:
        """A connection from ``address`` (its source IP) is made: its host, counted open
        (give it back to :meth:`close` when the connection ends), or None when the host holds
        :attr:`per_host` already (cut the connection; nothing is counted)."""
        host = requester_host(address)
        count = self.open_per_host.get(host, 0)
        if count >= self.per_host and host != self._local:
            self.refused += 1
            return None
        self.open_per_host[host] = count + 1
        return host

    def full(self, address: str) -> bool:
        """Whether a connection from ``address`` would be refused for its host's bound."""
        host = requester_host(address)
        return host != self._local and self.open_per_host.get(host, 0) >= self.per_host

    def close(self, host: str) -> None:
        """A connection :meth:`open` counted for ``host`` ended."""
        count = self.open_per_host.get(host, 0) - 1
        if count > 0:
            self.open_per_host[host] = count
        else:
            self.open_per_host.pop(host, None)

    @property
    def open_connections(self) -> int:
        """Connections counted open, all hosts together."""
        return sum(self.open_per_host.values())
