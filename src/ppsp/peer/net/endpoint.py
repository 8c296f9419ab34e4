"""The peer's HTTP endpoint: the peer protocol, descriptions and chunks, served to other peers.

- ``POST /``: the peer protocol (PPSP-PP/0.1 XML, PROFILE.md), answered by the sans-I/O
  :class:`~ppsp.peer.protocol.handler.PeerProtocolHandler`;
- ``GET /swarm/{swarm}/description``: the content description, self-certified by the swarm ID;
- ``GET /swarm/{swarm}/chunk/{representation}/{index}``: one chunk's bytes (404 when not held),
  the URL template that TRANSPORT_NEGOTIATION hands out for the mandatory HTTP transport.

Stored chunks go out with ``sendfile`` (:func:`send_file_now`, then asyncio's
``loop.sendfile``); under an upload cap a swarm's chunks are sent a few at a time
(:data:`UPLOADS_AT_ONCE`), the requester holding fewest chunks first.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from typing import BinaryIO, Protocol

import aiohttp
from aiohttp import web

from ppsp.codecs.peer_xml import CONTENT_TYPE as PEER_CONTENT_TYPE
from ppsp.errors import ChunkChanged
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.http_common import (
    MAX_PEER_MESSAGE_BYTES,
    PEER_ID_HEADER,
    BodyTooLarge,
    read_bounded,
)
from ppsp.peer.net.limiter import RateLimiter
from ppsp.peer.net.session import LIVE_REPRESENTATION, LiveState, SwarmSession
from ppsp.peer.protocol.handler import PeerProtocolHandler

log = logging.getLogger(__name__)

UPLOAD_PIECE = 16384
"""Bytes written per step when an upload limit paces a chunk."""

UPLOADS_AT_ONCE = 2
"""Chunks of one swarm sent at once under an upload limit; further requests wait their turn.

