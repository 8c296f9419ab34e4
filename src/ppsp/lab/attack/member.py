"""A fake swarm member's HTTP endpoint: the peer protocol answered, chunks not served honestly.

The peer protocol (``POST /``) is answered by the project's own sans-I/O
:class:`~ppsp.peer.protocol.handler.PeerProtocolHandler` over a :class:`FakeState` that claims
whatever chunk map the attacker sets; the description is the real one (fetched from a member);
a chunk request (``GET /swarm/{id}/chunk/{rep}/{index}``) is answered as :class:`Chunks` says:

- ``HANG``: the request is held without a byte until the member stops (a tarpit relay);
- ``CORRUPT``: random bytes of the chunk's length (stored content) or an envelope with a
  random signature (live);
- ``NONE``: 404 (a member that holds nothing).
"""

from __future__ import annotations

import asyncio
import enum
import os
import time
from collections.abc import Mapping, Sequence

from aiohttp import web

from ppsp.codecs.peer_xml import CONTENT_TYPE as PEER_CONTENT_TYPE
from ppsp.lab.attack.common import Tally
from ppsp.peer.content.description import ContentDescription
from ppsp.peer.live.envelope import ChunkEnvelope
from ppsp.peer.live.identity import SIGNATURE_SIZE, LiveDescription
from ppsp.peer.protocol.handler import KnownPeer, PeerProtocolHandler
from ppsp.wire.peer import HTTP, RepresentationMap, TransportOffer

MAX_BODY = 1 << 20
"""Largest peer protocol request the fake member reads."""
LIVE_PAYLOAD = 32 * 1024
"""Payload bytes of a forged live envelope."""


class Chunks(enum.Enum):
    """How the fake member answers chunk requests (see the module docstring)."""

    HANG = "hang"
    CORRUPT = "corrupt"
    NONE = "none"


class FakeState:
    """The :class:`~ppsp.peer.protocol.handler.PeerState` of a fake member: one swarm, a map
    it claims, no other peers known, the HTTP transport at its own address."""

    def __init__(self, peer_id: str, swarm_id: str, base_url: str) -> None:
        self._peer_id = peer_id
        self.swarm_id = swarm_id
        self.base_url = base_url
        self.claimed: tuple[RepresentationMap, ...] = ()

    @property
    def peer_id(self) -> str:
        """This member's PeerID."""
        return self._peer_id

    def has_swarm(self, swarm_id: str) -> bool:
        """Only the attacked swarm."""
        return swarm_id == self.swarm_id

    def chunk_map(self, swarm_id: str) -> tuple[RepresentationMap, ...]:
        """The map the attacker claims."""
        return self.claimed

    def known_peers(self, swarm_id: str) -> Sequence[KnownPeer]:
        """None: a fake member refers nobody."""
        return ()

    def store_peer_map(
        self, swarm_id: str, peer_id: str, chunk_map: tuple[RepresentationMap, ...], now: float
    ) -> None:
        """Nothing is remembered."""

    def peer_hosts(self, swarm_id: str, peer_id: str) -> frozenset[str] | None:
        """No peer is known."""
        return None

    def exchanges_chunks(self, swarm_id: str, peer_id: str) -> bool:
        """Never."""
        return False

    def learn_peers(self, swarm_id: str) -> None:
        """No look-ups."""

    def property_values(self, swarm_id: str, now: float) -> Mapping[str, str]:
        """No properties."""
        return {}

    def transports(self, swarm_id: str) -> Sequence[TransportOffer]:
        """The HTTP transport at this member's address."""
        template = f"{self.base_url}/swarm/{swarm_id}/chunk/{{representation}}/{{chunk}}"
        return (TransportOffer(type=HTTP, uri=template),)


class FakeMember:
    """A fake member's endpoint on ``ip`` (see the module docstring); start, then stop."""

    def __init__(
        self, *, ip: str, peer_id: str, swarm_id: str, chunks: Chunks, tally: Tally
    ) -> None:
        self.ip = ip
        self.chunks = chunks
        self.tally = tally
        self.state = FakeState(peer_id, swarm_id, "")
        self.handler = PeerProtocolHandler(self.state)
        self.description: bytes | None = None
        self.parsed: ContentDescription | LiveDescription | None = None
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._blocks: dict[int, bytes] = {}
        self._stopping = asyncio.Event()

    async def start(self) -> int:
        """Listen on ``ip`` (any port); returns the port."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/", self._protocol)
        app.router.add_get("/swarm/{swarm}/description", self._description)
        app.router.add_get("/swarm/{swarm}/chunk/{representation}/{index}", self._chunk)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.ip, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.state.base_url = f"http://{self.ip}:{self.port}"
        return self.port

    async def stop(self) -> None:
        """Release every held request and stop listening."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _protocol(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.tally.add("protocol_requests")
        status, answer = self.handler.handle_bytes(body, time.monotonic(), host=request.remote)
        return web.Response(status=status, body=answer, content_type=PEER_CONTENT_TYPE)

    async def _description(self, request: web.Request) -> web.Response:
        if self.description is None or request.match_info["swarm"] != self.state.swarm_id:
            raise web.HTTPNotFound()
        return web.Response(body=self.description, content_type="application/json")

    async def _chunk(self, request: web.Request) -> web.StreamResponse:
        try:
            index = int(request.match_info["index"])
        except ValueError:
            raise web.HTTPNotFound() from None
        if request.match_info["swarm"] != self.state.swarm_id or self.chunks is Chunks.NONE:
            raise web.HTTPNotFound()
        if self.chunks is Chunks.HANG:
            self.tally.add("chunk_requests_held")
            await self._stopping.wait()  # never a byte; cancelled when the member stops
            raise web.HTTPServiceUnavailable()
        data = self._damaged(index)
        if data is None:
            raise web.HTTPNotFound()
        self.tally.add("damaged_chunks_served")
        self.tally.add("damaged_bytes_served", len(data))
        return web.Response(body=data, content_type="application/octet-stream")

    def _block(self, length: int) -> bytes:
        """Random bytes of ``length`` (drawn once per length: any bytes fail verification)."""
        block = self._blocks.get(length)
        if block is None:
            block = self._blocks[length] = os.urandom(length)
        return block

    def _damaged(self, index: int) -> bytes | None:
        """A damaged chunk ``index``: random bytes, or a forged envelope (None: no such chunk)."""
        parsed = self.parsed
        if isinstance(parsed, LiveDescription):
            envelope = ChunkEnvelope(
                index=index,
                timestamp_ms=int(time.time() * 1000),
                signature=self._block(SIGNATURE_SIZE),
                payload=self._block(LIVE_PAYLOAD),
            )
            return envelope.encode()
        if isinstance(parsed, ContentDescription):
            if not 0 <= index < parsed.chunk_count:
                return None
            length = min(parsed.chunk_size, parsed.size - index * parsed.chunk_size)
            return self._block(length)
        return None
