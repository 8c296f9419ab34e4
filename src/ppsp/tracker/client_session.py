"""A peer's side of PPSP-TP without I/O: the tracker-client session.

:class:`TrackerSession` holds what a peer knows of its relation with one tracker: whether it is
registered, which swarms it joined and in which mode, the protocol version in use (1.1, or 1.0
for good after the tracker refused 1.1: huang-01 section 3.4, PROFILE.md), its transaction IDs,
the address the tracker last saw it at (REFLEXIVE), the swarms its token allows, and when its
next periodic STAT_REPORT is due.  It sends nothing and reads no clock (time is passed in as
``now``), as h11 and aioquic: the I/O client (:mod:`ppsp.tracker.net.client`) moves the bytes.

**Intentions** (:meth:`~TrackerSession.register`, :meth:`~TrackerSession.join`,
:meth:`~TrackerSession.find`, :meth:`~TrackerSession.report`,
:meth:`~TrackerSession.disconnect`, :meth:`~TrackerSession.rejoin`) each return an
:class:`Operation`: the request to send now, then, for each answer, the next request or the
result.  An intention may take several requests: a 1.1 JOIN registers first; joining one more
swarm in 1.0 form is a CONNECT that leaves every joined swarm and a CONNECT that joins them all
again; a refusal of 1.1 switches to 1.0, re-joins what was joined and sends the request again
in 1.0 form.  Several operations may be in flight at once (a periodic report while a FIND is
answered); they share the session's state as the requests are answered.

**Answers** go through :meth:`~TrackerSession.receive`, which says what each one is:
:class:`Accepted` (the request's answer; the REFLEXIVE address is kept), :class:`Refused` (a
refusal to hand to the operation, which raises it unless it recovers), or :class:`Retry` (not
an answer to act on: 503, or the answer of another transaction; the same bytes go again).

**Deadlines**: with :meth:`~TrackerSession.start_reporting`, :meth:`~TrackerSession.next_deadline`
is when the next periodic STAT_REPORT is due (``interval`` after the last report of any kind);
the I/O layer waits for it and sends :meth:`~TrackerSession.report` then.  A report refused
because the tracker forgot this peer (403 or 404) is mended by the re-join
:meth:`~TrackerSession.recovery` returns.

**Corrupt-peer reports** (:meth:`~TrackerSession.note_corrupt`): peers this one banned for
corrupt data are kept (at most :data:`MAX_PENDING_CORRUPT_REPORTS`, one per peer and address)
and go with the next STAT_REPORTs, :data:`~ppsp.wire.fields.MAX_CORRUPT_REPORTS` at a time, in
either version (an extension that trackers which do not know it ignore); a report is forgotten
once a STAT_REPORT carrying it is accepted, and sent again otherwise.

In 1.0 form registration without swarms does not exist (it travels with the first join), JOIN
is a CONNECT with JOIN actions, leaving is a CONNECT with LEAVE actions, leaving the system
leaves every joined swarm, FIND is swarm-wide and STAT_REPORT carries no content maps.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Generic, Literal, TypeVar

from ppsp.errors import (
    AuthenticationRequired,
    BadRequest,
    Forbidden,
    InternalError,
    LocalProtocolError,
    NotFound,
    PayloadTooLarge,
    PPSPError,
    ServiceUnavailable,
    TrackerErrorCode,
    TrackerProtocolError,
    UnsupportedVersion,
)
from ppsp.wire.fields import MAX_CORRUPT_REPORTS, MAX_INTEGER
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    ContentMap,
    CorruptPeerReport,
    DisconnectRequest,
    DisconnectScope,
    ErrorResponse,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerInfo,
    PeerMode,
    PeerNum,
    ProtocolVersion,
    RepresentationScope,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

__all__ = [
    "MAX_PENDING_CORRUPT_REPORTS",
    "Accepted",
    "InvalidAnswer",
    "Operation",
    "Refused",
    "Retry",
    "TrackerSession",
    "Verdict",
    "error_from",
]

T = TypeVar("T")

MAX_PENDING_CORRUPT_REPORTS = 64
"""Corrupt-peer reports a session keeps until a tracker accepts them; later ones are dropped."""

_ReportKey = tuple[str, str, str, int]
"""A corrupt-peer report's swarm, peer ID, IP and port."""

