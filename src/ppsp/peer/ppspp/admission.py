"""Which channels a serving PPSPP engine keeps: a bound per host and one in all, and whose place
a new channel takes when there is no room (RFC 7574 section 13.1, attack 2: state per peer).

Shared by the seeder (:mod:`.seeder`) and the live server (:mod:`.live_server`).  A *host* is
an IPv4 address or an IPv6 /64 (:func:`ppsp.core.hosts.host_key`, the tracker's rule): one
machine has any number of UDP ports and commonly a whole /64, so a bound per UDP address
bounds nothing.

A new channel (an opening handshake that passed every check) that finds no room takes the
place of, in this order:

1. when its host holds ``max_per_host`` channels: the host's oldest half-open channel, else
   the host's channel idle longest (a host competes with itself only);
2. when the engine holds ``max_channels``: the oldest half-open channel of any host; else the
   channel idle longest of the most crowded host, when that host holds at least two channels
   more than the newcomer's (no host keeps more than its share while another waits); else the
   channel idle longest of all, once it has been idle ``evict_idle`` seconds;
3. otherwise it is refused (the handshake goes unanswered).

*Idle* counts from the peer's last REQUEST, or ACK of DATA in flight (its channel's
establishment before either): a keep-alive does not count, so a channel kept open by
keep-alives alone goes first.  The engines keep that time on the channel
(:attr:`Admitted.last_asked`); this module keeps the channels by host and the half-open ones
in the order they came.  Sans-I/O: time is an argument.
"""

from __future__ import annotations

from typing import Final, Generic, Protocol, TypeVar

from ppsp.core.hosts import host_key

__all__ = [
    "EVICT_IDLE",
    "MAX_CHANNELS",
    "MAX_CHANNELS_PER_HOST",
    "Admitted",
    "ChannelRoom",
    "host_of",
]

MAX_CHANNELS: Final = 1024
"""Channels a serving engine keeps in all; a new one beyond takes the place of another by
:class:`ChannelRoom`'s rule (a half-open one first), or is refused."""

MAX_CHANNELS_PER_HOST: Final = 16
"""Channels one host (an IPv4 address, an IPv6 /64) may hold, whatever its ports; a new one
beyond takes the place of the host's oldest half-open one, else of its idlest."""

EVICT_IDLE: Final = 10.0
"""When every host holds no more than its share and the table is full, a new channel takes the
place of the channel idle longest (no REQUEST, no ACK of DATA) once it has been idle this long
(seconds); of none before (it is refused)."""


class Admitted(Protocol):
    """What the room reads of a channel: its host and when its peer last asked for something."""

    @property
    def host(self) -> str:
        """The channel's host (:func:`host_of` its UDP address)."""
        ...

    @property
    def last_asked(self) -> float:
        """When the peer last sent a REQUEST or acknowledged DATA in flight (or the channel
        was established, or opened, before that)."""
        ...


C = TypeVar("C", bound=Admitted)


def host_of(address: tuple[object, ...]) -> str:
    """The host of a UDP address as the socket layer gives it: its IPv4 address, or the /64 of
    its IPv6 address (a name that is no IP address is its own host)."""
    host = str(address[0])
    try:
        return host_key(host.partition("%")[0])
    except ValueError:
        return host


class ChannelRoom(Generic[C]):
    """The channels an engine keeps, by host, and the rule of whose place a new one takes
    (the module's docstring).  Channels come in half-open (:meth:`add`), are established
    (:meth:`confirm`) and leave (:meth:`remove`); :meth:`make_room` says, before a new channel
    is added, whether it fits, whom it evicts, or that it is refused."""

    __slots__ = ("_half_open", "_hosts", "_size", "evict_idle", "max_channels", "max_per_host")

    def __init__(self, *, max_channels: int, max_per_host: int, evict_idle: float) -> None:
        if max_channels < 1 or max_per_host < 1 or evict_idle < 0:
            raise ValueError("a room holds at least one channel, one per host")
        self.max_channels = max_channels
        self.max_per_host = max_per_host
        self.evict_idle = evict_idle
        self._hosts: dict[str, dict[C, None]] = {}
        """Each host's channels, oldest first."""
        self._half_open: dict[C, None] = {}
        """The half-open channels, oldest first."""
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def on_host(self, host: str) -> int:
        """How many channels ``host`` holds."""
        mine = self._hosts.get(host)
        return 0 if mine is None else len(mine)

    def add(self, channel: C) -> None:
        """A new channel, half-open (after :meth:`make_room` let it in)."""
        self._hosts.setdefault(channel.host, {})[channel] = None
        self._half_open[channel] = None
        self._size += 1

    def confirm(self, channel: C) -> None:
        """The channel's peer echoed our channel ID: established."""
        self._half_open.pop(channel, None)

    def remove(self, channel: C) -> None:
        """The channel is gone (no effect when it is not here)."""
        mine = self._hosts.get(channel.host)
        if mine is None or mine.pop(channel, False) is False:
            return
        self._size -= 1
        self._half_open.pop(channel, None)
        if not mine:
            del self._hosts[channel.host]

    def make_room(self, host: str, now: float) -> tuple[C | None, str]:
        """Before a channel of ``host`` is added: ``(None, "")`` when it fits, ``(None,
        "full")`` when it is refused, else the channel it evicts and why (``"half_open"``,
        ``"host"``, ``"crowded"`` or ``"idle"``), which the caller removes."""
        mine = self._hosts.get(host)
        if mine is not None and len(mine) >= self.max_per_host:
            oldest = next((c for c in mine if c in self._half_open), None)
            if oldest is not None:
                return oldest, "half_open"
            return min(mine, key=_last_asked), "host"
        if self._size < self.max_channels:
            return None, ""
        if self._half_open:
            return next(iter(self._half_open)), "half_open"
        crowded = max(self._hosts.values(), key=len)
        if len(crowded) >= (0 if mine is None else len(mine)) + 2:
            return min(crowded, key=_last_asked), "crowded"
        idlest = min((c for group in self._hosts.values() for c in group), key=_last_asked)
        if now >= idlest.last_asked + self.evict_idle:
            return idlest, "idle"
        return None, "full"


def _last_asked(channel: Admitted) -> float:
    return channel.last_asked
