"""The live PPSPP server's bounds and timers (:class:`LiveServerConfig`), sans-I/O.

The bounds it shares with the seeder are defined once: the channels per host in
:mod:`.admission`, the opening handshake's and a datagram's in :mod:`.opening`.
:mod:`.live_server` keeps them (and re-exports the class).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ppsp.peer.ppspp import admission
from ppsp.peer.ppspp import opening as bounds
from ppsp.peer.ppspp.ledbat import LedbatParameters
from ppsp.peer.ppspp.live import MUNRO_CHUNKS
from ppsp.peer.upload.fair import CAPPED_SLOTS

__all__ = ["LiveServerConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveServerConfig:
    """The live server's bounds and timers (seconds)."""

    max_channels: int = admission.MAX_CHANNELS
    """Channels kept in all (:data:`.admission.MAX_CHANNELS`)."""
    max_channels_per_host: int = admission.MAX_CHANNELS_PER_HOST
    """Channels one host may hold (:data:`.admission.MAX_CHANNELS_PER_HOST`)."""
    evict_idle: float = admission.EVICT_IDLE
    """Idle time before a channel may give its place (:data:`.admission.EVICT_IDLE`)."""
    max_queue: int = 4 * MUNRO_CHUNKS
    """PPSPP chunks queued per channel (requests beyond are dropped)."""
    max_opening_messages: int = bounds.MAX_OPENING_MESSAGES
    """Messages an opening datagram may carry besides its HANDSHAKE; more and it is dropped
    unanswered (the seeder's bound)."""
    answer_factor: int = bounds.ANSWER_FACTOR
    """The answer to an opening datagram stays within this many times its bytes: the HAVEs
    beyond go once the channel is established (the seeder's bound)."""
    answer_interval: float = bounds.ANSWER_INTERVAL
    """The same opening handshake again is answered at most once in this many seconds."""
    max_messages_per_datagram: int = bounds.MAX_MESSAGES_PER_DATAGRAM
    """A datagram on a channel carrying more messages is dropped and its channel closed."""
    half_open_timeout: float = 10.0
    idle_timeout: float = 180.0
    keepalive_interval: float = 30.0
    corrupt_data: bool = False
    """Damage the first byte of every DATA sent (tests: ``--corrupt-uploads``, a relay whose
    chunks do not match the signed munros)."""
    ledbat: LedbatParameters = field(default_factory=LedbatParameters)
    """Each channel's LEDBAT window and retransmission timer (the seeder's)."""
    send_slots: int = CAPPED_SLOTS
    """Under an upload cap, channels sending at once; the others wait (:mod:`.live_slots`)."""

    def __post_init__(self) -> None:
        if self.max_opening_messages < 0 or self.answer_factor < 1:
            raise ValueError("opening messages and the answer's factor are bounds")
        if self.max_messages_per_datagram < 1 or self.answer_interval < 0:
            raise ValueError("a channel reads a message; timers are not negative")
