"""A downloading peer serves over PPSPP what it holds: the I/O around a partial seeding engine.

The peer's PPSPP channels share one UDP socket (:class:`~ppsp.peer.net.ppspp_transport.
PpsppClientSocket`), whose address is the one a NAT maps and STUN learns.  Other peers reach
this peer's content on that same socket: :class:`PartialServer` runs a
:class:`~ppsp.peer.ppspp.seeder.Seeder` on it, taking the datagrams that are not for one of the
peer's own channels (a HANDSHAKE on channel 0, or a datagram on one of the engine's channels
from that channel's address), through the socket's ``intercept`` hook, chained after any
other (STUN's).

:class:`PartialServing` prepares the content once the download can name it: the PPSPP root
and chunk size a chunk verified under (from a seeder's offer, checked against the
description), the subtree hashes fetched from a peer that offered that root
(``GET /swarm/{swarm}/ppspp/{root}/subtrees``, checked against the root), or computed from
the file once every chunk is held.  It then serves a
:class:`~ppsp.peer.ppspp.partial.PartialContent` whose held chunks are the session's (its
store and download: the one record), announces each description chunk newly stored (HAVE),
offers PPSPP in its TRANSPORT_NEGOTIATION answers and answers the subtrees route itself.
With a TURN relay (``ppsp get --turn``, :meth:`PartialServing.add_relay`) the same content is
served through it as well, by the relay's own engine
(:class:`~ppsp.peer.net.ppspp_relay.PpsppRelay`), told of the same chunks newly held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ppsp.codecs.ppspp import peek_channel
from ppsp.errors import HttpClientError, IntegrityError, PPSPError, PPSPPError
from ppsp.http.client import Timeout
from ppsp.peer.net.limiter import upload_pacer
from ppsp.peer.net.ppspp_uploads import PpsppUploads
from ppsp.peer.ppspp import SeededContent, Seeder, SeederConfig
from ppsp.peer.ppspp.channel import Address
from ppsp.peer.ppspp.partial import (
    PartialContent,
    SubtreeHashes,
    cover_bins,
    encode_subtrees,
    subtree_hashes_of_tree,
    subtree_level,
)
from ppsp.peer.upload.pacing import UploadPacer
from ppsp.wire.ppspp import MerkleHashFunction

if TYPE_CHECKING:
    from ppsp.http.client import HttpClient
    from ppsp.peer.net.node import PeerNode
    from ppsp.peer.net.ppspp_relay import PpsppRelay
    from ppsp.peer.net.ppspp_transport import PpsppClientSocket
    from ppsp.peer.net.session import SwarmSession

__all__ = [
    "SUBTREES_TIMEOUT",
    "PartialServer",
    "PartialServing",
    "fetch_subtrees",
    "offer_subtrees",
    "serve_while_downloading",
]

log = logging.getLogger(__name__)

SUBTREES_TIMEOUT = Timeout(total=5.0)
"""How long a fetch of the subtree hashes may take."""

LOOK_INTERVAL = 0.2
"""Seconds between looks for the content's name (a chunk verified over PPSPP)."""

FETCH_INTERVAL = 2.0
"""Seconds between rounds of attempts to get the subtree hashes (each asks every peer that
offers the root, in turn, until one gives hashes that verify)."""


