"""The remote peers of one swarm session, as the download decisions see them.

Sans-I/O.  A :class:`PeerStanding` is the one record of what this peer thinks of a remote peer:
how often it failed, whether it is banned, whether a connection is being made or was made, the
chunk map it announced and what it said it can upload.  A :class:`PeerBook` holds the standings
of a session's peers.  The I/O layer keeps each peer's addresses and transport beside it
(``ppsp.peer.net.session.RemotePeer`` reads and writes this record, never a copy of it).

The rule that ends a peer's use is here, once: a peer is banned at its
:data:`MAX_FAILURES`-th failure (a connection, an exchange or a transfer that ended in an error;
a timeout is a stall, below, and an answer that it is busy is no failure at all),
and at once when it sends something forged (a chunk or a description that fails its hash).
A peer that sent corrupt chunk bytes (or a forged live envelope) bans its *host* too
(:meth:`PeerBook.ban_host`): every other PeerID reached at that host address (an IPv4
address, an IPv6 /64: :func:`ppsp.core.hosts.host_key`, the tracker's rule) is banned, those
listed later as well, for as long as the book lives (the swarm session), so that a liar does
not come back under a new PeerID.  This peer's own host is never banned so (the other peers
there are processes of this machine, or of its network behind the same address).  Each such
ban is also counted for the tracker (:meth:`PeerBook.take_corrupt`: the peers that sent corrupt
data and how many times, for the corrupt-peer reports of the next STAT_REPORT).
A peer that is slow or silent (a connection or a request that timed out) is *benched*: it
loses its requests and is neither connected nor asked again until a back-off that doubles at
each stall (:meth:`PeerStanding.stall`), so that a peer that accepts connections and never
answers costs a download seconds, not its progress.  Stalls never ban: a seeder swamped by
other requesters is as silent as a tarpit, and banned it would be lost for good.  A peer that
answers busy (503, 429) is left alone for the wait it names (:meth:`PeerStanding.rest`).

Addresses another peer named in a PEX answer (RFC 7574 3.10) are *candidates*, never listed
peers (:meth:`PeerBook.add_pex`): each is a standing of its own named ``pex:HOST:PORT``
(:func:`pex_name`; it has no PeerID), unless a known peer was registered or reached at that
PPSPP address (it is that peer, not a second one), its host is banned, or
:data:`MAX_PEX_PEERS` are known.  Nothing about one is believed before its handshake on the
swarm's ID is answered (the I/O layer's connection); at most :data:`MAX_PEX_CONNECTING` are
tried at once, and one whose try fails is dropped (:meth:`PeerStanding.drop`): no stall, no
failure counted, nobody banned.  Once connected it is a peer like the others.

Peers another peer lists in a FIND answer are *found* peers (:meth:`PeerBook.take_found`):
anyone may answer FIND with invented PeerIDs at an address of its choosing, so that a
download would connect there, again and again, and remember them for ever.  Of one answer at
most ``DEFAULT_MAX_PEERS`` new peers are taken (as many as an answer of ours lists), at most
:data:`MAX_FOUND_PEERS` in all and :data:`MAX_FOUND_PER_HOST` per host (this peer's own host
excepted), and never a PeerID at an endpoint (address and port) a known peer has: one endpoint
is one peer.  Peers the tracker lists are not bounded so (the tracker observed their
addresses).

The timeouts of the peer's exchanges are defined here, once, for the I/O layer and the picker
alike (docs/PROTOCOL.md gives the reason for each value).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from ipaddress import ip_address

from ppsp.core.hosts import host_key
from ppsp.peer.protocol.handler import DEFAULT_MAX_PEERS
from ppsp.wire.bitmap import ChunkBitmap

__all__ = [
    "BUSY_BACKOFF",
    "BUSY_BACKOFF_MAX",
    "BUSY_BACKOFF_MIN",
    "CHUNK_QUEUE_TIMEOUT",
    "CONNECT_TIMEOUT",
    "FIRST_BYTE_TIMEOUT",
    "MAX_CONNECTING",
    "MAX_CONNECTING_PER_HOST",
    "MAX_CORRUPT_KEPT",
    "MAX_FAILURES",
    "MAX_FOUND_PEERS",
    "MAX_FOUND_PER_HOST",
    "MAX_PEX_CONNECTING",
    "MAX_PEX_PEERS",
    "PROGRESS_TIMEOUT",
    "STALL_BACKOFF",
    "STALL_BACKOFF_MAX",
    "PeerBook",
    "PeerStanding",
    "pex_name",
    "ppspp_address",
]

MAX_CORRUPT_KEPT = 64
"""Peers whose corrupt data a book counts until the tracker client takes the counts; further
ones are banned all the same but not reported."""

MAX_FAILURES = 3
"""Failures after which a peer is banned: never connected, asked or told anything again."""

CONNECT_TIMEOUT = 3.0
"""Seconds to open a TCP connection to a peer: enough for one lost SYN (retransmitted after
1 s) on any path, far more than a connection takes on a working one."""

FIRST_BYTE_TIMEOUT = 3.0
"""Seconds from sending a request (a description, a chunk) to the first byte of its answer: a
peer answers from memory or its disk at once, so a peer silent this long is overloaded or a
tarpit, and another peer is asked."""

CHUNK_QUEUE_TIMEOUT = 10.0
"""Seconds from sending a chunk request to the first byte of its answer.  Longer than
:data:`FIRST_BYTE_TIMEOUT`: an uploader with a rate cap sends a few chunks at a time and the
other requests wait in its queue (in a swarm of 16 capped peers, seconds), so a chunk's first
byte may come late from a peer that is working.  A silent peer is found sooner by the policy:
a peer from which no byte came for :data:`FIRST_BYTE_TIMEOUT` while its requests expire is
benched (:meth:`PeerStanding.delivering`)."""

PROGRESS_TIMEOUT = 2.0
"""Seconds without a byte after which a transfer in progress counts as stalled (the picker's
``stall_timeout`` and the transports' read timeout): a few round trips and disk reads, while a
peer that is merely slow still sends something every fraction of a second."""

STALL_BACKOFF = 2.0
"""Seconds a peer is benched after its first stall; each further stall doubles it..."""

STALL_BACKOFF_MAX = 30.0
"""... up to this: a peer that stalls again and again is tried twice a minute."""

MAX_CONNECTING = 16
"""Connections being made at once (transport negotiation, properties, map): enough to reach a
swarm's peer list in one round, few enough that a list of silent peers costs bounded work."""

MAX_CONNECTING_PER_HOST = 2
"""Connections being made at once to the PeerIDs of one host (our own excepted: peers side by
side on this machine): a host registering hundreds of silent PeerIDs (an eclipse) holds two
attempts, not hundreds, and the other hosts' peers are reached first."""

MAX_PEX_PEERS = 64
"""PEX candidates a book keeps (tried or not): the bound of what one download learns by PEX,
``ppsp.peer.ppspp.pex.MAX_PEX_CANDIDATES`` (not imported: the PPSPP engines' package is not
loaded by a download over HTTP)."""

MAX_FOUND_PEERS = 64
"""Peers a book takes from other peers' FIND answers in all (tried or not): the bound of what
one download learns from peers besides the tracker, as :data:`MAX_PEX_PEERS` is by PEX.  A
peer answering every FIND with invented PeerIDs fills this, not the memory, and the
connections its inventions cost are bounded by it (each is tried until it fails
:data:`MAX_FAILURES` times)."""

MAX_FOUND_PER_HOST = 4
"""Peers a book takes from FIND answers at one host (:func:`~ppsp.core.hosts.host_key`; this
peer's own host excepted): a few peers behind one NAT, not a port scan of a victim host by
every downloader a liar answers."""

MAX_PEX_CONNECTING = 4
"""PEX candidates tried at once (their handshakes outstanding): a PEX answer naming many
silent addresses holds this many connection slots, not :data:`MAX_CONNECTING`."""

BUSY_BACKOFF = 1.0
"""Seconds a peer that answered busy (503, 429) without a ``Retry-After`` is left alone; a
``Retry-After`` it gives is taken up to :data:`STALL_BACKOFF_MAX`, and never below
:data:`BUSY_BACKOFF_MIN` (doubled for each busy answer in a row)."""

BUSY_BACKOFF_MIN = 0.25
"""Least seconds a peer that answered busy is left alone, whatever its ``Retry-After`` says
(``0`` included: taken at its word, a peer answering busy at once to every request would be
asked again at once, in a loop as fast as the network).  It doubles with each busy answer in a
row (:attr:`PeerStanding.busy_answers`; a busy answer to a request sent before the rest began
does not count again), up to :data:`BUSY_BACKOFF_MAX`, and starts again once chunk bytes
arrive from the peer.  A quarter of a second: a fair seeder refuses only when its queue for our
host is full, and its queue moves in about that time."""

BUSY_BACKOFF_MAX = 8.0
"""... at most this: a peer that answers busy again and again is asked about eight times a
minute, while one whose queue frees up is asked again within seconds."""


class PeerStanding:
    """What this peer knows and thinks of one remote peer of a swarm."""

    __slots__ = (
        "advertised_rate",
        "banned",
        "behind_nat",
        "benched_until",
        "busy_answers",
        "chunks",
        "connected",
        "connecting",
        "dropped",
        "failures",
        "found",
        "host",
        "last_bytes_at",
        "last_map_at",
        "map_version",
        "peer_id",
        "pex",
        "ppspp_addresses",
        "stalls",
    )

    def __init__(self, peer_id: str, host: str | None = None) -> None:
        self.peer_id = peer_id
        self.host = host
        """The host (:func:`~ppsp.core.hosts.host_key`) of the address the peer is reached at;
        None when not known."""
        self.failures = 0
        """Connections, exchanges and transfers with the peer that did not succeed."""
        self.last_bytes_at = float("-inf")
        """When chunk bytes last arrived from the peer."""
        self.banned = False
        """Never used again: it failed :data:`MAX_FAILURES` times or sent forged bytes."""
        self.connecting = False
        """A connection (transport negotiation, properties, chunk map) is being made."""
        self.connected = False
        """A transport was negotiated: chunks may be asked of the peer."""
        self.behind_nat = False
        """The peer registered a REFLEXIVE PPSPP address (STUN told it its socket is seen at
        another address): its HTTP address is likely private, so what only HTTP can carry
        (the description) is asked of it last, and an HTTP request to it that finds nobody is
        not held against it (it is reached over PPSPP, through its NAT)."""
        self.chunks: ChunkBitmap | None = None
        """The chunk map the peer announced last (None: none yet)."""
        self.map_version = 0
        """Counts the chunk maps received, so that a reader can tell a new one."""
        self.last_map_at = 0.0
        """When the last chunk map arrived (the caller's clock)."""
        self.advertised_rate: float | None = None
        """The upload rate the peer advertised (bytes per second), untrusted."""
        self.stalls = 0
        """Connections and requests to the peer that timed out (each doubles its back-off)."""
        self.benched_until = -math.inf
        """Until when the peer is neither connected nor asked (the caller's clock)."""
        self.busy_answers = 0
        """Busy answers in a row (:meth:`rest`), since chunk bytes last arrived."""
        self.pex = False
        """A PEX candidate (:meth:`PeerBook.add_pex`): an address another peer named, not a
        listed peer; reached over PPSPP only."""
        self.dropped = False
        """Never connected to again: a PEX candidate whose one try failed."""
        self.found = False
        """Learnt from another peer's FIND answer (:meth:`PeerBook.take_found`), not listed by
        the tracker: passed on to others only once reached."""
        self.ppspp_addresses: set[tuple[str, int]] = set()
        """The PPSPP addresses the peer registered or was reached at (:func:`ppspp_address`
        form): a PEX candidate at one of them is this peer."""

    def __repr__(self) -> str:
        return (
            f"PeerStanding({self.peer_id!r}, failures={self.failures}, banned={self.banned}, "
            f"connected={self.connected})"
        )

    def add_ppspp_address(self, host: str, port: int) -> None:
        """The peer registered, or was reached at, PPSPP address ``(host, port)``."""
        address = ppspp_address(host, port)
        if address is not None:
            self.ppspp_addresses.add(address)

    def drop(self) -> None:
        """A PEX candidate's try failed: it is not tried again (no stall, no failure, no ban:
        an address a peer named that does not answer proves nothing against anyone)."""
        self.connecting = False
        self.dropped = True

    def fail(self) -> bool:
        """Count one failure; True when it bans the peer (the :data:`MAX_FAILURES`-th)."""
        self.failures += 1
        if self.failures >= MAX_FAILURES and not self.banned:
            self.banned = True
            return True
        return False

    def ban(self) -> bool:
        """Ban the peer at once (it sent forged bytes); True when it was not banned yet."""
        if self.banned:
            return False
        self.banned = True
        return True

    def stall(self, now: float) -> float:
        """Count a stall at ``now`` (a timeout); the peer is benched until the time returned.

        The back-off is :data:`STALL_BACKOFF` doubled at each stall, at most
        :data:`STALL_BACKOFF_MAX`.  A stall in the back-off just past does not add up (the
        requests of one stall time out together).
        """
        if now < self.benched_until:
            return self.benched_until
        self.stalls += 1
        backoff = min(STALL_BACKOFF * 2 ** min(self.stalls - 1, 16), STALL_BACKOFF_MAX)
        self.benched_until = now + backoff
        return self.benched_until

    def rest(self, now: float, retry_after: float | None) -> float:
        """The peer answered busy at ``now``: leave it alone for ``retry_after`` seconds
        (:data:`BUSY_BACKOFF` when None, at most :data:`STALL_BACKOFF_MAX`), and at least
        :data:`BUSY_BACKOFF_MIN` doubled for each busy answer in a row (at most
        :data:`BUSY_BACKOFF_MAX`), without counting a stall or a failure; returns until when.

        A busy answer that comes while the peer rests (to a request sent before) does not
        count in the row: the requests in flight when a peer turns busy are answered together.
        """
        wait = BUSY_BACKOFF if retry_after is None else max(retry_after, 0.0)
        if now < self.benched_until:  # an answer to a request sent before the rest began
            self.benched_until = max(self.benched_until, now + min(wait, STALL_BACKOFF_MAX))
            return self.benched_until
        self.busy_answers += 1
        floor = min(BUSY_BACKOFF_MIN * 2 ** min(self.busy_answers - 1, 16), BUSY_BACKOFF_MAX)
        self.benched_until = now + min(max(wait, floor), STALL_BACKOFF_MAX)
        return self.benched_until

    def sent_bytes(self, now: float) -> None:
        """Chunk bytes arrived from the peer at ``now``: it delivers (see :meth:`delivering`),
        and a row of busy answers is over."""
        self.last_bytes_at = now
        self.busy_answers = 0

    def delivering(self, now: float) -> bool:
        """Whether chunk bytes arrived from the peer in the last :data:`FIRST_BYTE_TIMEOUT`
        seconds: a request of such a peer that times out waited in its queue behind others
        (it is busy, not silent), so it neither benches the peer nor counts as a failure."""
        return now - self.last_bytes_at < FIRST_BYTE_TIMEOUT

    def benched(self, now: float) -> bool:
        """Whether the peer is in a back-off at ``now`` (not connected to, not asked)."""
        return now < self.benched_until

    def may_connect(self, now: float) -> bool:
        """Whether a connection may be tried at ``now``: :attr:`connectable`, not benched."""
        return self.connectable and not self.benched(now)

    @property
    def connectable(self) -> bool:
        """Whether a connection may be tried: none made or being made, not banned."""
        return not (self.connected or self.connecting or self.banned or self.dropped) and (
            self.failures < MAX_FAILURES
        )

    @property
    def usable(self) -> bool:
        """Whether chunks may be asked of the peer: connected and not banned."""
        return self.connected and not self.banned

    def set_map(self, chunks: ChunkBitmap, now: float) -> None:
        """Record a chunk map the peer announced at ``now``."""
        self.chunks = chunks
        self.map_version += 1
        self.last_map_at = now


def _host_of(address: str | None) -> str | None:
    """The host key of ``address`` (an IP address), None when it is none."""
    if not address:
        return None
    try:
        return host_key(address.partition("%")[0])
    except ValueError:
        return None


def ppspp_address(host: str, port: int) -> tuple[str, int] | None:
    """``(host, port)`` with the host in its canonical form (an IPv6 zone dropped), so that
    two spellings of one address are equal; None when ``host`` is no IP address."""
    try:
        return str(ip_address(host.partition("%")[0])), port
    except ValueError:
        return None


def pex_name(host: str, port: int) -> str:
    """The name of the PEX candidate at ``(host, port)``: ``pex:HOST:PORT`` (an IPv6 host in
    brackets).  No PeerID has a colon (they are hex), so it names no listed peer."""
    return f"pex:[{host}]:{port}" if ":" in host else f"pex:{host}:{port}"


class PeerBook:
    """The standings of a swarm session's remote peers, in the order they became known.

    ``banned_hosts`` are hosts banned before (carried over from an earlier session of the same
    swarm); :attr:`local_host` is this peer's own address, whose host is never banned.
    """

    __slots__ = (
        "_banned_hosts",
        "_corrupt",
        "_endpoints",
        "_found",
        "_found_hosts",
        "_local",
        "_peers",
        "_pex",
    )

    def __init__(self, *, banned_hosts: Iterable[str] = ()) -> None:
        self._peers: dict[str, PeerStanding] = {}
        self._corrupt: dict[str, int] = {}
        self._banned_hosts: set[str] = {key for h in banned_hosts if (key := _host_of(h))}
        self._local: str | None = None
        self._pex: dict[str, PeerStanding] = {}  # the PEX candidates among _peers
        self._endpoints: set[tuple[str, int]] = set()  # (address, port) of the peers added
        self._found = 0  # found peers taken (take_found)
        self._found_hosts: dict[str, int] = {}  # ... per host

    @property
    def local_host(self) -> str | None:
        """The host this peer itself is reached at (never banned); None while not known."""
        return self._local

    @local_host.setter
    def local_host(self, address: str | None) -> None:
        self._local = _host_of(address)
        self._banned_hosts.discard(self._local or "")

    @property
    def banned_hosts(self) -> frozenset[str]:
        """The hosts whose peers are never connected to nor asked (host keys)."""
        return frozenset(self._banned_hosts)

    def add(
        self, peer_id: str, address: str | None = None, port: int | None = None
    ) -> PeerStanding:
        """The standing of ``peer_id``, created when the peer is new.

        ``address`` is the IP address the peer is reached at (where its endpoint is, on
        ``port``); a peer at a banned host is banned from the start.
        """
        standing = self._peers.get(peer_id)
        if standing is None:
            standing = self._peers[peer_id] = PeerStanding(peer_id)
        if standing.host is None:
            standing.host = _host_of(address)
        endpoint = None if address is None or port is None else ppspp_address(address, port)
        if endpoint is not None:
            self._endpoints.add(endpoint)
        if standing.host is not None and standing.host in self._banned_hosts:
            standing.banned = True
        return standing

    def ban_host(self, peer_id: str) -> list[PeerStanding]:
        """Ban ``peer_id``'s host (it sent corrupt bytes): the other peers there, newly banned.

        Peers listed at that host later are banned as they are added (:meth:`add`).  Nothing
        is banned by host when the peer's host is unknown or is this peer's own.  Each call
        counts one piece of corrupt data from ``peer_id`` for the tracker (:meth:`take_corrupt`).
        """
        if peer_id in self._corrupt:
            self._corrupt[peer_id] += 1
        elif len(self._corrupt) < MAX_CORRUPT_KEPT:
            self._corrupt[peer_id] = 1
        standing = self._peers.get(peer_id)
        host = None if standing is None else standing.host
        if host is None or host == self._local:
            return []
        self._banned_hosts.add(host)
        banned = []
        for other in self._peers.values():
            if other.host == host and other.ban():
                banned.append(other)
        return [other for other in banned if other.peer_id != peer_id]

    def add_pex(self, host: str, port: int) -> PeerStanding | None:
        """A PEX candidate at ``(host, port)``: its new standing (:func:`pex_name`), or None
        when it is no new peer (known already, as a candidate or as a peer registered or
        reached at that PPSPP address), its host is banned, or :data:`MAX_PEX_PEERS`
        candidates are known.  It is connected to like a listed peer, at most
        :data:`MAX_PEX_CONNECTING` at once (:meth:`to_connect`)."""
        address = ppspp_address(host, port)
        if address is None:
            return None
        name = pex_name(*address)
        peers = self._peers.values()
        if name in self._peers or any(address in s.ppspp_addresses for s in peers):
            return None
        key = _host_of(address[0])
        if (key is not None and key in self._banned_hosts) or len(self._pex) >= MAX_PEX_PEERS:
            return None
        standing = self._peers[name] = self._pex[name] = PeerStanding(name, key)
        standing.pex = True
        standing.ppspp_addresses.add(address)
        return standing

    def take_found(
        self,
        entries: Iterable[tuple[str | None, str | None, int | None]],
        most: int = DEFAULT_MAX_PEERS,
    ) -> list[int]:
        """The entries of another peer's FIND answer to take, by index: ``entries`` are its
        peers' (PeerID, IP address, port) in its order; each one taken is added to the book as
        a found peer (:attr:`PeerStanding.found`), its standing returned by :meth:`add`.

        Taken are at most ``most`` new peers of the answer, within :data:`MAX_FOUND_PEERS` in
        all and :data:`MAX_FOUND_PER_HOST` per host (this peer's own host unbounded); a known
        PeerID, an entry without an IP address or port, one at a banned host and one at the
        endpoint of a known peer are not.
        """
        taken: list[int] = []
        for index, (peer_id, address, port) in enumerate(entries):
            if len(taken) >= most or self._found >= MAX_FOUND_PEERS:
                break
            endpoint = None if address is None or port is None else ppspp_address(address, port)
            if peer_id is None or peer_id in self._peers or endpoint is None:
                continue
            host = _host_of(endpoint[0])
            if endpoint in self._endpoints or host is None or host in self._banned_hosts:
                continue
            count = self._found_hosts.get(host, 0)
            if count >= MAX_FOUND_PER_HOST and host != self._local:
                continue
            self._found_hosts[host] = count + 1
            self._found += 1
            self.add(peer_id, *endpoint).found = True
            taken.append(index)
        return taken

    def listed_at(self, standing: PeerStanding) -> None:
        """``standing`` (a listed peer) has its PPSPP addresses: a PEX candidate taken earlier
        at one of them and not tried yet is that peer, and is dropped (never tried)."""
        for other in self._pex.values():
            if (
                other is not standing
                and not (other.connected or other.connecting)
                and not other.ppspp_addresses.isdisjoint(standing.ppspp_addresses)
            ):
                other.drop()

    def take_corrupt(self) -> list[tuple[str, int]]:
        """The peers that sent corrupt data since the last call, with how many pieces each
        (chunks, live envelopes), oldest first; the counts start again from zero."""
        taken = list(self._corrupt.items())
        self._corrupt.clear()
        return taken

    def get(self, peer_id: str) -> PeerStanding | None:
        """The standing of ``peer_id``, None when the peer is unknown."""
        return self._peers.get(peer_id)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._peers

    def __iter__(self) -> Iterator[PeerStanding]:
        return iter(self._peers.values())

    def __len__(self) -> int:
        return len(self._peers)

    def to_connect(self, now: float) -> list[PeerStanding]:
        """The peers to start connecting to at ``now``: those that may be connected to
        (:meth:`PeerStanding.may_connect`), in the order they became known, within
        :data:`MAX_CONNECTING` connections being made in all,
        :data:`MAX_CONNECTING_PER_HOST` per host (this peer's own host unbounded) and
        :data:`MAX_PEX_CONNECTING` to PEX candidates."""
        connecting = pex = 0
        per_host: dict[str, int] = {}
        for standing in self._peers.values():
            if standing.connecting:
                connecting += 1
                pex += standing.pex
                if standing.host is not None:
                    per_host[standing.host] = per_host.get(standing.host, 0) + 1
        chosen: list[PeerStanding] = []
        for standing in self._peers.values():
            if connecting >= MAX_CONNECTING:
                break
            if not standing.may_connect(now) or (standing.pex and pex >= MAX_PEX_CONNECTING):
                continue
            host = standing.host
            if host is not None and host != self._local:
                if per_host.get(host, 0) >= MAX_CONNECTING_PER_HOST:
                    continue
                per_host[host] = per_host.get(host, 0) + 1
            connecting += 1
            pex += standing.pex
            chosen.append(standing)
        return chosen

    def usable(self) -> list[PeerStanding]:
        """Peers chunks may be asked of (connected, not banned)."""
        return [standing for standing in self._peers.values() if standing.usable]

    def next_release(self, now: float) -> float | None:
        """When the first peer benched at ``now`` comes back (None: none is benched)."""
        ends = [s.benched_until for s in self._peers.values() if s.benched_until > now]
        return min(ends) if ends else None
