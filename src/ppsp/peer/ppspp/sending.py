"""What every PPSPP engine that uploads shares: DATA in flight under a LEDBAT window, and whose
turn it is to send under the peer's upload cap.

Both engines that send DATA, :class:`~.seeder.Seeder` (stored content) and
:class:`~.live_server.LiveServer` (live streams), keep per channel the DATA in flight (chunk
number -> when it was sent, oldest first) and a :class:`~.ledbat.Ledbat` window, and read the
same ACKs (RFC 7574 section 8.7: the receiver's clock at arrival minus the DATA's timestamp, a
one-way delay sample).  The functions here are that shared bookkeeping:

- :func:`acked_in_flight` and :func:`acknowledge`: an ACK of a chunk or a range frees the
  window and feeds LEDBAT its delay sample and round trip;
- :func:`take_expired`: the DATA whose retransmission timeout ran out (the engine decides
  whether each is lost, and calls :meth:`~.ledbat.Ledbat.on_loss` once when any is);
- :func:`flight_deadline`: when the oldest DATA in flight times out.

:class:`SendTurns` is the upload cap's glue: without a pacer a channel sends whatever its window
allows at once; with an :class:`~ppsp.peer.upload.pacing.UploadPacer` (one token bucket for the
whole process, HTTP's too) each channel with something to send joins its host's turn and the
hosts take turns, one DATA each, as the pacer's reservations are paid for.

Sans-I/O: time is an argument.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ppsp.peer.ppspp.ledbat import Ledbat
from ppsp.peer.upload.pacing import UploadPacer

__all__ = ["SendTurns", "acked_in_flight", "acknowledge", "flight_deadline", "take_expired"]

Flight = dict[int, float]
"""DATA sent and not acknowledged: chunk number -> when sent (oldest first)."""


def acked_in_flight(flight: Flight, start: int, end: int) -> list[int]:
    """The chunks in flight that an ACK (or HAVE) of chunks ``start`` to ``end`` covers."""
    if start == end:
        return [start] if start in flight else []
    return [index for index in flight if start <= index <= end]


def acknowledge(
    flight: Flight, ledbat: Ledbat, acked: list[int], *, delay_us: int, now: float
) -> None:
    """Take ``acked`` (in flight) out of the flight, each a LEDBAT sample of ``delay_us``.

    LEDBAT's flight size is what was in flight before this ACK (RFC 6817 2.4.2), less the
    chunk acknowledged: for an ACK of a range, the same for each of its chunks, so that
    acknowledging several at once does not shrink the window to what is left.
    """
    before = len(flight) - 1
    for index in acked:
        sent_at = flight.pop(index)
        ledbat.on_ack(now=now, sent_at=sent_at, delay_us=delay_us, in_flight=before)


def take_expired(flight: Flight, ledbat: Ledbat, now: float) -> list[int]:
    """The chunks whose DATA went at least a retransmission timeout before ``now``, taken out
    of the flight, in the order they were sent."""
    rto = ledbat.rto
    expired = [index for index, sent in flight.items() if now >= sent + rto]
    for index in expired:
        del flight[index]
    return expired


def flight_deadline(flight: Flight, ledbat: Ledbat) -> float | None:
    """When the oldest DATA in flight times out (None: nothing in flight)."""
    if not flight:
        return None
    return next(iter(flight.values())) + ledbat.rto


class SendTurns:
    """Who sends the next DATA: each channel at once without an upload cap, the pacer's turns
    under one (module docstring).

    ``send_next(key, now)`` sends the next DATA the channel of ``key`` may send (its window
    allowing, something queued) and returns the bytes of its datagrams, or None when it has
    nothing it may send; ``stats`` gets ``paced_waits``: the events after which channels were
    left waiting for the cap.
    """

    def __init__(
        self,
        pacer: UploadPacer | None,
        send_next: Callable[[int, float], int | None],
        stats: Counter[str],
    ) -> None:
        self.pacer = pacer
        self._send_next = send_next
        self._stats = stats
        self._deferred = False  # while collecting every channel's turn before serving

    def pump(self, key: int, host: str, now: float) -> None:
        """The channel ``key`` (whose UDP address is on ``host``) may have something to send:
        send it now, or under the cap join its host's turn (served at once unless turns are
        being collected, :meth:`collecting`)."""
        pacer = self.pacer
        if pacer is None:
            while self._send_next(key, now) is not None:
                pass
            return
        pacer.want(key, host)
        if not self._deferred:
            self.serve(now)

    @contextmanager
    def collecting(self, now: float) -> Iterator[None]:
        """Under the cap, every channel :meth:`pump` names inside joins the turns first, and the
        turns are served once on the way out (a timer's pass over every channel: not the
        first channel alone)."""
        if self.pacer is None:
            yield
            return
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False
            self.serve(now)  # the upload cap's deadline too

    def serve(self, now: float) -> None:
        """Under the cap: one DATA per turn, to the channel whose turn it is, while the pacer
        allows; a channel with nothing it may send leaves the turns until :meth:`pump` brings
        it back (an ACK, a REQUEST, a lost DATA)."""
        pacer = self.pacer
        if pacer is None:
            return
        while (sender := pacer.next_sender(now)) is not None:
            key = sender
            assert isinstance(key, int)
            sent = self._send_next(key, now)
            if sent is None:
                pacer.drop(key)
            else:
                pacer.spent(key, sent, now)
        if pacer.wanting:
            self._stats["paced_waits"] += 1  # channels wait for the upload cap's deadline

    def forget(self, key: int) -> None:
        """The channel ``key`` is gone."""
        if self.pacer is not None:
            self.pacer.forget(key)

    def ready_at(self) -> float | None:
        """When a channel waiting for the cap may send (None: none waits, or no cap)."""
        return None if self.pacer is None else self.pacer.ready_at()
