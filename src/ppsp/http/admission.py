"""Which connections a server lets in: its hooks, its bound, TLS before the handshake, and room
made for a host at its bound by closing that host's longest-idle connection.

:class:`Admitting` is the part of :class:`~ppsp.http.server.HTTPServer` that decides, for each
new connection, before anything is read: the hooks (:class:`~ppsp.http.hooks.ConnectionHooks`,
a guard bounding connections per host) first, after making room for a host at its bound when
it has a connection idle between requests (:mod:`ppsp.http.idle`); a TLS connection is
admitted before its handshake (:mod:`ppsp.http.tls_accept` asks :meth:`Admitting.admit`), its
handshake counted in the server's bound.

Layer: I/O (see :mod:`ppsp.http`): the standard library only.
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Sized
from typing import Protocol

from ppsp.http.hooks import ConnectionHooks
from ppsp.http.idle import IdleConnections
from ppsp.http.tls_accept import TLSAcceptor

__all__ = ["Admitting", "Evictable"]


class Evictable(Protocol):
    """A connection that can be closed to make room for another of its host."""

    def evict(self) -> None:
        """Close the connection (idle between requests), its token given back to the hooks."""


class Admitting:
    """The admission part of a server (see the module); the server sets the attributes."""

    hooks: ConnectionHooks | None
    closing: bool
    max_connections: int | None
    connections: Sized
    handshaking: int
    tls: ssl_module.SSLContext | None
    idle: IdleConnections[Evictable]
    _acceptor: TLSAcceptor | None

    def opened(self, remote: tuple[str, int]) -> object | None:
        """The hooks' token for a new connection from ``remote`` (None: refused), after
        closing the longest-idle connection of its host when the host is at its bound."""
        hooks = self.hooks
        if hooks is None:
            return True
        idle = self.idle
        if idle:
            host = hooks.host(remote)
            if idle.has(host) and hooks.full(remote):
                longest = idle.longest(host)
                if longest is not None:
                    longest.evict()
        return hooks.opened(remote)

    def admit(self, remote: tuple[str, int]) -> object | None:
        """A TLS connection from ``remote`` is accepted (:class:`TLSAcceptor`): its token once
        the hooks and the connection bound let it in, before its handshake; None to refuse."""
        if self.closing:
            return None
        token = self.opened(remote)
        if token is None:
            return None
        limit = self.max_connections
        if limit is not None and len(self.connections) + self.handshaking >= limit:
            if self.hooks is not None:
                self.hooks.closed(token)
            return None
        self.handshaking += 1
        return token

    def release(self, token: object) -> None:
        """The TLS connection of ``token`` ended in its handshake."""
        self.handshaking -= 1
        if self.hooks is not None:
            self.hooks.closed(token)

    def use_tls(self, context: ssl_module.SSLContext) -> None:
        """Handshake the connections accepted from now on with ``context`` (a certificate read
        again); open ones keep theirs.  ValueError for a server without TLS."""
        if self._acceptor is None:
            raise ValueError("this server does not serve TLS")
        self.tls = self._acceptor.context = context
