"""A byte budget for request bodies being read, per host and in all, that slow bodies cannot hold.

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

Bounded so, the total could still be held by bodies that never arrive: sixteen hosts, each
at its share with bodies sent a byte at a time, kept every other host's body out until their
timeouts.  So each charged body (:class:`ChargedBody`) has a pace: its declared length within
the time the server gives it (its body timeout).  The server reports the bytes it receives
for it (per read); a body that lags its pace by more than :data:`~ppsp.http.bounds.BODY_GRACE`
is *slow*.  A body the total cannot take evicts slow bodies, the one furthest behind its pace
first, until it fits: their bytes are given back at once and their holders told (the server
answers them 503 and closes their connections).  Only when the slow bodies cannot make room
is the new body refused.  Holding the budget then costs a client the bandwidth of bodies that
arrive in time (the total per body timeout), not a byte now and then.

A host one of whose bodies was evicted evicts no body for the next body timeout (its bodies
are still charged when there is room, and refused when there is none): otherwise a client
that opens a new slow body for each one evicted would evict its own slow bodies with fresh
ones, each new body within its grace, and the slow bodies an honest body needs would be
spent before it came (at the tracker under 20 such hosts, 12 of 16 honest bodies refused
without this rule, 2 with it).  At most
:data:`~ppsp.http.bounds.BODY_BARRED_HOSTS` such hosts are remembered, the oldest forgotten
first.

The order is kept in a heap keyed by the time each body's bytes so far were due
(:meth:`ChargedBody.due`), which moves only when its bytes arrive, not as time passes: the
reader reports them (:meth:`BodyBudget.received`, once per read) and the body is keyed again,
its former entry left stale.  One refusal looks at
:data:`~ppsp.http.bounds.BODY_EVICTION_LOOKS` current entries at most (the stale ones it meets
are dropped, each once: paid for by the read that made it), and the heap holds at most twice
the bodies charged (plus a constant), rebuilt when it would hold more.

A host's share is its own: a body over its host's share is refused without evicting anything
(the host's own slow bodies harm no other host).  A budget may have no share per host
(``per_host`` None, the tracker's ``--limits off``); the total always applies.

A body the budget cannot take raises :class:`RequestBodyBusy`: the server answers it 503 with
``Retry-After`` (busy, ask later) and closes the connection, the body unread.

Sans-I/O: the time is an argument (``now``); the budget never reads a clock nor touches a
connection, it only tells a body's :class:`BodyHolder`.  It lives in the I/O layer's package
(see :mod:`ppsp.http`): the standard library, ``ppsp.core`` and the errors only.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Protocol

from ppsp.core.hosts import host_key
from ppsp.errors import HTTPRequestError
from ppsp.http.bounds import (
    BODY_BARRED_HOSTS,
    BODY_BUDGET,
    BODY_BUDGET_PER_HOST,
    BODY_BUSY_RETRY_AFTER,
    BODY_EVICTION_LOOKS,
    BODY_GRACE,
    BODY_TIMEOUT,
)

__all__ = ["BodyBudget", "BodyHolder", "ChargedBody", "RequestBodyBusy", "body_host"]

_HEAP_SLACK = 64
"""Stale heap entries tolerated beyond one per charged body before the heap is rebuilt."""


class RequestBodyBusy(HTTPRequestError):
    """A request body the server cannot read now: its host's share, or the bytes of all
    hosts' bodies being read, are spent (503 with ``Retry-After``); or a body being read that
    was evicted for lagging its pace while another body needed its bytes."""

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


class BodyHolder(Protocol):
    """Whoever reads a charged body (the server's connection)."""

    def evict_body(self) -> None:
        """The body was evicted: its bytes are given back already; stop reading it (the
        server answers 503 and closes the connection)."""


class ChargedBody:
    """One body being read, charged to a :class:`BodyBudget` (made by :meth:`BodyBudget.take`).

    ``received`` counts the bytes that arrived for it since it was charged (those already
    buffered then included); the reader reports them as they come
    (:meth:`BodyBudget.received`, per read, not per byte).
    """

    __slots__ = (
        "_seq",
        "active",
        "arrived",
        "holder",
        "host",
        "received",
        "since",
        "size",
        "within",
    )

    def __init__(
        self,
        host: str,
        size: int,
        since: float,
        within: float,
        received: int,
        holder: BodyHolder | None,
    ) -> None:
        self.host = host
        """The host it is charged to (a :func:`body_host` key)."""
        self.size = size
        """Bytes charged (a chunked body's grow chunk by chunk)."""
        self.since = since
        """When it was first charged."""
        self.within = within
        """Seconds it has to arrive whole (the server's body timeout): its pace is
        ``size / within`` bytes a second."""
        self.received = received
        """Bytes received for it since it was charged."""
        self.holder = holder
        """Told when it is evicted (None: nobody)."""
        self.active = True
        """Charged: not given back nor evicted."""
        self.arrived = False
        """All of it was read (its handler has it): never evicted."""
        self._seq = 0

    def due(self, grace: float) -> float:
        """The time by which the bytes received so far were due at its pace, ``grace`` seconds
        allowed: slow once the clock is past it (it moves only when bytes arrive)."""
        return self.since + grace + self.received * self.within / self.size


class BodyBudget:
    """Bytes of request bodies being read, per host and in all (see the module).

    ``per_host`` and ``total`` are the bounds (:data:`~ppsp.http.bounds.BODY_BUDGET_PER_HOST`,
    :data:`~ppsp.http.bounds.BODY_BUDGET`; ``per_host`` None: no share per host); ``grace``
    how far a body may lag its pace before it may be evicted
    (:data:`~ppsp.http.bounds.BODY_GRACE`), ``looks`` how many bodies one refusal looks at
    (:data:`~ppsp.http.bounds.BODY_EVICTION_LOOKS`).
    """

    __slots__ = (
        "_barred",
        "_counter",
        "_heap",
        "_held",
        "bodies",
        "evicted",
        "grace",
        "in_use",
        "looks",
        "per_host",
        "refused",
        "total",
    )

    def __init__(
        self,
        *,
        per_host: int | None = BODY_BUDGET_PER_HOST,
        total: int = BODY_BUDGET,
        grace: float = BODY_GRACE,
        looks: int = BODY_EVICTION_LOOKS,
    ) -> None:
        if total < 1 or (per_host is not None and not 1 <= per_host <= total):
            raise ValueError("a body budget needs 1 <= per_host <= total")
        if grace < 0 or looks < 1:
            raise ValueError("a body budget needs grace >= 0 and looks >= 1")
        self.per_host = per_host
        self.total = total
        self.grace = grace
        self.looks = looks
        self.in_use = 0
        """Bytes taken, all hosts together."""
        self.bodies = 0
        """Bodies charged now."""
        self.refused = 0
        """Bodies (or chunks of a chunked body) refused so far."""
        self.evicted = 0
        """Bodies evicted so far (slow ones, for bodies the total could not take)."""
        self._held: dict[str, int] = {}
        # Host -> until when it may evict nothing (a body of it was evicted), oldest first.
        self._barred: dict[str, float] = {}
        # (due, sequence, body): one current entry per charged body not yet arrived; others
        # are stale (their body's sequence moved on, or it is no longer charged).
        self._heap: list[tuple[float, int, ChargedBody]] = []
        self._counter = itertools.count(1)

    @classmethod
    def shared_by(cls, processes: int, *, per_host: bool = True) -> BodyBudget:
        """One process's part of the default budget when ``processes`` processes serve one
        port (the tracker's ``--workers N``): ``ceil(bound / N)`` of the total and of the share
        per host (None without one), so that the processes together hold the default bounds,
        as their connection bounds do.  The kernel spreads a host's connections over the
        processes, so one host whose bodies all land on one process may be refused a little
        early; one body of any size still fits a process with nothing charged."""
        share = max(1, processes)
        return cls(
            per_host=-(-BODY_BUDGET_PER_HOST // share) if per_host else None,
            total=-(-BODY_BUDGET // share),
        )

    def held(self, host: str) -> int:
        """Bytes taken for ``host`` (a :func:`body_host` key)."""
        return self._held.get(host, 0)

    @property
    def hosts(self) -> int:
        """Hosts with bytes taken."""
        return len(self._held)

    @property
    def entries(self) -> int:
        """Entries of the heap of bodies by due time (at most twice the bodies charged, plus a
        constant)."""
        return len(self._heap)

    def take(
        self,
        host: str,
        size: int,
        now: float = 0.0,
        *,
        within: float = BODY_TIMEOUT,
        received: int = 0,
        holder: BodyHolder | None = None,
    ) -> ChargedBody | None:
        """Charge a body of ``size`` bytes for ``host`` (a :func:`body_host` key) at ``now``,
        with ``within`` seconds to arrive and ``received`` bytes of it here already: the charged
        body (give it back with :meth:`give`), or None when refused.

        Refused when the host's bytes would pass ``per_host``; when all bytes would pass
        ``total``, slow bodies (see the module) are evicted to make room, and the body is
        refused only when they cannot.  A host with nothing taken may pass its share, and with
        nothing taken at all any body passes (a body over the budget is its handler's to
        refuse, 413).
        """
        if not self._room(host, size, now, None):
            return None
        body = ChargedBody(host, size, now, within, min(received, size), holder)
        self._held[host] = self._held.get(host, 0) + size
        self.in_use += size
        self.bodies += 1
        self._push(body)
        return body

    def take_more(self, body: ChargedBody, size: int, now: float) -> bool:
        """Charge ``size`` more bytes to ``body`` (a chunked body's next chunk), as
        :meth:`take` would charge a body; whether they were taken.  The body's pace grows with
        them (the time it has stays)."""
        if not body.active:
            return False
        if not self._room(body.host, size, now, body):
            return False
        self._held[body.host] = self._held.get(body.host, 0) + size
        self.in_use += size
        body.size += size
        if not body.arrived:
            self._push(body)  # its due time moved earlier: the former entry is stale
            self._tidy()
        return True

    def received(self, body: ChargedBody, size: int) -> None:
        """``size`` more bytes arrived for ``body`` (one read's): its due time moves on."""
        body.received += size
        if body.active and not body.arrived:
            self._push(body)  # the former entry is stale
            self._tidy()

    def read(self, body: ChargedBody) -> None:
        """All of ``body`` was read (its handler has it): it is no longer evicted, whatever
        its handler does with it, until :meth:`give`."""
        if body.active and not body.arrived:
            body.arrived = True
            self._tidy()

    def give(self, body: ChargedBody) -> None:
        """Give back what ``body`` took (nothing when it was given back or evicted already)."""
        if not body.active:
            return
        body.active = False
        host = body.host
        held = self._held.get(host, 0) - body.size
        if held > 0:
            self._held[host] = held
        else:
            self._held.pop(host, None)
        self.in_use = max(0, self.in_use - body.size)
        self.bodies -= 1
        self._tidy()

    def slow(self, now: float) -> int:
        """Bodies charged that lag their pace by more than the grace at ``now`` (a scan of
        every entry: for tests and reports, not for the server's path)."""
        grace = self.grace
        return sum(
            1
            for _, seq, body in self._heap
            if seq == body._seq and body.active and not body.arrived and body.due(grace) < now
        )

    def barred(self, host: str, now: float) -> bool:
        """Whether ``host`` may evict no body at ``now`` (one of its bodies was evicted within
        a body timeout)."""
        until = self._barred.get(host)
        if until is None:
            return False
        if until > now:
            return True
        del self._barred[host]
        return False

    # -- inside ------------------------------------------------------------------------------

    def _room(self, host: str, size: int, now: float, keep: ChargedBody | None) -> bool:
        """Whether ``size`` more bytes of ``host`` fit, slow bodies (never ``keep``) evicted to
        make room in the total; a refusal counted when not."""
        per_host = self.per_host
        if per_host is not None:
            held = self._held.get(host, 0)
            if held and held + size > per_host:
                self.refused += 1
                return False
        in_use = self.in_use
        if in_use and in_use + size > self.total:
            # Evicting every body would let it in (nothing taken): no more is ever needed.
            need = min(in_use + size - self.total, in_use)
            if self.barred(host, now) or not self._evict(need, now, keep):
                self.refused += 1
                return False
        return True

    def _bar(self, host: str, until: float) -> None:
        barred = self._barred
        barred.pop(host, None)
        barred[host] = until
        if len(barred) > BODY_BARRED_HOSTS:
            del barred[next(iter(barred))]  # the oldest

    def _push(self, body: ChargedBody) -> None:
        seq = next(self._counter)
        body._seq = seq
        heapq.heappush(self._heap, (body.due(self.grace), seq, body))

    def _evict(self, need: int, now: float, keep: ChargedBody | None) -> bool:
        """Evict slow bodies, the one furthest behind its pace first, until ``need`` bytes are
        free; when they cannot free them within ``looks`` entries, evict none (False)."""
        heap = self._heap
        found: list[ChargedBody] = []
        kept: list[ChargedBody] = []
        freed = 0
        looks = self.looks
        while heap and looks:
            due, seq, body = heap[0]
            if seq != body._seq or not body.active or body.arrived:
                heapq.heappop(heap)  # stale: dropped once, as it was pushed once
                continue
            if due >= now:
                break  # the earliest due is not passed: no body is slow
            heapq.heappop(heap)
            looks -= 1
            # A current entry's key is its body's due time: every byte reported (received)
            # and every growth (take_more) keyed it again.
            if body is keep:
                kept.append(body)
                continue
            found.append(body)
            freed += body.size
            if freed >= need:
                break
        for body in kept:
            self._push(body)
        if freed < need:
            for body in found:
                self._push(body)
            return False
        for body in found:
            self.give(body)
            self.evicted += 1
            self._bar(body.host, now + body.within)
            if body.holder is not None:
                body.holder.evict_body()
        return True

    def _tidy(self) -> None:
        """Rebuild the heap once its stale entries pass one per charged body (plus a slack)."""
        heap = self._heap
        if len(heap) > 2 * self.bodies + _HEAP_SLACK:
            heap[:] = [
                entry
                for entry in heap
                if entry[1] == entry[2]._seq and entry[2].active and not entry[2].arrived
            ]
            heapq.heapify(heap)