V10 = ProtocolVersion.V1_0
V11 = ProtocolVersion.V1_1

Flow = Generator[AnyRequest, TrackerResponse, T]
"""An intention's steps: yields each request, is sent its answer (or thrown its refusal) and
returns the intention's result."""

_ERROR_CLASSES: dict[TrackerErrorCode, type[TrackerProtocolError]] = {
    TrackerErrorCode.BAD_REQUEST: BadRequest,
    TrackerErrorCode.UNSUPPORTED_VERSION: UnsupportedVersion,
    TrackerErrorCode.FORBIDDEN: Forbidden,
    TrackerErrorCode.INTERNAL_ERROR: InternalError,
    TrackerErrorCode.SERVICE_UNAVAILABLE: ServiceUnavailable,
    TrackerErrorCode.AUTHENTICATION_REQUIRED: AuthenticationRequired,
    TrackerErrorCode.NOT_FOUND: NotFound,
    TrackerErrorCode.PAYLOAD_TOO_LARGE: PayloadTooLarge,
}

_STATUS_CODES: dict[int, TrackerErrorCode] = {
    404: TrackerErrorCode.NOT_FOUND,
    413: TrackerErrorCode.PAYLOAD_TOO_LARGE,
}


class InvalidAnswer(PPSPError):
    """An answer that cannot be taken as the tracker's answer to the request sent (another
    transaction's, too large, unreadable, not the tracker protocol's): retried like a lost
    answer, and the sentence of the last attempt when the retries are spent."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """The tracker answered the request: hand ``response`` to the operation."""

    response: TrackerResponse


@dataclass(frozen=True, slots=True)
class Refused:
    """The tracker refused the request: hand ``error`` to the operation (never retried)."""

    error: TrackerProtocolError


@dataclass(frozen=True, slots=True)
class Retry:
    """Not an answer to act on (503, another transaction's answer): send the same bytes again
    after a pause; ``error`` says what happened, for the sentence of the last attempt."""

    error: TrackerProtocolError | InvalidAnswer


Verdict = Accepted | Refused | Retry
"""What :meth:`TrackerSession.receive` makes of an answer."""


class Operation(Generic[T]):
    """One intention in flight: the request to send now, the next one per answer, the result.

    ``request`` is what to send (None once the operation is finished); give its answer to
    :meth:`answered`, or its refusal to :meth:`refused`, which raise the error the intention
    ends with (the refusal itself, or a sentence that explains it) unless the session recovers
    (a fallback to 1.0).  :attr:`result` is the intention's result once ``request`` is None.
    An operation given up (a tracker that cannot be reached) is :meth:`abandon`-ed: what it
    changed so far in the session stays, as after any request that was sent.

    The steps of an intention are written as a generator (:data:`Flow`) over the session: each
    ``yield`` hands out a request and takes back its answer, a refusal is thrown in at the
    ``yield``, and the ``return`` value is the result; the operation only drives it.
    """

    __slots__ = ("_done", "_ended", "_flow", "_request", "_result")

    _result: T

    def __init__(self, flow: Flow[T]) -> None:
        self._flow = flow
        self._request: AnyRequest | None = None
        self._done = False  # finished with a result
        self._ended = False  # finished in any way: a result, an error, given up
        self._advance(lambda: next(flow))

    @property
    def request(self) -> AnyRequest | None:
        """The request to send now; None when the operation is finished."""
        return self._request

    @property
    def done(self) -> bool:
        """Whether the operation finished with a result."""
        return self._done

    @property
    def result(self) -> T:
        """The intention's result (the peer list of a JOIN or FIND, None for the others)."""
        if not self._done:
            raise LocalProtocolError("the operation has not finished")
        return self._result

    def answered(self, response: TrackerResponse) -> AnyRequest | None:
        """Take the answer to :attr:`request`; returns the next request (None: finished)."""
        flow = self._flow
        return self._advance(lambda: flow.send(response))

    def refused(self, error: TrackerProtocolError) -> AnyRequest | None:
        """Take the refusal of :attr:`request`; returns the next request when the session
        recovers from it, else raises the error the intention ends with."""
        flow = self._flow
        return self._advance(lambda: flow.throw(error))

    def abandon(self) -> None:
        """Give the operation up (nothing more will be sent for it)."""
        self._request = None
        self._ended = True
        self._flow.close()

    def _advance(self, step: Callable[[], AnyRequest]) -> AnyRequest | None:
        if self._ended:
            raise LocalProtocolError("the operation has finished")
        self._request = None  # a step that raises leaves nothing to send
        try:
            self._request = step()
        except StopIteration as stop:
            self._ended = self._done = True
            self._result = stop.value
        except BaseException:
            self._ended = True  # the intention ended with this error
            raise
        return self._request


class TrackerSession:
    """The state of one peer's relation with one tracker, and the requests it takes.

    ``peer_id`` is the peer's identifier; ``addresses`` the addresses it advertises (each gets
    ``peer_protocol`` unless it names one); ``version`` the version to start with (1.1 falls
    back to 1.0 when refused); ``first_transaction_id`` where the transaction IDs start
    (consecutive from there; the I/O layer draws it at random).  ``tracker`` names the tracker
    in sentences (``127.0.0.1:7000``); ``token_swarms`` are the swarms the peer's token allows
    (its ``swarms`` claim, None without a list), used to explain a refused JOIN.
    """

    def __init__(
        self,
        peer_id: str,
        *,
        addresses: Sequence[PeerAddress] = (),
        peer_protocol: str = "PPSP-PP/0.1",
        version: ProtocolVersion = V11,
        first_transaction_id: int = 1,
        tracker: str = "the tracker",
        token_swarms: frozenset[str] | None = None,
    ) -> None:
        self.peer_id = peer_id
        self.tracker = tracker
        self.token_swarms = token_swarms
        self.addresses = tuple(
            a if a.peer_protocol else replace(a, peer_protocol=peer_protocol) for a in addresses
        )
        self._version = version
        self._tid_base = first_transaction_id - 1
        self._tid_count = 0
        self._registered = False
        self._joined: dict[str, PeerMode] = {}
        self._requester: PeerInfo | None = None
        self._last_report: float | None = None
        self._interval: float | None = None
        self._corrupt: dict[_ReportKey, CorruptPeerReport] = {}

    # -- state -------------------------------------------------------------------------------

    @property
    def version(self) -> ProtocolVersion:
        """The protocol version in use (1.0 after a fallback)."""
        return self._version

    @property
    def registered(self) -> bool:
        """Whether the tracker has (or, in 1.0 form, will have at the first join) registered us."""
        return self._registered

    @property
    def joined(self) -> Mapping[str, PeerMode]:
        """Swarms joined, with the mode each was joined in (a copy)."""
        return dict(self._joined)

    @property
    def requester(self) -> PeerInfo | None:
        """How the tracker last saw this peer (its REFLEXIVE address), when it said so."""
        return self._requester

    # -- intentions --------------------------------------------------------------------------

    def register(self) -> Operation[None]:
        """Register: a 1.1 CONNECT without swarms (in 1.0 form, deferred to the first join)."""
        return Operation(self._register())

    def join(
        self,
        swarm_id: str,
        mode: PeerMode,
        *,
        peer_num: PeerNum | None = None,
        content_group: Sequence[RepresentationScope] = (),
    ) -> Operation[list[PeerInfo]]:
        """Join ``swarm_id`` as SEED or LEECH; the result is the peer list (without us).

        ``content_group`` is the 1.1 joining point, dropped in 1.0 form.  A 1.1 session not
        registered yet registers first.  In 1.0 form a CONNECT with JOIN actions is accepted
        only from a peer the tracker does not track yet: joining one more swarm is a CONNECT
        leaving every joined swarm, then a CONNECT joining them all with the new one.  A 403 for
        a swarm the token's ``swarms`` claim does not list ends in a Forbidden saying so.
        """
        return Operation(self._join(swarm_id, mode, peer_num, tuple(content_group)))

    def find(
        self,
        swarm_id: str,
        *,
        peer_num: PeerNum | None = None,
        content_group: Sequence[RepresentationScope] = (),
    ) -> Operation[list[PeerInfo]]:
        """Peers of ``swarm_id`` (holding chunks of ``content_group`` in 1.1), without us."""
        scope = tuple(content_group)

        def build(version: ProtocolVersion) -> AnyRequest:
            return FindRequest(
                version=version,
                transaction_id=self._new_tid(),
                peer_id=self.peer_id,
                swarm_id=swarm_id,
                peer_num=peer_num,
                content_group=scope if version is V11 else (),
            )

        return Operation(self._peers_of(self._call(build)))

    def report(
        self,
        stream_stats: Sequence[StreamStatistics] = (),
        content_maps: Sequence[ContentMap] = (),
        *,
        now: float,
    ) -> Operation[None]:
        """A STAT_REPORT at ``now`` (content maps dropped in 1.0 form; empty, a keep-alive).

        The next periodic report is due ``interval`` after ``now``.
        """
        self._last_report = now
        stats, maps = tuple(stream_stats), tuple(content_maps)
        corrupt = tuple(self._corrupt.values())[:MAX_CORRUPT_REPORTS]

        def build(version: ProtocolVersion) -> AnyRequest:
            return StatReportRequest(
                version=version,
                transaction_id=self._new_tid(),
                peer_id=self.peer_id,
                stream_stats=stats,
                content_maps=maps if version is V11 else (),
                corrupt_peers=corrupt,
            )

        return Operation(self._reported(self._call(build), corrupt))

    def note_corrupt(self, reports: Iterable[CorruptPeerReport]) -> None:
        """Keep corrupt-peer reports for the next STAT_REPORTs.

        A report of a peer and address already kept replaces it with the counts added; beyond
        :data:`MAX_PENDING_CORRUPT_REPORTS` kept, new ones are dropped.
        """
        for report in reports:
            key = (report.swarm_id, report.peer_id, report.ip, report.port)
            held = self._corrupt.get(key)
            if held is not None:
                total = min(held.corrupt_chunks + report.corrupt_chunks, MAX_INTEGER)
                self._corrupt[key] = replace(held, corrupt_chunks=total)
            elif len(self._corrupt) < MAX_PENDING_CORRUPT_REPORTS:
                self._corrupt[key] = report

    @property
    def pending_corrupt_reports(self) -> tuple[CorruptPeerReport, ...]:
        """The corrupt-peer reports no tracker accepted yet, oldest first."""
        return tuple(self._corrupt.values())

    def disconnect(
        self, swarm_ids: Sequence[str] | Literal["ALL"] | None = None
    ) -> Operation[None]:
        """Leave the named swarms, every swarm (``"ALL"``), or the system (``None``).

        In 1.0 form: a CONNECT with a LEAVE action per swarm left; leaving the system leaves
        every joined swarm (and sends nothing when none is joined).  An empty list of swarms
        sends nothing.
        """
        return Operation(self._disconnect(swarm_ids))

    def rejoin(self) -> Operation[list[PeerInfo]]:
        """Register again and re-join every swarm joined so far (after the tracker forgot us);
        the result is the peer list of the re-join."""
        return Operation(self._rejoin())

    def recovery(self, refusal: TrackerProtocolError) -> Operation[list[PeerInfo]] | None:
        """What mends a refused periodic report: the re-join when the refusal says the tracker
        no longer knows this peer (403, 404: its timer ran out, it restarted), else None."""
        if isinstance(refusal, Forbidden | NotFound):
            return self.rejoin()
        return None

    # -- answers -----------------------------------------------------------------------------

    def receive(
        self, request: AnyRequest, answer: TrackerResponse | ErrorResponse, status: int = 200
    ) -> Verdict:
        """What ``answer`` (decoded, with its HTTP ``status``) is for ``request``.

        An error answer is a :class:`Refused` (503 a :class:`Retry`: the tracker's storage may
        answer again); a 1.0 XML tracker's ``400 PPSP version 1.0`` is an unsupported version.
        An answer to another transaction is a :class:`Retry`.  An accepted answer's REFLEXIVE
        address is kept (:attr:`requester`).
        """
        if isinstance(answer, ErrorResponse):
            error = error_from(_refine_error(answer, status))
            if isinstance(error, ServiceUnavailable):
                return Retry(error)
            return Refused(error)
        if not _same_transaction(answer.transaction_id, request.transaction_id):
            return Retry(
                InvalidAnswer(
                    f"tracker {self.tracker} answered transaction "
                    f"{answer.transaction_id!r} instead of {request.transaction_id!r}"
                )
            )
        if answer.requester is not None:
            self._requester = answer.requester
        return Accepted(answer)

    # -- periodic reports --------------------------------------------------------------------

    def start_reporting(self, interval: float, *, now: float) -> None:
        """Report every ``interval`` seconds: the first is due ``interval`` after the last
        report, or after ``now`` when there was none.  Raises ValueError for an interval that
        is not positive."""
        if not interval > 0:
            raise ValueError("the report interval must be positive")
        self._interval = interval
        if self._last_report is None:
            self._last_report = now

    def stop_reporting(self) -> None:
        """No more periodic reports (:meth:`next_deadline` is None)."""
        self._interval = None

    @property
    def report_interval(self) -> float | None:
        """Seconds between periodic reports; None when not reporting."""
        return self._interval

    def next_deadline(self) -> float | None:
        """When the next periodic STAT_REPORT is due; None when not reporting.

        Any report moves it (a report sent in between postpones the periodic one).
        """
        if self._interval is None or self._last_report is None:
            return None
        return self._last_report + self._interval

    def report_due(self, now: float) -> bool:
        """Whether a periodic STAT_REPORT is due at ``now``."""
        deadline = self.next_deadline()
        return deadline is not None and deadline <= now

    # -- the flows ---------------------------------------------------------------------------

    def _call(
        self, build: Callable[[ProtocolVersion], AnyRequest | None]
    ) -> Flow[TrackerResponse | None]:
        """Send what ``build`` makes for the current version, falling back to 1.0 if refused."""
        request = build(self._version)
        if request is None:
            return None
        try:
            return (yield request)
        except UnsupportedVersion:
            if self._version is V10:
                raise
        self._fall_back()
        if self._joined:
            # Whatever we joined in 1.1 the tracker does not know: join it again in 1.0 form.
            yield self._join_request(V10, list(self._joined.items()), None, ())
            self._registered = True
        request = build(self._version)
        if request is None:
            return None
        return (yield request)

    def _nothing(self, flow: Flow[TrackerResponse | None]) -> Flow[None]:
        yield from flow
        return None

    def _reported(
        self, flow: Flow[TrackerResponse | None], sent: tuple[CorruptPeerReport, ...]
    ) -> Flow[None]:
        """A STAT_REPORT's flow: once accepted, the corrupt-peer reports it carried are
        forgotten (those that grew meanwhile are kept, to be sent with their new counts)."""
        yield from flow
        for report in sent:
            key = (report.swarm_id, report.peer_id, report.ip, report.port)
            if self._corrupt.get(key) is report:
                del self._corrupt[key]
        return None

    def _peers_of(self, flow: Flow[TrackerResponse | None]) -> Flow[list[PeerInfo]]:
        return self._peers((yield from flow))

    def _register(self) -> Flow[None]:
        def build(version: ProtocolVersion) -> AnyRequest | None:
            if version is V10:
                return None
            return ConnectRequest(
                version=version,
                transaction_id=self._new_tid(),
                peer_id=self.peer_id,
                peer_addresses=self.addresses,
            )

        yield from self._call(build)
        self._registered = True

    def _join(
        self,
        swarm_id: str,
        mode: PeerMode,
        peer_num: PeerNum | None,
        content_group: tuple[RepresentationScope, ...],
    ) -> Flow[list[PeerInfo]]:
        try:
            return (yield from self._join_steps(swarm_id, mode, peer_num, content_group))
        except Forbidden as exc:
            swarms = self.token_swarms
            if swarms is None or swarm_id in swarms:
                raise
            reason = f"the token does not allow swarm {swarm_id}"
            raise Forbidden(
                f"tracker {self.tracker} refused JOIN: {reason}",
                transaction_id=exc.transaction_id,
                reason=reason,
            ) from exc

    def _join_steps(
        self,
        swarm_id: str,
        mode: PeerMode,
        peer_num: PeerNum | None,
        content_group: tuple[RepresentationScope, ...],
    ) -> Flow[list[PeerInfo]]:
        if self._version is V11 and not self._registered:
            yield from self._register()
        if self._version is V11:
            try:
                response = yield self._join_request(
                    V11, [(swarm_id, mode)], peer_num, content_group
                )
            except UnsupportedVersion:
                self._fall_back()
            else:
                self._joined[swarm_id] = mode
                return self._peers(response, swarm_id)

        wanted = dict(self._joined)
        wanted[swarm_id] = mode
        if self._registered and self._joined:
            leave = self._leave_request_10(list(self._joined))
            if leave is not None:
                yield leave
            self._registered = False
        response = yield self._join_request(V10, list(wanted.items()), peer_num, ())
        self._registered = True
        self._joined = wanted
        return self._peers(response, swarm_id)

    def _disconnect(self, swarm_ids: Sequence[str] | Literal["ALL"] | None) -> Flow[None]:
        leave_system = swarm_ids is None
        if swarm_ids is None or swarm_ids == "ALL":
            leaving = list(self._joined)
        else:
            leaving = list(dict.fromkeys(swarm_ids))
            if not leaving:
                return None  # leaving no swarm: nothing to send (a DISCONNECT names one or more)

        def build(version: ProtocolVersion) -> AnyRequest | None:
            if version is V10:
                return self._leave_request_10(leaving)
            if swarm_ids is None or swarm_ids == "ALL":
                return DisconnectRequest(
                    version=version,
                    transaction_id=self._new_tid(),
                    peer_id=self.peer_id,
                    scope=DisconnectScope.SYSTEM
                    if swarm_ids is None
                    else DisconnectScope.ALL_SWARMS,
                )
            tids = self._action_tids(len(leaving))
            return DisconnectRequest(
                version=version,
                transaction_id=tids[0],
                peer_id=self.peer_id,
                scope=DisconnectScope.SWARMS,
                swarms=tuple(
                    SwarmAction(swarm_id=swarm, transaction_id=tid)
                    for swarm, tid in zip(leaving, tids[1:], strict=True)
                ),
            )

        yield from self._call(build)
        for swarm in leaving:
            self._joined.pop(swarm, None)
        if leave_system or (self._version is V10 and not self._joined):
            # A 1.0 tracker deletes the registration with the last swarm left.
            self._registered = False

    def _rejoin(self) -> Flow[list[PeerInfo]]:
        self._registered = False
        if self._version is V11:
            yield from self._register()
            if self._version is V10 and self._registered:
                return []  # the fallback has re-joined every swarm already
        if not self._joined:
            return []
        actions = list(self._joined.items())

        def build(version: ProtocolVersion) -> AnyRequest:
            return self._join_request(version, actions, None, ())

        response = yield from self._call(build)
        self._registered = True
        return self._peers(response)

    # -- requests ----------------------------------------------------------------------------

    def _new_tid(self) -> str:
        """A transaction ID unique to this session (consecutive from the first)."""
        self._tid_count += 1
        return str(self._tid_base + self._tid_count)

    def _action_tids(self, count: int) -> list[str]:
        """Root and per-action IDs: ``[N, N]`` for one action, ``[N.0, N.1, ..., N.k]`` for more."""
        base = self._new_tid()
        if count <= 1:
            return [base, base]
        return [f"{base}.{k}" for k in range(count + 1)]

    def _join_request(
        self,
        version: ProtocolVersion,
        actions: Sequence[tuple[str, PeerMode]],
        peer_num: PeerNum | None,
        content_group: tuple[RepresentationScope, ...],
    ) -> AnyRequest:
        tids = self._action_tids(len(actions))
        hierarchical = len(actions) > 1
        if version is V10:
            return ConnectRequest(
                version=version,
                transaction_id=tids[0],
                peer_id=self.peer_id,
                peer_addresses=self.addresses,
                swarm_actions=tuple(
                    SwarmAction(
                        swarm_id=swarm,
                        action=SwarmActionType.JOIN,
                        peer_mode=mode,
                        transaction_id=tid if hierarchical else None,
                    )
                    for (swarm, mode), tid in zip(actions, tids[1:], strict=True)
                ),
                peer_num=peer_num,
            )
        return JoinRequest(
            version=version,
            transaction_id=tids[0],
            peer_id=self.peer_id,
            swarms=tuple(
                SwarmAction(
                    swarm_id=swarm,
                    peer_mode=mode,
                    transaction_id=tid if hierarchical else None,
                )
                for (swarm, mode), tid in zip(actions, tids[1:], strict=True)
            ),
            peer_num=peer_num,
            content_group=content_group,
        )

    def _leave_request_10(self, swarms: Sequence[str]) -> ConnectRequest | None:
        """A 1.0 CONNECT leaving ``swarms`` (None when there is nothing the tracker knows)."""
        if not swarms or not self._registered:
            return None
        tids = self._action_tids(len(swarms))
        hierarchical = len(swarms) > 1
        return ConnectRequest(
            version=V10,
            transaction_id=tids[0],
            peer_id=self.peer_id,
            peer_addresses=self.addresses,
            swarm_actions=tuple(
                SwarmAction(
                    swarm_id=swarm,
                    action=SwarmActionType.LEAVE,
                    peer_mode=self._joined.get(swarm, PeerMode.LEECH),
                    transaction_id=tid if hierarchical else None,
                )
                for swarm, tid in zip(swarms, tids[1:], strict=True)
            ),
        )

    def _peers(
        self, response: TrackerResponse | None, swarm_id: str | None = None
    ) -> list[PeerInfo]:
        """The peer list of ``response`` without this peer (and only ``swarm_id``'s, if given)."""
        if response is None:
            return []
        return [
            peer
            for peer in response.peers
            if peer.peer_id != self.peer_id
            and (swarm_id is None or peer.swarm_id in (None, swarm_id))
        ]

    def _fall_back(self) -> None:
        """Switch to PPSP-TP/1.0 for good; the 1.0 tracker knows nothing of us yet."""
        self._version = V10
        self._registered = False


def error_from(answer: ErrorResponse) -> TrackerProtocolError:
    """The exception an error answer stands for.

    A 1.0 XML tracker refuses 1.1 with ``400`` and the reason phrase ``PPSP version 1.0``; that is
    an unsupported version even if a codec reports it as a plain bad request.
    """
    code = answer.code
    reason = answer.reason or ""
    if code is TrackerErrorCode.BAD_REQUEST and reason.lower().startswith("ppsp version"):
        code = TrackerErrorCode.UNSUPPORTED_VERSION
    cls = _ERROR_CLASSES.get(code, TrackerProtocolError)
    return cls(
        f"tracker answered {code.name}: {reason or code.reason}",
        code=code,
        transaction_id=answer.transaction_id,
        reason=reason or None,
    )


def _same_transaction(answered: str | None, sent: str) -> bool:
    """Whether an answer's transaction ID belongs to the request (root IDs compare by prefix)."""
    if not answered:
        return True
    return answered == sent or answered.split(".", 1)[0] == sent.split(".", 1)[0]


def _refine_error(answer: ErrorResponse, status: int) -> ErrorResponse:
    """Recover 404/413 from the HTTP status of a JSON error answer (whose ``error_code`` is 1)."""
    if answer.code is TrackerErrorCode.BAD_REQUEST and status in _STATUS_CODES:
        return replace(answer, code=_STATUS_CODES[status])
    return answer
