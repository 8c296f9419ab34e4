"""Peer exchange (RFC 7574 section 3.10), sans-I/O: which addresses are named and which kept.

PEX only ever adds candidates: an address a peer names is tried (a handshake on the swarm's
ID) and believed once it answers, never before (3.10.1, 13.2.3).  The rules both sides apply
are here, once:

* **Usable**: a unicast host (not unspecified, multicast, reserved, or an IPv4-mapped IPv6
  one) and a port in 1..65535 (:func:`usable`).
* **Internal addresses** (private, unique-local, link-local, loopback) are named to, and kept
  from, only a peer on such an address itself (section 8.13; :func:`internal`).
* **Answering** (:func:`answer`): at most a bound of the eligible others, chosen at random,
  of the asker's family, never the asker itself.
* **Asking** (:class:`PexAsking`): one PEX_REQ outstanding, one per interval; the PEX_RES of
  the first datagram within the answer timeout are the answer, each answer and the channel's
  whole life bounded in addresses kept.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from ppsp.wire.ppspp import PexResCert, PexResV4, PexResV6

__all__ = [
    "MAX_PEX_CANDIDATES",
    "PEX_FEW_PEERS",
    "PexAsking",
    "PexBounds",
    "PexCandidates",
    "answer",
    "host_of",
    "internal",
    "usable",
]

Host = IPv4Address | IPv6Address

PEX_FEW_PEERS = 4
"""With fewer open channels than this, a download's answered channels ask their peers for
others (PEX_REQ, at :attr:`PexBounds.interval`)."""

MAX_PEX_CANDIDATES = 64
"""Addresses learned by PEX one download keeps in all (each channel keeps its own bound too)."""


def host_of(address: tuple[object, ...]) -> Host | None:
    """A UDP address's host as an IP address (an IPv6 zone dropped); None when it is none."""
    try:
        return ip_address(str(address[0]).split("%", 1)[0])
    except ValueError:
        return None


def internal(host: Host) -> bool:
    """Whether ``host`` is private, unique-local, link-local or loopback (RFC 7574 section
    8.13 keeps such addresses from peers on other addresses)."""
    return host.is_private or host.is_link_local or host.is_loopback


def usable(host: Host, port: int) -> bool:
    """Whether ``(host, port)`` can be a peer's: a unicast host and a port."""
    return (
        0 < port < 65536
        and not host.is_unspecified
        and not host.is_multicast
        and not host.is_reserved
        and not (isinstance(host, IPv6Address) and host.ipv4_mapped is not None)
    )


def answer(
    asker: tuple[object, ...],
    others: Iterable[tuple[object, ...]],
    limit: int,
    rng: random.Random,
) -> tuple[PexResV4 | PexResV6, ...]:
    """The PEX_RES messages answering ``asker``'s PEX_REQ: at most ``limit`` of ``others``
    (the addresses of the peers eligible to be named), chosen at random, usable, of the
    asker's family, never the asker, internal ones only to an internal asker.  Empty when
    there is nobody to name (or the asker's address is no IP address)."""
    asking = host_of(asker)
    if asking is None:
        return ()
    own = (asking, int(str(asker[1])))
    named: dict[tuple[Host, int], None] = {}
    for address in others:
        host = host_of(address)
        if host is None:
            continue
        port = int(str(address[1]))
        if (
            host.version != asking.version
            or (host, port) == own
            or not usable(host, port)
            or (internal(host) and not internal(asking))
        ):
            continue
        named[(host, port)] = None
    chosen = list(named)
    if len(chosen) > limit:
        chosen = rng.sample(chosen, limit)
    return tuple(
        PexResV4(address=host, port=port)
        if isinstance(host, IPv4Address)
        else PexResV6(address=host, port=port)
        for host, port in chosen
    )


@dataclass(frozen=True, slots=True)
class PexBounds:
    """How a channel asks for peers and what it keeps of the answers."""

    interval: float = 10.0
    """A PEX_REQ goes out at most once in this many seconds."""
    answer_timeout: float = 5.0
    """A PEX_RES later than this after our PEX_REQ is unsolicited (ignored)."""
    max_per_answer: int = 8
    """Addresses kept of one PEX answer (our seeder sends at most 8; libswift 1)."""
    max_candidates: int = 32
    """Addresses learned by PEX kept over the channel's life; further answers are ignored."""


