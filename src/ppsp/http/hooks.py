"""What a server tells of its connections to whoever bounds them (:class:`ConnectionHooks`;
the tracker's guard and the peer's endpoint guard implement it, :mod:`ppsp.http.server` calls
it, and exports it under its own name too).

Layer: I/O (see :mod:`ppsp.http`): the standard library only.
"""

from __future__ import annotations

__all__ = ["ConnectionHooks"]


class ConnectionHooks:
    """What a server tells of its connections to whoever bounds them (the tracker's guard).

    :meth:`opened` is asked first, before anything is read: None refuses the connection (it
    is cut at once), anything else is the connection's token, given back to :meth:`closed`
    when it ends and to :meth:`timed_out` when the server closes it for a timeout.  Before
    that, a host :meth:`full` at its bound that has a connection idle between requests gets
    that connection closed to make room (:mod:`ppsp.http.idle`; told as ``"evicted"``).
    These defaults accept everything.
    """

    def host(self, remote: tuple[str, int]) -> str:
        """The host ``remote`` (``(ip, port)``) counts for: whose idle connections make room
        for it."""
        return remote[0]

    def full(self, remote: tuple[str, int]) -> bool:
        """Whether :meth:`opened` would refuse ``remote`` for its host's bound alone."""
        return False

    def opened(self, remote: tuple[str, int]) -> object | None:
        """A connection from ``remote`` (``(ip, port)``) is made: its token, or None to refuse."""
        return True

    def closed(self, token: object) -> None:
        """The connection of ``token`` ended (whatever ended it)."""

    def timed_out(self, token: object, what: str) -> None:
        """The connection of ``token`` is closed for a timeout: ``"head"`` (a head, or a
        connection's first bytes, late), ``"idle"`` (a kept-alive connection unused) or
        ``"evicted"`` (idle, closed for a new connection of its host at its bound)."""