class PartialServer:
    """A seeding engine on a downloading peer's PPSPP socket (see the module docstring)."""

    def __init__(
        self,
        endpoint: PpsppClientSocket,
        config: SeederConfig | None = None,
        pacer: UploadPacer | None = None,
    ) -> None:
        self.seeder = Seeder((), config=config, pacer=pacer)
        self._endpoint = endpoint
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self.seeder.timestamp_offset = time.time() - self._loop.time()
        self._previous = endpoint.intercept
        endpoint.intercept = self._intercept

    def _intercept(self, data: bytes, source: Address) -> bool:
        previous = self._previous
        if previous is not None and previous(data, source):
            return True
        if not self._claims(data, source):
            return False
        self.seeder.datagram_received(data, source, self._loop.time())
        self._flush()
        return True

    def _claims(self, data: bytes, source: Address) -> bool:
        """Whether a datagram is the engine's: a channel-0 datagram (a HANDSHAKE opening a
        channel, or a punch) once it serves something, or one on an engine channel from that
        channel's address.  Our own channels' IDs are never 0."""
        try:
            channel_id = peek_channel(data)
        except PPSPPError:
            return False
        if channel_id == 0:
            return self.seeder.serving
        return self.seeder.channel_of(channel_id, source)

    @property
    def address(self) -> tuple[str, int]:
        """The socket's local address."""
        return self._endpoint.address

    @property
    def port(self) -> int:
        """The socket's UDP port."""
        return self._endpoint.address[1]

    def add(self, content: PartialContent) -> None:
        """Serve ``content`` from now on."""
        self.seeder.add_content(content)

    def announce(self, content: PartialContent, description_index: int) -> None:
        """Description chunk ``description_index`` of ``content`` is newly held: HAVE."""
        self.seeder.announce(content.swarm_id, content.span(description_index), self._loop.time())
        self._flush()

    def _on_timer(self) -> None:
        self._timer = None
        self.seeder.handle_timer(self._loop.time())
        self._flush()

    def _flush(self) -> None:
        if self._endpoint.closed:
            return
        for address, data in self.seeder.datagrams_to_send():
            self._endpoint.sendto(data, address)
        deadline = self.seeder.next_deadline()
        timer = self._timer
        if timer is not None and (deadline is None or timer.when() != deadline):
            timer.cancel()
            self._timer = timer = None
        if deadline is not None and timer is None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def close(self) -> None:
        """Tell established peers goodbye and stop taking datagrams."""
        self.seeder.close_all(self._loop.time())
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._endpoint.intercept == self._intercept:
            self._endpoint.intercept = self._previous


async def fetch_subtrees(
    http: HttpClient,
    base_url: str,
    swarm_id: str,
    root_hash: bytes,
    *,
    chunk_count: int,
    level: int,
) -> SubtreeHashes:
    """GET the subtree hashes of PPSPP content ``root_hash`` from the peer at ``base_url``,
    read at most their exact size, and check them against the root.  IntegrityError when
    they do not verify, HttpClientError, TimeoutError or OSError when the peer has none or
    cannot be asked."""
    expected = len(cover_bins(chunk_count, level)) * MerkleHashFunction.SHA256.digest_size
    url = f"{base_url}/swarm/{swarm_id}/ppspp/{root_hash.hex()}/subtrees"
    async with http.get(url, timeout=SUBTREES_TIMEOUT) as answer:
        if answer.status != 200:
            raise HttpClientError(f"{url}: status {answer.status}")
        data = await answer.read(expected)
    return SubtreeHashes.decode(data, root_hash, chunk_count=chunk_count, level=level)


