"""The peer's HTTP endpoint: the peer protocol, descriptions and chunks, served to other peers.

- ``POST /``: the peer protocol (PPSP-PP/0.1 XML, PROFILE.md), answered by the sans-I/O
  :class:`~ppsp.peer.protocol.handler.PeerProtocolHandler`;
- ``GET /swarm/{swarm}/description``: the content description, self-certified by the swarm ID;
- ``GET /swarm/{swarm}/chunk/{representation}/{index}``: one chunk's bytes (404 when not held),
  the URL template that TRANSPORT_NEGOTIATION hands out for the mandatory HTTP transport;
- ``GET /swarm/{swarm}/ppspp/{root}/subtrees``: the subtree hashes of the PPSPP content of
  root hash ``root`` this peer serves (:mod:`ppsp.peer.ppspp.partial`; 404 when it serves none),
  which a peer that will serve the content while downloading it checks against the root.

The handlers run on the lean HTTP server (:mod:`ppsp.http.server`, :meth:`PeerEndpoint.router`).
Stored chunks go out with ``sendfile`` (:meth:`~ppsp.http.server.StreamResponse.sendfile`:
one call for what the socket takes at once, then the loop's ``loop.sendfile``).  Every chunk
request, stored or live, first gets an upload slot from the sans-I/O
:class:`~ppsp.peer.upload.fair.FairUploads` policy, by the host of the connection's source
address (never a header): it starts at once, waits its host's turn, or is refused with
503 and ``Retry-After``; under an upload cap a few chunks are sent at once, without one a host
keeps at most its share of chunks in flight while other hosts want some (docs/PROTOCOL.md,
"Fair serving").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Protocol

from ppsp.codecs.peer_xml import CONTENT_TYPE as PEER_CONTENT_TYPE
from ppsp.codecs.peer_xml import encode_response
from ppsp.errors import ChunkChanged, RequestBodyTooLarge, TemporarilyOverloaded
from ppsp.http.budget import RequestBodyBusy
from ppsp.http.server import Request, Response, Router, StreamResponse, error_response
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.http_common import MAX_PEER_MESSAGE_BYTES, PEER_ID_HEADER
from ppsp.peer.net.limiter import RateLimiter
from ppsp.peer.net.session import LIVE_REPRESENTATION, LiveState, SwarmSession
from ppsp.peer.protocol.handler import PeerProtocolHandler
from ppsp.peer.upload.fair import FairUploads, Verdict
from ppsp.wire.peer import ErrorResponse

log = logging.getLogger(__name__)

UPLOAD_PIECE = 16384
"""Bytes written per step when an upload limit paces a chunk."""


class EndpointOwner(Protocol):
    """What the endpoint reads of its peer (:class:`~ppsp.peer.net.node.PeerNode`)."""

    sessions: dict[str, SwarmSession]
    handler: PeerProtocolHandler
    clock: Callable[[], float]
    upload_limiter: RateLimiter | None
    corrupt_uploads: bool
    host_share: float


_BODY_BUSY = encode_response(
    ErrorResponse.from_error(TemporarilyOverloaded("request bodies being read: busy"))
)
"""The answer to a peer protocol request whose body the server's body budget refused."""


def _busy(retry_after: int) -> Response:
    """The answer to a chunk request the fair-serving policy refused: ask again later."""
    return error_response(503, {"Retry-After": str(retry_after)})