Sharing a capped upload among every requester at once would finish all their chunks late
together; served in turn, each chunk completes early and its receiver can pass it on sooner.
Waiting requests are served fewest-chunks-held requester first (then in arrival order), so
that peers that joined late catch up and the swarm completes together.
"""


class EndpointOwner(Protocol):
    """What the endpoint reads of its peer (:class:`~ppsp.peer.net.node.PeerNode`)."""

    sessions: dict[str, SwarmSession]
    handler: PeerProtocolHandler
    clock: Callable[[], float]
    upload_limiter: RateLimiter | None
    corrupt_uploads: bool


def send_file_now(
    transport: asyncio.BaseTransport, file: BinaryIO, offset: int, length: int
) -> int:
    """Send what the socket takes at once of ``length`` bytes of ``file`` from ``offset``.

    One non-blocking ``sendfile`` straight onto the transport's socket; the number of bytes
    sent (0 when nothing could be).  Only when the transport has nothing buffered, so that the
    bytes follow everything written before them: asyncio's ``loop.sendfile`` then costs
    several futures and four ``epoll_ctl`` calls per chunk for a chunk that the socket takes
    whole.  Errors are left to the caller's slower path, which reports them.
    """
    if transport.is_closing() or not isinstance(transport, asyncio.WriteTransport):
        return 0
    if transport.get_write_buffer_size():
        return 0
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        return os.sendfile(sock.fileno(), file.fileno(), offset, length)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError:
        return 0  # not a socket sendfile can write to, or a broken one: the slow path tells


def _connected(request: web.Request) -> bool:
    """Whether the client of ``request`` is still there to receive an answer."""
    return request.transport is not None and not request.transport.is_closing()


class PeerEndpoint:
    """The request handlers of a peer's HTTP endpoint (see the module docstring)."""

    def __init__(self, owner: EndpointOwner) -> None:
        self.owner = owner

    def app(self) -> web.Application:
        """The aiohttp application serving the peer protocol, descriptions and chunks."""
        app = web.Application(client_max_size=MAX_PEER_MESSAGE_BYTES)
        app.router.add_post("/", self.handle_protocol)
        app.router.add_route("GET", "/", self.handle_protocol)
        app.router.add_get("/swarm/{swarm}/description", self.handle_description)
        app.router.add_get("/swarm/{swarm}/chunk/{representation}/{index}", self.handle_chunk)
        return app

    async def handle_protocol(self, request: web.Request) -> web.Response:
        """``POST /``: one peer protocol request, answered by the protocol handler."""
        try:
            body = await read_bounded(request.content, MAX_PEER_MESSAGE_BYTES)
        except BodyTooLarge:
            body = b" " * (MAX_PEER_MESSAGE_BYTES + 1)
        except (TimeoutError, aiohttp.ClientError, ValueError):
            body = b""
        # The connection's source address (never a header): whom the request may speak for.
        status, answer = self.owner.handler.handle_bytes(
            body, self.owner.clock(), host=request.remote
        )
        return web.Response(status=status, body=answer, content_type=PEER_CONTENT_TYPE)

    async def handle_description(self, request: web.Request) -> web.Response:
        """``GET /swarm/{swarm}/description``: the swarm's description (404: not known)."""
        session = self.owner.sessions.get(request.match_info["swarm"])
        if session is not None and session.live is not None:
            body = session.live.description.to_bytes()
            return web.Response(body=body, content_type="application/json")
        if session is None or session.description is None:
            raise web.HTTPNotFound()
        return web.Response(body=session.description.to_bytes(), content_type="application/json")

    async def handle_chunk(self, request: web.Request) -> web.StreamResponse:
        """``GET /swarm/{swarm}/chunk/{representation}/{index}``: a held chunk (404: not)."""
        owner = self.owner
        session = owner.sessions.get(request.match_info["swarm"])
        try:
            index = int(request.match_info["index"])
        except ValueError:
            raise web.HTTPNotFound() from None
        if session is not None and session.live is not None:
            return await self._serve_live_chunk(request, session, session.live, index)
        if (
            session is None
            or session.store is None
            or session.description is None
            or request.match_info["representation"] != session.representation_id
            or not session.have(index)
        ):
            raise web.HTTPNotFound()
        requester = request.headers.get(PEER_ID_HEADER, "")[:64]
        try:
            if owner.upload_limiter is None and not owner.corrupt_uploads:
                return await self._send_stored_chunk(
                    request, session, session.store, requester, index
                )
            data = session.store.read(index)
        except ChunkChanged as exc:
            if len(session.store.changed_chunks) == 1:  # say it once, not per request
                log.warning("%s; chunks that no longer match are not served", exc)
            raise web.HTTPNotFound() from None
        session.served_chunks += 1
        if owner.corrupt_uploads:
            data = bytes(b ^ 0x5A for b in data)
        limiter = owner.upload_limiter
        if limiter is None:
            self._count_upload(session, requester, len(data))
            return web.Response(body=data, content_type="application/octet-stream")
        response = web.StreamResponse()
        response.content_type = "application/octet-stream"
        response.content_length = len(data)
        if session.uploads_active < UPLOADS_AT_ONCE:
            session.uploads_active += 1
        else:
            # Wait for a finishing upload to hand its turn over (see UPLOADS_AT_ONCE).
            remote = session.remotes.get(requester)
            held = len(remote.bitmap) if remote is not None and remote.bitmap else 0
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            session.upload_turns += 1
            heapq.heappush(session.upload_waiters, (held, session.upload_turns, turn))
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._next_upload(session)  # the turn came: pass it on
                turn.cancel()
                raise
        try:
            transport = request.transport
            if transport is None or transport.is_closing():
                return response  # the requester gave up while waiting its turn
            await response.prepare(request)
            for offset in range(0, len(data), UPLOAD_PIECE):
                piece = data[offset : offset + UPLOAD_PIECE]
                await limiter.consume(len(piece))
                await response.write(piece)
                self._count_upload(session, requester, len(piece))
            await response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            # The requester gave up on this chunk (an endgame duplicate it cancelled, or
            # it left): nothing more to send.
            pass
        finally:
            self._next_upload(session)
        return response

    @staticmethod
    def _next_upload(session: SwarmSession) -> None:
        """An upload finished: hand its turn to the first waiting request, or free it."""
        while session.upload_waiters:
            _, _, turn = heapq.heappop(session.upload_waiters)
            if not turn.done():
                turn.set_result(None)
                return
        session.uploads_active -= 1

    async def _serve_live_chunk(
        self, request: web.Request, session: SwarmSession, live: LiveState, index: int
    ) -> web.StreamResponse:
        if request.match_info["representation"] != LIVE_REPRESENTATION or index not in live.window:
            raise web.HTTPNotFound()
        envelope = live.window.get(index)
        if self.owner.corrupt_uploads:
            envelope = replace(envelope, payload=bytes(b ^ 0x5A for b in envelope.payload))
        data = envelope.encode()
        session.served_chunks += 1
        requester = request.headers.get(PEER_ID_HEADER, "")[:64]
        limiter = self.owner.upload_limiter
        if limiter is not None and not await limiter.consume(
            len(data), still_wanted=lambda: _connected(request)
        ):
            # The viewer gave up (the chunk's deadline passed) while it waited its turn.
            return web.Response(status=503)
        self._count_upload(session, requester, len(data))
        return web.Response(body=data, content_type="application/octet-stream")

    async def _send_stored_chunk(
        self,
        request: web.Request,
        session: SwarmSession,
        store: ChunkStore,
        requester: str,
        index: int,
    ) -> web.StreamResponse:
        """Send a held chunk straight from the file (``sendfile``).

        What the socket takes at once goes with one ``sendfile`` call (:func:`send_file_now`);
        the rest, if any, through asyncio's ``loop.sendfile``, which waits for the socket to
        drain.  Both send from the page cache without copying the bytes through Python.  Where
        the loop has no ``loop.sendfile`` (uvloop) the rest is read and written.
        """
        file, offset, length = store.sending(index)
        session.served_chunks += 1
        response = web.StreamResponse()
        response.content_type = "application/octet-stream"
        response.content_length = length
        try:
            await response.prepare(request)
            transport = request.transport
            if transport is None or transport.is_closing():
                return response
            sent = send_file_now(transport, file, offset, length)
            if sent < length:
                try:
                    loop = asyncio.get_running_loop()
                    await loop.sendfile(
                        transport, file, offset + sent, length - sent, fallback=False
                    )
                except (NotImplementedError, RuntimeError):
                    await response.write(store.read(index)[sent:])
            await response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            return response  # the requester gave up on this chunk
        self._count_upload(session, requester, length)
        return response

    @staticmethod
    def _count_upload(session: SwarmSession, requester: str, nbytes: int) -> None:
        session.uploaded_bytes += nbytes
        session.uploaded_to[requester] = session.uploaded_to.get(requester, 0) + nbytes