class PartialServing:
    """What a downloading peer does to serve its swarm's content over PPSPP while it
    downloads it (see the module docstring).

    ``verified`` gives the PPSPP root hash and chunk size the download verified a chunk
    under (None until then).  ``on_ready`` is told the content and the socket's address once
    the content is served.
    """

    def __init__(
        self,
        node: PeerNode,
        server: PartialServer,
        verified: Callable[[], tuple[bytes, int] | None],
        *,
        on_ready: Callable[[PartialContent, tuple[str, int]], None] | None = None,
    ) -> None:
        self.node = node
        self.server = server
        self.verified = verified
        self.on_ready = on_ready
        self.content: PartialContent | None = None
        """The content served, once ready."""
        self.uploads: PpsppUploads | None = None
        """Its DATA counted in the session's report, once served."""
        self.relays: list[PpsppRelay] = []
        """TURN relays the content is also served through (:meth:`add_relay`)."""
        self._waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[PartialContent | None] | None = None
        self._computed = False
        self.failures = 0
        """Subtree hashes that could not be fetched or did not verify."""

    @classmethod
    def start(
        cls,
        node: PeerNode,
        endpoint: PpsppClientSocket,
        swarm_id: str,
        verified: Callable[[], tuple[bytes, int] | None],
        *,
        on_ready: Callable[[PartialContent, tuple[str, int]], None] | None = None,
    ) -> PartialServing:
        """Serve ``swarm_id``'s content on ``endpoint`` (the socket of the download's PPSPP
        channels) as soon as it can be named (``verified``, as for the constructor):
        :meth:`run` in a task; :meth:`stop` ends it."""
        server = PartialServer(endpoint, pacer=upload_pacer(node.upload_limiter))
        serving = cls(node, server, verified, on_ready=on_ready)
        serving._task = asyncio.get_running_loop().create_task(serving.run(swarm_id))
        return serving

    def add_relay(self, relay: PpsppRelay) -> None:
        """Serve the content through ``relay`` too (its own engine): at once when it is
        served already, otherwise when it is; its DATA are counted as the socket's."""
        self.relays.append(relay)
        if self.content is not None:
            relay.add(self.content)
        if self.uploads is not None:
            self.uploads.attach(relay.seeder)

    def counts(self) -> dict[str, int]:
        """The engine's counts (DATA sent, channels, drops by kind) and the subtree hashes'
        failures, for ``--report``."""
        uploads = {} if self.uploads is None else self.uploads.counts()
        return {
            **self.server.seeder.stats,
            "subtree_failures": self.failures,
            **{f"attribution_{key}": value for key, value in uploads.items()},
        }

    def stop(self) -> None:
        """Stop trying, stop announcing, and close the engine (peers are told)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.close()
        self.server.close()
        if self.uploads is not None:
            self.uploads.close()  # before the report: what is unresolved is unattributed

    async def run(self, swarm_id: str) -> PartialContent | None:
        """Wait until the content can be named, get its subtree hashes, and serve it; None
        when partial serving is off for it (a description chunk is no subtree of PPSPP
        chunks).  Runs until then: cancel it to stop trying."""
        node = self.node
        loop = asyncio.get_running_loop()
        next_round = loop.time()
        while True:
            session = node.sessions.get(swarm_id)
            store = None if session is None else session.store
            named = self.verified()
            due = loop.time() >= next_round
            if session is not None and store is not None and named is not None and due:
                root_hash, chunk_size = named
                level = subtree_level(store.description.chunk_size, chunk_size)
                if level is None:
                    log.info(
                        "PPSPP chunks of %d bytes do not divide %d-byte description chunks"
                        " in a power of two: what is held is not served over PPSPP",
                        chunk_size,
                        store.description.chunk_size,
                    )
                    return None
                subtrees = await self._subtrees(session, root_hash, chunk_size, level)
                if subtrees is not None:
                    return self._serve(session, subtrees, chunk_size)
                next_round = loop.time() + FETCH_INTERVAL
            await asyncio.sleep(LOOK_INTERVAL)

    async def _subtrees(
        self, session: SwarmSession, root_hash: bytes, chunk_size: int, level: int
    ) -> SubtreeHashes | None:
        """The subtree hashes from a peer offering ``root_hash``, or computed from the file
        when every chunk is held; None when neither can be had now."""
        from ppsp.peer.net.ppspp_transport import parse_ppspp_uri, representation_content

        store = session.store
        assert store is not None
        count = -(-store.representation.size // chunk_size)
        for remote in list(session.remotes.values()):
            offer = remote.offer
            if offer is None or offer.uri is None or not offer.uri.startswith("ppspp:"):
                continue
            try:
                if parse_ppspp_uri(offer.uri).root_hash != root_hash or not remote.base_url:
                    continue
                return await fetch_subtrees(
                    self.node.http,
                    remote.base_url,
                    session.swarm_id,
                    root_hash,
                    chunk_count=count,
                    level=level,
                )
            except IntegrityError as exc:
                self.failures += 1
                log.warning("peer %s sent subtree hashes that fail: %s", remote.peer_id, exc)
            except (ValueError, PPSPError, TimeoutError, OSError) as exc:
                self.failures += 1
                log.info("no subtree hashes from peer %s: %s", remote.peer_id, exc)
        if session.download is not None and session.download.complete and not self._computed:
            self._computed = True  # one pass over the file, whatever it gives
            content = await asyncio.to_thread(representation_content, store, chunk_size=chunk_size)
            if content.swarm_id == root_hash:
                hashes = subtree_hashes_of_tree(content.tree, level)
                return SubtreeHashes(root_hash, chunk_count=count, level=level, hashes=hashes)
        return None

    def _serve(
        self, session: SwarmSession, subtrees: SubtreeHashes, chunk_size: int
    ) -> PartialContent:
        from ppsp.peer.net.ppspp_transport import StoreChunks

        store = session.store
        assert store is not None
        content = PartialContent(
            subtrees,
            size=store.representation.size,
            chunk_size=chunk_size,
            reader=StoreChunks(store, chunk_size),
            holds=session.have,
        )
        self.content = content
        tracker = self.node.tracker
        swarm_id = session.swarm_id
        self.uploads = PpsppUploads(
            session,
            None if tracker is None else (lambda: tracker.find(swarm_id)),
            roots=[subtrees.root],
        )
        self.uploads.attach(self.server.seeder)
        self.server.add(content)
        for relay in self.relays:
            self.uploads.attach(relay.seeder)
            relay.add(content)
        # Each description chunk not held yet is announced when the session stores it.
        loop = asyncio.get_running_loop()
        for index in range(content.description_chunks):
            if session.have(index):
                continue
            future: asyncio.Future[None] = loop.create_future()
            future.add_done_callback(self._stored_callback(content, index))
            session.waiters.setdefault(index, []).append(future)
            self._waiters.append(future)
        node = self.node
        node.endpoint.offer_subtrees(
            session.swarm_id, subtrees.root, encode_subtrees(subtrees.hashes())
        )
        node.offer_ppspp(session.swarm_id, self.server.port, subtrees.root, chunk_size)
        if self.on_ready is not None:
            self.on_ready(content, self.server.address)
        return content

    def _stored_callback(
        self, content: PartialContent, index: int
    ) -> Callable[[asyncio.Future[None]], None]:
        def stored(future: asyncio.Future[None]) -> None:
            if not future.cancelled():
                self.server.announce(content, index)
                for relay in self.relays:
                    relay.announce(content.swarm_id, content.span(index))

        return stored

    def close(self) -> None:
        """Stop announcing (the server is closed by its owner)."""
        for future in self._waiters:
            future.cancel()
        self._waiters.clear()


def offer_subtrees(node: PeerNode, session: SwarmSession, content: SeededContent) -> None:
    """A seeder: answer ``GET /swarm/ID/ppspp/ROOT/subtrees`` for the swarm's PPSPP
    ``content`` (none when the description's chunks are no subtrees of PPSPP chunks), so that
    downloading peers can serve what they hold of it."""
    assert session.store is not None
    level = subtree_level(session.store.description.chunk_size, content.chunk_size)
    if level is not None:
        body = encode_subtrees(subtree_hashes_of_tree(content.tree, level))
        node.endpoint.offer_subtrees(session.swarm_id, content.swarm_id, body)


def serve_while_downloading(
    node: PeerNode,
    swarm_id: str,
    verified: Callable[[], tuple[bytes, int] | None],
    *,
    on_ready: Callable[[PartialContent, tuple[str, int]], None] | None = None,
) -> PartialServing:
    """A download over PPSPP: open the one UDP socket of its channels now (unless one is,
    ``--stun``'s), so that its port can be offered, and serve what the download holds on it
    as soon as the content can be named (:meth:`PartialServing.start`)."""
    from ppsp.peer.net.ppspp_transport import PpsppClientSocket

    if node.ppspp_endpoint is None:
        node.ppspp_endpoint = PpsppClientSocket(node.chunk_client.local_address)
    return PartialServing.start(node, node.ppspp_endpoint, swarm_id, verified, on_ready=on_ready)
