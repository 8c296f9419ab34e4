"""A byte budget for request bodies being read, per host and in all.

A body the server waits for is buffered whole until its handler has it: one host holding 64
connections, each sending a 1 MiB body slowly, held 64 MiB of a peer's memory, and hosts
together had no bound at all.  :class:`BodyBudget` counts the bytes of the bodies being read
per host (:func:`~ppsp.core.hosts.host_key`: an IPv4 address, an IPv6 /64) and in all; the
server's :class:`~ppsp.http.exchange.Request` takes a body's ``Content-Length`` from it before
waiting for any of the body (a chunked body each chunk before reading it) and gives it back
once its handler returned, whatever ended the request (answered, timed out, the client gone,
the server closing).  A body that arrived whole with its head is not charged: the bytes a
connection buffers unasked are bounded already (``READ_HIGH_WATER``), and an honest peer's
small PUSH or FIND_CHUNK, sent with its head, is never refused for other hosts' bodies.

A body the budget cannot take raises :class:`RequestBodyBusy`: the server answers it 503 with
``Retry-After`` (busy, ask later) and closes the connection, the body unread.

Layer: I/O (see :mod:`ppsp.http`): the standard library, ``ppsp.core`` and the errors only.
"""

from __future__ import annotations

from ppsp.core.hosts import host_key
from ppsp.errors import HTTPRequestError
from ppsp.http.bounds import BODY_BUDGET, BODY_BUDGET_PER_HOST, BODY_BUSY_RETRY_AFTER

__all__ = ["BodyBudget", "RequestBodyBusy", "body_host"]


class RequestBodyBusy(HTTPRequestError):
    """A request body the server cannot read now: its host's share, or the bytes of all
    hosts' bodies being read, are spent (503 with ``Retry-After``)."""

    status = 503
    reason = "Service Unavailable"
    retry_after = BODY_BUSY_RETRY_AFTER
    """Seconds the answer's ``Retry-After`` names."""


def body_host(address: str) -> str:
    """The host a connection's source address counts for (the address itself when it is not
    an IP address)."""
    try:
        return host_key(address.partition("%")[0])
    except ValueError:
        return address


class BodyBudget:
    """Bytes of request bodies being read, per host and in all (see the module).

    ``per_host`` and ``total`` are the bounds (:data:`~ppsp.http.bounds.BODY_BUDGET_PER_HOST`,
    :data:`~ppsp.http.bounds.BODY_BUDGET`).
    """

    __slots__ = ("_held", "in_use", "per_host", "refused", "total")

    def __init__(self, *, per_host: int = BODY_BUDGET_PER_HOST, total: int = BODY_BUDGET) -> None:
        if per_host < 1 or total < per_host:
            raise ValueError("a body budget needs 1 <= per_host <= total")
        self.per_host = per_host
        self.total = total
        self.in_use = 0
        """Bytes taken, all hosts together."""
        self.refused = 0
        """Bodies (or chunks of a chunked body) refused so far."""
        self._held: dict[str, int] = {}

    def held(self, host: str) -> int:
        """Bytes taken for ``host`` (a :func:`body_host` key)."""
        return self._held.get(host, 0)

    @property
    def hosts(self) -> int:
        """Hosts with bytes taken."""
        return len(self._held)

    def take(self, host: str, size: int) -> bool:
        """Take ``size`` bytes for a body of ``host`` (a :func:`body_host` key): whether they
        were taken (give them back with :meth:`give`).  Refused when the host's bytes would
        pass ``per_host`` or all bytes ``total``; a host with nothing taken may pass its share,
        and with nothing taken at all any body passes (a body over the budget is its
        handler's to refuse, 413)."""
        held = self._held.get(host, 0)
        if (held and held + size > self.per_host) or (
            self.in_use and self.in_use + size > self.total
        ):
            self.refused += 1
            return False
        self._held[host] = held + size
        self.in_use += size
        return True

    def give(self, host: str, size: int) -> None:
        """Give back ``size`` bytes :meth:`take` took for ``host``."""
        held = self._held.get(host, 0) - size
        if held > 0:
            self._held[host] = held
        else:
            self._held.pop(host, None)
        self.in_use = max(0, self.in_use - size)