class PeerEndpoint:
    """The request handlers of a peer's HTTP endpoint (see the module docstring)."""

    def __init__(self, owner: EndpointOwner) -> None:
        self.owner = owner
        self._uploads: FairUploads | None = None
        self._turns: dict[int, asyncio.Future[None]] = {}
        """The waiting requests' turns, by ticket."""
        self._subtrees: dict[tuple[str, str], bytes] = {}
        """The subtree hashes answered, by (swarm ID, PPSPP root hash in lowercase hex)."""

    def offer_subtrees(self, swarm_id: str, root_hash: bytes, body: bytes) -> None:
        """Answer ``GET /swarm/{swarm_id}/ppspp/{root}/subtrees`` with ``body`` (the encoded
        subtree hashes of the PPSPP content of root hash ``root_hash``, checked or computed
        by the caller)."""
        self._subtrees[(swarm_id, root_hash.hex())] = body

    def router(self) -> Router:
        """The handler of the peer's HTTP server: the peer protocol, descriptions and chunks."""
        router = Router()
        router.add("POST", "/", self.handle_protocol)
        router.add("GET", "/", self.handle_protocol)
        router.add("GET", "/swarm/{swarm}/description", self.handle_description)
        router.add("GET", "/swarm/{swarm}/chunk/{representation}/{index}", self.handle_chunk)
        router.add("GET", "/swarm/{swarm}/ppspp/{root}/subtrees", self.handle_subtrees)
        return router

    async def handle_protocol(self, request: Request) -> Response:
        """``POST /``: one peer protocol request, answered by the protocol handler (a body the
        server's body budget cannot take now: 503 ``TEMPORARILY OVERLOADED`` with
        ``Retry-After``, unread, the connection closed after it)."""
        try:
            body = await request.read_body(MAX_PEER_MESSAGE_BYTES)
        except RequestBodyTooLarge:
            # Answered by the protocol handler's own bound check: 400 INVALID SYNTAX.
            body = b" " * (MAX_PEER_MESSAGE_BYTES + 1)
        except RequestBodyBusy:
            # The bytes of bodies being read (its host's, or all hosts') are spent: the
            # protocol's own busy answer, unread, and the connection closes after it.
            return Response(
                503,
                _BODY_BUSY,
                content_type=PEER_CONTENT_TYPE,
                headers={"Retry-After": str(RequestBodyBusy.retry_after)},
            )
        # The connection's source address (never a header): whom the request may speak for.
        status, answer = self.owner.handler.handle_bytes(
            body, self.owner.clock(), host=request.remote_ip
        )
        return Response(status, answer, content_type=PEER_CONTENT_TYPE)

    async def handle_description(self, request: Request) -> Response:
        """``GET /swarm/{swarm}/description``: the swarm's description (404: not known)."""
        session = self.owner.sessions.get(request.match_info["swarm"])
        if session is not None and session.live is not None:
            body = session.live.description.to_bytes()
            return Response(body=body, content_type="application/json")
        if session is None or session.description is None:
            return error_response(404)
        return Response(body=session.description.to_bytes(), content_type="application/json")

    async def handle_subtrees(self, request: Request) -> Response:
        """``GET /swarm/{swarm}/ppspp/{root}/subtrees``: the subtree hashes (404: none)."""
        key = (request.match_info["swarm"], request.match_info["root"].lower())
        body = self._subtrees.get(key)
        if body is None:
            return error_response(404)
        return Response(body=body, content_type="application/octet-stream")

    async def handle_chunk(self, request: Request) -> Response | StreamResponse:
        """``GET /swarm/{swarm}/chunk/{representation}/{index}``: a held chunk (404: not)."""
        owner = self.owner
        session = owner.sessions.get(request.match_info["swarm"])
        try:
            index = int(request.match_info["index"])
        except ValueError:
            return error_response(404)
        if session is not None and session.live is not None:
            return await self._serve_live_chunk(request, session, session.live, index)
        if (
            session is None
            or session.store is None
            or session.description is None
            or request.match_info["representation"] != session.representation_id
            or not session.have(index)
        ):
            return error_response(404)
        requester = request.headers.get(PEER_ID_HEADER, "")[:64]
        remote = session.remotes.get(requester)
        held = len(remote.bitmap) if remote is not None and remote.bitmap else 0
        ticket = await self._take_slot(request, held, (session.swarm_id, index))
        if isinstance(ticket, Response):
            return ticket
        try:
            return await self._serve_stored_chunk(request, session, requester, index)
        finally:
            self._release(ticket)

    async def _serve_stored_chunk(
        self, request: Request, session: SwarmSession, requester: str, index: int
    ) -> Response | StreamResponse:
        """Send a held chunk of stored content, in the slot the request was given."""
        owner = self.owner
        assert session.store is not None
        if not request.connected:
            return error_response(503)  # the requester gave up while waiting its turn
        try:
            if owner.upload_limiter is None and not owner.corrupt_uploads:
                return await self._send_stored_chunk(
                    request, session, session.store, requester, index
                )
            data = session.store.read(index)
        except ChunkChanged as exc:
            if len(session.store.changed_chunks) == 1:  # say it once, not per request
                log.warning("%s; chunks that no longer match are not served", exc)
            return error_response(404)
        session.served_chunks += 1
        if owner.corrupt_uploads:
            data = bytes(b ^ 0x5A for b in data)
        limiter = owner.upload_limiter
        response = StreamResponse(content_length=len(data))
        try:
            await response.prepare(request)
            if limiter is None:
                await response.write(data)
                session.count_upload(requester, request.remote_ip, len(data))
            else:
                for offset in range(0, len(data), UPLOAD_PIECE):
                    piece = data[offset : offset + UPLOAD_PIECE]
                    await limiter.consume(len(piece))
                    await response.write(piece)
                    session.count_upload(requester, request.remote_ip, len(piece))
            await response.write_eof()
        except ConnectionError:
            # The requester gave up on this chunk (an endgame duplicate it cancelled, or
            # it left): nothing more to send.
            pass
        return response

    @property
    def uploads(self) -> FairUploads:
        """The fair-serving policy of this peer's uploads (made on first use, when the
        owner's upload cap is known)."""
        if self._uploads is None:
            self._uploads = FairUploads(
                capped=self.owner.upload_limiter is not None, share=self.owner.host_share
            )
        return self._uploads

    async def _take_slot(
        self, request: Request, priority: int, chunk: tuple[str, int], *, spread: bool = False
    ) -> int | Response:
        """Wait for an upload slot for ``request`` (its source address's host's turn); its
        ticket, to :meth:`_release` once the chunk is sent, or the 503 answer of a refusal.

        ``priority`` orders the host's own waiting requests (lower first); ``chunk`` (swarm,
        index) tells a repeat request, served after first ones; with ``spread`` (live
        chunks), a chunk's first copies go before further copies of others.
        """
        decision = self.uploads.request(
            request.remote_ip, priority, self.owner.clock(), chunk, spread=spread
        )
        self._wake(decision.wake)
        if decision.verdict is Verdict.REFUSE:
            return _busy(decision.retry_after)
        if decision.verdict is Verdict.WAIT:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._turns[decision.ticket] = turn
            try:
                await turn
            except asyncio.CancelledError:
                # Given up while waiting, or cancelled just as the turn came: either way
                # the ticket is released (a slot it was given passes on).
                self._turns.pop(decision.ticket, None)
                self._release(decision.ticket)
                raise
        return decision.ticket

    def _release(self, ticket: int) -> None:
        """Ticket ``ticket`` is done: wake the requests the policy starts in its place."""
        self._wake(self.uploads.release(ticket, self.owner.clock()))

    def _wake(self, tickets: Iterable[int]) -> None:
        """Start the waiting requests of ``tickets``."""
        for started in tickets:
            turn = self._turns.pop(started, None)
            if turn is not None and not turn.done():
                turn.set_result(None)

    async def _serve_live_chunk(
        self, request: Request, session: SwarmSession, live: LiveState, index: int
    ) -> Response | StreamResponse:
        if request.match_info["representation"] != LIVE_REPRESENTATION or index not in live.window:
            return error_response(404)
        # At the source, a new chunk's first copies go first (fair.py, "First copies"): no
        # relay can pass a chunk on before one left the source.  A relay keeps arrival order:
        # there, a joining viewer's startup buffer would wait behind every new chunk.
        ticket = await self._take_slot(request, 0, (session.swarm_id, index), spread=live.is_source)
        if isinstance(ticket, Response):
            return ticket
        try:
            return await self._send_live_chunk(request, session, live, index)
        finally:
            self._release(ticket)

    async def _send_live_chunk(
        self, request: Request, session: SwarmSession, live: LiveState, index: int
    ) -> Response | StreamResponse:
        """Send a live chunk's envelope in the slot the request was given (written here, not
        after the handler returns, so that the slot is held while the bytes go)."""
        if not request.connected or index not in live.window:
            # The viewer gave up (the chunk's deadline passed) while it waited its turn, or
            # the chunk left the window meanwhile.
            return error_response(503)
        envelope = live.window.get(index)
        if self.owner.corrupt_uploads:
            envelope = replace(envelope, payload=bytes(b ^ 0x5A for b in envelope.payload))
        data = envelope.encode()
        session.served_chunks += 1
        requester = request.headers.get(PEER_ID_HEADER, "")[:64]
        limiter = self.owner.upload_limiter
        if limiter is not None and not await limiter.consume(
            len(data), still_wanted=lambda: request.connected
        ):
            return error_response(503)  # the viewer gave up while it waited for the rate
        response = StreamResponse(content_length=len(data))
        try:
            await response.prepare(request)
            await response.write(data)
            await response.write_eof()
        except ConnectionError:
            return response  # the viewer gave up on this chunk
        session.count_upload(requester, request.remote_ip, len(data))
        return response

    async def _send_stored_chunk(
        self,
        request: Request,
        session: SwarmSession,
        store: ChunkStore,
        requester: str,
        index: int,
    ) -> StreamResponse:
        """Send a held chunk straight from the file (``sendfile``).

        What the socket takes at once goes with one ``sendfile`` call, the rest, if any,
        through the loop's ``loop.sendfile``, which waits for the socket to drain
        (:meth:`~ppsp.http.server.StreamResponse.sendfile`).  Both send from the page cache
        without copying the bytes through Python.  Where the loop has no ``loop.sendfile``
        (uvloop) the rest is read and written.
        """
        file, offset, length = store.sending(index)
        session.served_chunks += 1
        response = StreamResponse(content_length=length)
        try:
            await response.prepare(request)
            await response.sendfile(file, offset, length)
            await response.write_eof()
        except ConnectionError:
            return response  # the requester gave up on this chunk
        session.count_upload(requester, request.remote_ip, length)
        return response