class PexAsking:
    """One channel's asking side of PEX: when it may ask, what it keeps of the answers.

    Counts go to ``stats`` (the channel's): ``pex_req_sent``, ``pex_answers``,
    ``pex_candidates``, ``pex_res_unsolicited``, ``pex_res_unusable``,
    ``pex_res_over_bound``, ``pex_rescert_ignored`` (PEX_REScert is not supported).
    """

    def __init__(self, bounds: PexBounds, stats: Counter[str]) -> None:
        self.bounds = bounds
        self.stats = stats
        self._asked: float | None = None  # when our outstanding PEX_REQ went out
        self._last = float("-inf")  # when our last PEX_REQ went out
        self._learned: dict[tuple[str, int], None] = {}  # every address kept, in order
        self._new: list[tuple[str, int]] = []  # kept, not yet taken

    def may_ask(self, now: float) -> bool:
        """Whether a PEX_REQ may go out now: none outstanding, the last ``interval`` ago or
        more, and room for more candidates."""
        bounds = self.bounds
        return (
            (self._asked is None or now >= self._asked + bounds.answer_timeout)
            and now >= self._last + bounds.interval
            and len(self._learned) < bounds.max_candidates
        )

    def asked(self, now: float) -> None:
        """A PEX_REQ went out at ``now``."""
        self._asked = self._last = now
        self.stats["pex_req_sent"] += 1

    def received(self, messages: list[PexResV4 | PexResV6 | PexResCert], now: float) -> None:
        """A datagram's PEX_RES messages: the answer to our outstanding PEX_REQ, or ignored."""
        bounds = self.bounds
        if self._asked is None or now > self._asked + bounds.answer_timeout:
            self.stats["pex_res_unsolicited"] += len(messages)
            return
        self._asked = None  # one answer per request
        self.stats["pex_answers"] += 1
        taken = 0
        for message in messages:
            if isinstance(message, PexResCert):
                self.stats["pex_rescert_ignored"] += 1
                continue
            if not usable(message.address, message.port):
                self.stats["pex_res_unusable"] += 1
                continue
            address = (str(message.address), message.port)
            if taken >= bounds.max_per_answer or len(self._learned) >= bounds.max_candidates:
                self.stats["pex_res_over_bound"] += 1
            elif address not in self._learned:
                taken += 1
                self._learned[address] = None
                self._new.append(address)
                self.stats["pex_candidates"] += 1

    def take(self) -> list[tuple[str, int]]:
        """Addresses kept since the last call, each once."""
        taken, self._new = self._new, []
        return taken


class PexCandidates:
    """The addresses a download's channels learned by PEX: candidates to try, never peers.

    Kept only when of the family of the peer that named them, never that peer's own, internal
    ones only from an internal peer (section 8.13), and at most :data:`MAX_PEX_CANDIDATES` in
    all; each new one goes to ``on_candidates`` when set.
    """

    def __init__(self, open_channels: Callable[[], int]) -> None:
        self._open_channels = open_channels
        self.candidates: dict[tuple[str, int], None] = {}
        """Every address kept, in order."""
        self.on_candidates: Callable[[list[tuple[str, int]]], None] | None = None
        """Called with the addresses newly kept."""

    @property
    def wanted(self) -> bool:
        """Whether channels should ask their peers for others (few are open)."""
        return self._open_channels() < PEX_FEW_PEERS and len(self.candidates) < MAX_PEX_CANDIDATES

    def learned(self, source: tuple[str, int], addresses: list[tuple[str, int]]) -> None:
        """``addresses`` came in a PEX answer from ``source``: keep those usable."""
        peer = host_of(source)
        if peer is None:
            return
        new = []
        for host, port in addresses:
            address = ip_address(host)
            if (
                address.version != peer.version
                or (host, port) == source
                or (internal(address) and not internal(peer))
                or (host, port) in self.candidates
                or len(self.candidates) >= MAX_PEX_CANDIDATES
            ):
                continue
            self.candidates[(host, port)] = None
            new.append((host, port))
        if new and self.on_candidates is not None:
            self.on_candidates(new)
