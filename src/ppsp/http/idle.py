"""Kept-alive connections waiting for their next request, by host: room for a host's new one.

A host's connections are bounded (the tracker's guard, a peer's endpoint guard: the
:class:`~ppsp.http.hooks.ConnectionHooks`).  Many clients behind one address (a hall of viewers
behind one NAT) each keep a connection alive between their requests, and at the bound the next
client of that address was cut, however idle the others were.  So when a new connection of a
host at its bound arrives, the server first closes that host's connection that has waited
longest for its next request (:class:`IdleConnections` finds it), and lets the new one in:
the host still holds no more connections than its bound, and a client whose idle connection
was closed opens a new one for its next request, as after the idle timeout.  Only a host's own
idle connections make room for it: a host cannot close another host's.  A connection counts
as idle from the end of an answer until the first byte of its next request, never before its
first request.

Layer: I/O (see :mod:`ppsp.http`): the standard library only; no clock, no socket.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["IdleConnections"]

_C = TypeVar("_C")


class IdleConnections(Generic[_C]):
    """The idle connections of each host, the one idle longest first."""

    __slots__ = ("_by_host",)

    def __init__(self) -> None:
        # host -> its idle connections, in the order they became idle (a dict keeps that).
        self._by_host: dict[str, dict[_C, None]] = {}

    def waiting(self, host: str, connection: _C) -> None:
        """``connection`` (of ``host``) answered its request and waits for the next one."""
        idle = self._by_host.get(host)
        if idle is None:
            self._by_host[host] = {connection: None}
        else:
            idle[connection] = None

    def active(self, host: str, connection: _C) -> None:
        """``connection`` is no longer idle (a request began, or it ended)."""
        idle = self._by_host.get(host)
        if idle is not None and idle.pop(connection, 0) is None and not idle:
            del self._by_host[host]

    def __bool__(self) -> bool:
        """Whether any host has an idle connection (cheaper than ``len``)."""
        return bool(self._by_host)

    def has(self, host: str) -> bool:
        """Whether ``host`` has an idle connection."""
        return host in self._by_host

    def longest(self, host: str) -> _C | None:
        """The connection of ``host`` idle longest (None when it has none); it stays listed
        until :meth:`active` is told."""
        idle = self._by_host.get(host)
        return None if idle is None else next(iter(idle))

    def __len__(self) -> int:
        return sum(len(idle) for idle in self._by_host.values())
