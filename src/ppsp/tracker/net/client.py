"""Tracker client library: a peer's side of PPSP-TP over HTTP (the I/O half).

:class:`TrackerClient` moves the requests of a sans-I/O
:class:`~ppsp.tracker.client_session.TrackerSession` over HTTP and hands the answers back.  The
decisions are made without I/O: the session decides what to send (registration, joins, the
1.1 -> 1.0 fallback and the 1.0 CONNECT/LEAVE forms, transaction IDs, when the next STAT_REPORT
is due, the re-join after the tracker forgot the peer) and what each answer is;
:mod:`ppsp.tracker.client_policy` decides when a failed attempt is sent again (the identical
bytes, RFC 7846 section 4.3, after a doubling pause), when to give up
(:class:`~ppsp.errors.TrackerUnreachable`, or :class:`TrackerTLSError` at once), which HTTP
statuses are the tracker's answers and what a 401 says.  This module does HTTP, TLS, bearer
tokens, waits the pauses and the time allowed to each attempt, and runs the periodic report
task, which sleeps until the session's next deadline.

What a user gives is checked before any network and a failed attempt is worded as one sentence
(``tracker 127.0.0.1:7999 refused the connection``) by :mod:`ppsp.tracker.net.client_trust`,
whose names (:func:`check_tracker_url`, :func:`tls_context`, :func:`check_token`,
:func:`token_subject`, ...) this module re-exports.  An ``http://`` tracker costs no TLS here:
no TLS context is made for it.  A bearer token goes with every request as ``Authorization:
Bearer <token>`` (docs/PROTOCOL.md "Tracker client").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Literal, TypeVar
from urllib.parse import urlsplit

from ppsp.errors import HttpClientError, TrackerProtocolError, TrackerUnreachable
from ppsp.http.client import HttpClient
from ppsp.tracker.client_policy import (
    Attempts,
    Failure,
    GiveUp,
    NotTaken,
    RetryPolicy,
    TrackerTLSError,
    bearer_challenge,
    read_answer,
)
from ppsp.tracker.client_session import (
    Accepted,
    InvalidAnswer,
    Operation,
    Refused,
    TrackerSession,
)
from ppsp.tracker.net.client_http import HttpChannel
from ppsp.tracker.net.client_trust import (
    InvalidToken,
    InvalidTrackerURL,
    InvalidTrustAnchors,
    check_token,
    check_tracker_url,
    failure_of,
    tls_context,
    token_subject,
    token_swarms,
    tracker_name,
)
from ppsp.wire.tracker import (
    AnyRequest,
    ContentMap,
    Encoding,
    ErrorResponse,
    PeerAddress,
    PeerInfo,
    PeerMode,
    PeerNum,
    ProtocolVersion,
    RepresentationScope,
    StreamStatistics,
    TrackerResponse,
)

if TYPE_CHECKING:
    import ssl

    from ppsp.codecs.tracker import TrackerCodec

__all__ = [
    "DEFAULT_REPORT_INTERVAL",
    "Exchange",
    "InvalidToken",
    "InvalidTrackerURL",
    "InvalidTrustAnchors",
    "StatsProvider",
    "Trace",
    "TrackerClient",
    "TrackerTLSError",
    "TrackerUnreachable",
    "bearer_challenge",
    "check_token",
    "check_tracker_url",
    "tls_context",
    "token_subject",
]

log = logging.getLogger(__name__)

DEFAULT_REPORT_INTERVAL = 60.0
"""Seconds between periodic STAT_REPORTs: well inside the default 180 s track timer."""

StatsProvider = Callable[[], tuple[Sequence[StreamStatistics], Sequence[ContentMap]]]
"""Returns the statistics and content maps to put in the next periodic STAT_REPORT."""

Sleep = Callable[[float], Awaitable[None]]
"""``asyncio.sleep`` or a test's replacement."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """One HTTP round trip, as seen by the client: what went out and what came back.

    ``answer`` is the decoded answer, or ``None`` when it could not be decoded.
    """

    request: AnyRequest
    request_body: bytes
    status: int
    reason: str
    answer_body: bytes
    answer: TrackerResponse | ErrorResponse | None


Trace = Callable[[Exchange], None]
"""Called after every round trip (the demo prints them; tests inspect them)."""


class TrackerClient:
    """An asynchronous PPSP-TP client for one peer and one tracker.

    ``url`` is the tracker's URL (any path); ``peer_id`` the peer's identifier; ``addresses`` the
    addresses the peer advertises (each gets ``peer_protocol`` unless it names one).  ``session``
    is an HTTP client to share (the client makes and closes its own otherwise).  ``clock`` and
    ``sleep`` drive the periodic reports; ``retries`` is the number of re-sends after the first
    attempt, ``timeout`` the time allowed for each attempt and ``backoff`` the first pause between
    attempts (doubled each time).  ``trace``, if given, sees every round trip.

    ``tls`` is the TLS settings for an ``https://`` tracker (:func:`tls_context`; the system's
    trust store when None); ``token`` a bearer token sent with every request (checked with
    :func:`check_token`).  ``local_address``, an IP address of this host, is where the client's
    connections leave from (a peer serving on one address of a host with several talks to the
    tracker from that address too, so that the tracker sees the host it will list).

    What the client knows of its relation with the tracker is :attr:`state`, a sans-I/O
    :class:`~ppsp.tracker.client_session.TrackerSession`.
    """

    def __init__(
        self,
        url: str,
        peer_id: str,
        *,
        encoding: Encoding = Encoding.XML,
        version: ProtocolVersion = ProtocolVersion.V1_1,
        addresses: Sequence[PeerAddress] = (),
        peer_protocol: str = "PPSP-PP/0.1",
        session: HttpClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        retries: int = 3,
        timeout: float = 5.0,
        backoff: float = 0.25,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        trace: Trace | None = None,
        tls: ssl.SSLContext | None = None,
        token: str | None = None,
        local_address: str | None = None,
    ) -> None:
        checked = check_tracker_url(url)
        self._token = None if token is None else check_token(token)
        rng = rng or random.SystemRandom()
        self.state = TrackerSession(
            peer_id,
            addresses=addresses,
            peer_protocol=peer_protocol,
            version=version,
            first_transaction_id=rng.randrange(1, 1 << 30) + 1,
            tracker=tracker_name(checked),
            token_swarms=None if self._token is None else token_swarms(self._token),
        )
        self.url = checked
        self.peer_id = peer_id
        self.encoding = encoding
        self.peer_protocol = peer_protocol
        self._http = HttpChannel(
            encoding=encoding,
            token=self._token,
            tls=tls,
            session=session,
            local_address=local_address,
        )
        self._clock = clock
        self._sleep = sleep
        self._policy = RetryPolicy(retries=retries, backoff=backoff, timeout=timeout)
        self._reporter: asyncio.Task[None] | None = None
        self._trace = trace
        self._codec_of: TrackerCodec | None = None
        if self._token is not None and urlsplit(self.url).scheme == "http":
            log.warning(
                "sending a bearer token to %s in clear text: use https:// (RFC 6750)",
                tracker_name(self.url),
            )

    # -- state -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The tracker's URL (may be changed: the next request goes to the new one)."""
        return self._url

    @url.setter
    def url(self, value: str) -> None:
        self._url = value
        self.state.tracker = tracker_name(value)

    @property
    def version(self) -> ProtocolVersion:
        """The protocol version in use (1.0 after a fallback)."""
        return self.state.version

    @property
    def registered(self) -> bool:
        """Whether the tracker has (or, in 1.0 form, will have at the first join) registered us."""
        return self.state.registered

    @property
    def joined(self) -> Mapping[str, PeerMode]:
        """Swarms joined, with the mode each was joined in."""
        return self.state.joined

    @property
    def requester(self) -> PeerInfo | None:
        """How the tracker last saw this peer (its REFLEXIVE address), when it said so."""
        return self.state.requester

    @property
    def addresses(self) -> tuple[PeerAddress, ...]:
        """The addresses this peer advertises (each with its ``peer_protocol``)."""
        return self.state.addresses

    def advertise(self, addresses: Sequence[PeerAddress]) -> None:
        """Advertise ``addresses`` too, after the others (those without a ``peer_protocol``
        get the client's).  A 1.1 tracker takes addresses with the registration CONNECT only:
        call this before :meth:`register` or the first :meth:`join`; later they are sent
        with the next CONNECT (1.0 form) only."""
        self.state.addresses = (
            *self.state.addresses,
            *(a if a.peer_protocol else replace(a, peer_protocol=self.peer_protocol)
              for a in addresses),
        )  # fmt: skip

    # -- operations --------------------------------------------------------------------------

    async def register(self) -> None:
        """Register: a 1.1 CONNECT without swarms (in 1.0 form, deferred to the first join)."""
        await self._run(self.state.register())

    async def join(
        self,
        swarm_id: str,
        mode: PeerMode,
        *,
        peer_num: PeerNum | None = None,
        content_group: Sequence[RepresentationScope] = (),
    ) -> list[PeerInfo]:
        """Join ``swarm_id`` as SEED or LEECH; returns the peer list the tracker gave (without us).

        ``content_group`` is the 1.1 joining point; it is dropped in 1.0 form.  A 1.1 client that
        has not registered yet registers first.

        In 1.0 form a peer names its swarms when it connects: a CONNECT with JOIN actions is
        accepted only from a peer the tracker does not track yet.  Joining one more swarm is
        therefore a CONNECT that leaves every joined swarm followed by a CONNECT that joins them
        all again together with the new one.

        A refusal (403) of a swarm that the token's ``swarms`` claim does not list says so.
        """
        operation = self.state.join(swarm_id, mode, peer_num=peer_num, content_group=content_group)
        return await self._run(operation)

    async def find(
        self,
        swarm_id: str,
        *,
        peer_num: PeerNum | None = None,
        content_group: Sequence[RepresentationScope] = (),
    ) -> list[PeerInfo]:
        """Peers of ``swarm_id`` (holding chunks of ``content_group`` in 1.1), without us."""
        operation = self.state.find(swarm_id, peer_num=peer_num, content_group=content_group)
        return await self._run(operation)

    async def report(
        self,
        stream_stats: Sequence[StreamStatistics] = (),
        content_maps: Sequence[ContentMap] = (),
    ) -> None:
        """Send a STAT_REPORT (content maps are dropped in 1.0 form); empty, it is a keep-alive.

        It postpones the next periodic report by a whole interval.
        """
        await self._run(self.state.report(stream_stats, content_maps, now=self._clock()))

    async def disconnect(self, swarm_ids: Sequence[str] | Literal["ALL"] | None = None) -> None:
        """Leave the named swarms, every swarm (``"ALL"``), or the system (``None``).

        In 1.0 form this is a CONNECT with a LEAVE action for each swarm left; leaving the system
        leaves every joined swarm (and sends nothing when none is joined).
        """
        await self._run(self.state.disconnect(swarm_ids))

    async def rejoin(self) -> list[PeerInfo]:
        """Register again and re-join every swarm joined so far (after the tracker forgot us)."""
        return await self._run(self.state.rejoin())

    # -- periodic reports --------------------------------------------------------------------

    def start_reporting(
        self, stats_provider: StatsProvider, interval: float | None = None
    ) -> asyncio.Task[None]:
        """Send a STAT_REPORT every ``interval`` seconds (default 60 s) until stopped or closed.

        Each report carries what ``stats_provider`` returns at that moment.  A report that finds
        the tracker has forgotten this peer (403/404) triggers :meth:`rejoin`; an unreachable
        tracker is logged and tried again at the next interval.
        """
        self.stop_reporting()
        period = DEFAULT_REPORT_INTERVAL if interval is None else interval
        self.state.start_reporting(period, now=self._clock())  # ValueError unless positive
        self._reporter = asyncio.create_task(
            self._report_loop(stats_provider), name=f"ppsp-report-{self.peer_id}"
        )
        return self._reporter

    def stop_reporting(self) -> None:
        """Stop the periodic reports, if running."""
        self.state.stop_reporting()
        if self._reporter is not None:
            self._reporter.cancel()
            self._reporter = None

    async def _report_loop(self, provider: StatsProvider) -> None:
        """Wait for the session's next deadline and report then (a report sent meanwhile
        moves the deadline: it is read again after each wait)."""
        state = self.state
        while (deadline := state.next_deadline()) is not None:
            delay = deadline - self._clock()
            if delay > 0:
                await self._sleep(delay)
                continue
            stream_stats, content_maps = provider()
            try:
                await self._run(state.report(stream_stats, content_maps, now=self._clock()))
            except TrackerUnreachable as exc:
                log.warning("periodic report failed: %s", exc)
            except TrackerProtocolError as exc:
                mend = state.recovery(exc)
                if mend is None:
                    log.warning("tracker refused a periodic report: %s", exc)
                    continue
                log.info("tracker forgot peer %s (%s); joining again", self.peer_id, exc)
                with contextlib.suppress(TrackerProtocolError, TrackerUnreachable):
                    await self._run(mend)

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop reporting and close the HTTP session if this client made it."""
        task = self._reporter
        self.stop_reporting()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._http.close()

    async def __aenter__(self) -> TrackerClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- machinery ---------------------------------------------------------------------------

    async def _run(self, operation: Operation[T]) -> T:
        """Carry ``operation`` out: send each request it makes, hand it each answer or refusal.

        A refusal the session does not recover from is raised (as the operation words it); a
        tracker that cannot be reached abandons the operation.
        """
        state = self.state
        request = operation.request
        try:
            while request is not None:
                before = state.version
                try:
                    response = await self._exchange(request)
                except TrackerProtocolError as refusal:
                    request = operation.refused(refusal)
                else:
                    request = operation.answered(response)
                if state.version is not before:
                    log.info("tracker %s refused PPSP-TP/1.1; falling back to 1.0", self.url)
        finally:
            if not operation.done:
                operation.abandon()
        return operation.result

    async def _exchange(self, request: AnyRequest) -> TrackerResponse:
        """Send ``request`` (re-sending the identical bytes on failure) and return its answer;
        a refusal is raised as its :class:`~ppsp.errors.TrackerProtocolError`.  When to send
        again and when to give up is the :class:`~ppsp.tracker.client_policy.Attempts`'
        decision."""
        body = self._codec().encode_request(request)
        policy = self._policy
        attempts = Attempts(policy)
        while True:
            cause: BaseException
            try:
                answer, status = await self._post(request, body)
            except (HttpClientError, TimeoutError, InvalidAnswer) as exc:
                failure, cause = failure_of(exc, self.url, policy.timeout), exc
            else:
                verdict = self.state.receive(request, answer, status)
                if isinstance(verdict, Accepted):
                    return verdict.response
                if isinstance(verdict, Refused):
                    raise verdict.error
                failure, cause = Failure.of_retry(verdict, self.state.tracker), verdict.error
            step = attempts.failed(failure)
            if isinstance(step, GiveUp):
                # The sentence of the last failure: what a user reads (docs/PROTOCOL.md).
                raise step.error from cause
            log.debug("transaction %s failed: %s", request.transaction_id, failure.sentence)
            await self._sleep(step.pause)
            log.debug(
                "re-sending transaction %s (attempt %d)", request.transaction_id, attempts.sent
            )

    def _codec(self) -> TrackerCodec:
        """The codec of the client's encoding, imported at its first use: a peer loads only the
        codec it speaks."""
        codec = self._codec_of
        if codec is None:
            if self.encoding is Encoding.JSON:
                from ppsp.codecs import tracker_json as json_codec

                codec = json_codec
            else:
                from ppsp.codecs import tracker_xml as xml_codec

                codec = xml_codec
            self._codec_of = codec
        return codec

    async def _post(
        self, request: AnyRequest, body: bytes
    ) -> tuple[TrackerResponse | ErrorResponse, int]:
        """One attempt: the decoded answer and its HTTP status.

        Raises :class:`~ppsp.errors.AuthenticationRequired` for a 401 and
        :class:`~ppsp.tracker.client_session.InvalidAnswer` for an answer that is not the
        tracker protocol's (another status, too large, unreadable).
        """
        tracker = self.state.tracker
        reply = await self._http.post(self.url, body, timeout=self._policy.timeout, tracker=tracker)
        reading = read_answer(
            self._codec().decode_response,
            reply.body,
            reply.status,
            reply.reason,
            challenge=reply.challenge,
            tracker=tracker,
            token_sent=self._token is not None,
        )
        if self._trace is not None:
            self._trace(
                Exchange(
                    request=request,
                    request_body=body,
                    status=reply.status,
                    reason=reply.reason,
                    answer_body=reply.body,
                    answer=reading.answer,
                )
            )
        if isinstance(reading, NotTaken):
            raise reading.error
        return reading.answer, reply.status
