"""Who sent a peer protocol message, and what it may change (pure rules, time passed in).

A request names its sender by PeerID, which anyone can write.  What we believe about peer X
(its chunk map) changes only on a message that comes from X:

- an answer on a connection we opened to X's address (the I/O layer knows where it connected);
- a request whose connection comes from a host address that the tracker (or X's entry in a
  peer list) gave for X: :func:`judge_sender` compares the observed source address with X's
  listed addresses.

A request in the name of a known peer from any other host is forged (answered 403
``MESSAGE FORBIDDEN``, nothing believed, no tracker request).  A request under a PeerID we do
not know is a stranger's: :class:`StrangerGate` lets each host address send only a few such
messages per second (a token bucket per host) and asks the tracker about new peers at most once
per :attr:`StrangerGate.lookup_interval` per swarm, whoever pushes.  Besides, a peer known to
hold every chunk never loses chunks by announcement (:func:`seed_keeps_map`): stored content
does not shrink.

Where a peer says its chunks are is believed only when it is where we reached it: an HTTP
transport offer whose URI leads to another host or port (:func:`offer_leads_to`) would make us
send requests, our PeerID attached, wherever the peer likes (an intranet host, this machine's
own services); such an offer is ignored (:func:`trusted_offers`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from enum import Enum
from urllib.parse import urlsplit

from ppsp.core.hosts import canonical_host, host_key
from ppsp.core.ratelimit import TokenBucket
from ppsp.wire.bitmap import ChunkBitmap
from ppsp.wire.peer import HTTP, TransportOffer
from ppsp.wire.tracker import PeerInfo

__all__ = [
    "LARGE_MESSAGE_BYTES",
    "PARSE_BURST",
    "PARSE_RATE",
    "STRANGER_BURST",
    "STRANGER_HOSTS",
    "STRANGER_LOOKUP_INTERVAL",
    "STRANGER_RATE",
    "ParseBudget",
    "Sender",
    "StrangerGate",
    "canonical_host",
    "hosts_of",
    "judge_sender",
    "offer_leads_to",
    "seed_keeps_map",
    "trusted_offers",
]

STRANGER_RATE = 2.0
"""Messages per second one host address may send under PeerIDs we do not know."""

STRANGER_BURST = 10.0
"""How many such messages a host may send at once (a new peer's first PUSHes)."""

STRANGER_LOOKUP_INTERVAL = 2.0
"""Seconds between two tracker lookups that messages from unknown peers make in one swarm."""

STRANGER_HOSTS = 4096
"""Host addresses whose buckets are kept; the least recently seen is forgotten beyond."""

LARGE_MESSAGE_BYTES = 64 << 10
"""Peer protocol messages longer than this are paid for from their host's parse budget
(:class:`ParseBudget`) before they are parsed (a message of 1 MiB, 4,096 map segments, takes
about 0.1 s of the event loop to parse, before whose it is from is known).  Honest ones are
rarely this long: a chunk map of 2^18 chunks is about 44 KiB."""

PARSE_RATE = 1 << 20
"""Bytes per second of large messages one host may have parsed (about a tenth of a second of
the event loop per second, however many connections it uses)."""

PARSE_BURST = 4 << 20
"""Bytes of large messages one host may have parsed at once."""


class Sender(Enum):
    """What a request's connection says about the PeerID the request names."""

    SELF = "self"
    """The named peer is known and the request comes from one of its host addresses."""
    FORGED = "forged"
    """The named peer is known (or is this peer) and the request comes from elsewhere."""
    UNKNOWN = "unknown"
    """The named PeerID is not a peer we know in the swarm."""


def hosts_of(info: PeerInfo) -> frozenset[str]:
    """The host addresses a listed peer may send from: every address of its entry."""
    hosts = (canonical_host(address.ip) for address in info.addresses)
    return frozenset(host for host in hosts if host is not None)


def judge_sender(
    claimed_hosts: Iterable[str] | None, observed: str | None, *, names_us: bool = False
) -> Sender:
    """Whether a request naming a peer comes from it.

    ``claimed_hosts`` are the addresses known for the named peer (None: not a peer we know);
    ``observed`` is the source address of the request's connection (None: not observed, which
    matches nothing); ``names_us`` is set when the request names this peer's own PeerID, which
    no other peer may use.
    """
    if names_us:
        return Sender.FORGED
    if claimed_hosts is None:
        return Sender.UNKNOWN
    host = _host(observed)
    if host is not None and host in {_host(h) for h in claimed_hosts}:
        return Sender.SELF
    return Sender.FORGED


def _host(text: str | None) -> str | None:
    """The host ``text`` belongs to (:func:`~ppsp.core.hosts.host_key`); None if not an address.

    The rule the tracker binds a PeerID with and a peer bans with: an IPv4 address, an IPv6
    /64.  A peer using IPv6 temporary addresses sends from any address of its /64, and a host
    that could pick a fresh address per message must not get a fresh bucket per message.
    """
    address = canonical_host(text)
    return host_key(address) if address is not None else None


_DEFAULT_PORTS = {"http": 80, "https": 443}
"""The schemes an HTTP transport's URI may have, and the port each means when it names none."""


def _endpoint(url: str) -> tuple[str, int] | None:
    """The (canonical IP address, port) ``url`` leads to; None when it names no IP address
    (a host name, nothing), carries credentials, or is not ``http://`` or ``https://``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    host = canonical_host(parts.hostname)
    if default is None or host is None or parts.username is not None or parts.password:
        return None
    return host, default if port is None else port


def offer_leads_to(uri: str, reached_at: str) -> bool:
    """Whether an HTTP transport offer's ``uri`` (its template) leads to the endpoint at
    ``reached_at`` (the URL the offering peer was reached at): the same IP address
    (``::ffff:a.b.c.d`` is ``a.b.c.d``) and the same port (an absent one is the scheme's).
    A host name never matches: peers are listed by address, and a name would be resolved
    wherever its owner likes."""
    endpoint = _endpoint(uri)
    return endpoint is not None and endpoint == _endpoint(reached_at)


def trusted_offers(offers: Iterable[TransportOffer], reached_at: str) -> list[TransportOffer]:
    """The offers of a TRANSPORT_NEGOTIATION answer that may be used, in their order: every
    HTTP offer whose URI leads elsewhere than ``reached_at`` (:func:`offer_leads_to`) is left
    out, the peer then offering no such transport.  Other transports are kept as offered."""
    return [
        offer
        for offer in offers
        if offer.type.upper() != HTTP or offer.uri is None or offer_leads_to(offer.uri, reached_at)
    ]


def seed_keeps_map(previous: ChunkBitmap | None) -> bool:
    """Whether an announced map must leave the one known for a peer as it is.

    A peer known to hold every chunk of stored content keeps holding them: a later announcement
    that it holds fewer is not believed (a seeder's map only grows), so that nobody, the peer
    itself included, makes its chunks look gone by announcement.
    """
    return previous is not None and previous.size > 0 and previous.complete


class ParseBudget:
    """What parsing one host's large peer protocol messages may cost, checked before parsing:
    a token bucket of bytes per host (:data:`PARSE_RATE`, :data:`PARSE_BURST`) from which a
    message longer than :data:`LARGE_MESSAGE_BYTES` takes its length.  Sans-I/O: ``now`` is
    passed in."""

    def __init__(
        self,
        *,
        rate: float = PARSE_RATE,
        burst: float = PARSE_BURST,
        large: int = LARGE_MESSAGE_BYTES,
        max_hosts: int = STRANGER_HOSTS,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.large = large
        self.max_hosts = max_hosts
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.refused = 0
        """Messages refused unparsed because their host's budget was spent."""

    def admit(self, host: str | None, nbytes: int, now: float) -> bool:
        """Whether a message of ``nbytes`` from ``host`` may be parsed at ``now`` (its bytes
        are taken from the host's bucket when it is large)."""
        if nbytes <= self.large:
            return True
        key = _host(host) or "?"
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, burst=self.burst, now=now)
            while len(self._buckets) > self.max_hosts:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        if bucket.available(now) < min(nbytes, self.burst):
            self.refused += 1
            return False
        bucket.reserve(nbytes, now)
        return True


class StrangerGate:
    """Bounds on what messages under unknown PeerIDs may cost: per host, and per swarm lookups.

    :meth:`admit` takes one token of the host's bucket (refused when empty);
    :meth:`lookup_due` says whether an admitted message may make us ask the tracker about the
    swarm's peers now.  Sans-I/O: ``now`` is passed in.
    """

    def __init__(
        self,
        *,
        rate: float = STRANGER_RATE,
        burst: float = STRANGER_BURST,
        lookup_interval: float = STRANGER_LOOKUP_INTERVAL,
        max_hosts: int = STRANGER_HOSTS,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.lookup_interval = lookup_interval
        self.max_hosts = max_hosts
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._last_lookup: dict[str, float] = {}
        self.refused = 0
        """Messages refused because their host's bucket was empty."""

    def admit(self, host: str | None, now: float) -> bool:
        """Whether ``host`` may send one more message under an unknown PeerID at ``now``."""
        key = _host(host) or "?"
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.rate, burst=self.burst, now=now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_hosts:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        if bucket.available(now) < 1.0:
            self.refused += 1
            return False
        bucket.reserve(1, now)
        return True

    def lookup_due(self, swarm_id: str, now: float) -> bool:
        """Whether a tracker lookup for ``swarm_id`` may start at ``now`` (and record it if so)."""
        last = self._last_lookup.get(swarm_id)
        if last is not None and now - last < self.lookup_interval:
            return False
        self._last_lookup[swarm_id] = now
        return True
