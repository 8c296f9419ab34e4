"""The sans-I/O tracker-client session: intentions to requests, answers to results, deadlines.

No socket and no sleep: answers are scripted, or made by the real sans-I/O tracker core
(:class:`~ppsp.tracker.core.Tracker` over :class:`~ppsp.tracker.storage.MemoryStorage`) after a
trip through the codecs, the way the HTTP server makes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.codecs.tracker import codec_for, safe_reason, status_line
from ppsp.errors import (
    BadRequest,
    Forbidden,
    LocalProtocolError,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TrackerErrorCode,
    TrackerProtocolError,
    UnsupportedVersion,
)
from ppsp.tracker.client_session import (
    MAX_PENDING_CORRUPT_REPORTS,
    Accepted,
    InvalidAnswer,
    Operation,
    Refused,
    Retry,
    TrackerSession,
    error_from,
)
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.storage import MemoryStorage
from ppsp.wire.fields import MAX_CORRUPT_REPORTS
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    ContentMap,
    CorruptPeerReport,
    DisconnectRequest,
    DisconnectScope,
    Encoding,
    ErrorResponse,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerInfo,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmActionType,
    TrackerResponse,
)

V10 = ProtocolVersion.V1_0
V11 = ProtocolVersion.V1_1
SEED, LEECH = PeerMode.SEED, PeerMode.LEECH
JOIN, LEAVE = SwarmActionType.JOIN, SwarmActionType.LEAVE
ME = "me"
ADDRESS = PeerAddress(ip="192.0.2.1", port=9000)
CHUNK_MAP = ContentMap(
    swarm_id="a",
    representations=(
        RepresentationMap(
            representation_id="tag0",
            segments=(SegmentMap(start_index=0, end_index=7, chunkmap_size=8, bitmap=b"\xf0"),),
        ),
    ),
)
SCOPE = (RepresentationScope(representation_id="tag0", start_index=0, end_index=3),)

T = TypeVar("T")


def session(**kwargs: Any) -> TrackerSession:
    kwargs.setdefault("addresses", (ADDRESS,))
    kwargs.setdefault("first_transaction_id", 100)
    kwargs.setdefault("tracker", "127.0.0.1:7000")
    return TrackerSession(ME, **kwargs)


def ok(request: AnyRequest, *peers: PeerInfo) -> TrackerResponse:
    return TrackerResponse(
        version=request.version, transaction_id=request.transaction_id, peers=peers
    )


def refusal(
    request: AnyRequest, code: TrackerErrorCode, reason: str | None = None
) -> ErrorResponse:
    return ErrorResponse(
        version=request.version, transaction_id=request.transaction_id, code=code, reason=reason
    )


def version_refusal(request: AnyRequest) -> ErrorResponse:
    """What a 1.0 XML tracker answers to 1.1: 400 with the reason phrase ``PPSP version 1.0``."""
    return refusal(request, TrackerErrorCode.BAD_REQUEST, "PPSP version 1.0")


def step(
    state: TrackerSession, operation: Operation[Any], answer: TrackerResponse | ErrorResponse
) -> AnyRequest | None:
    """Hand ``answer`` to ``operation`` the way the I/O client does."""
    request = operation.request
    assert request is not None
    verdict = state.receive(request, answer, status_line(answer)[0])
    if isinstance(verdict, Accepted):
        return operation.answered(verdict.response)
    assert isinstance(verdict, Refused), verdict
    return operation.refused(verdict.error)


def sent(operation: Operation[Any]) -> AnyRequest:
    assert operation.request is not None
    return operation.request


def leave_join(request: AnyRequest) -> list[tuple[str, SwarmActionType | None, PeerMode | None]]:
    assert isinstance(request, ConnectRequest)
    return [(s.swarm_id, s.action, s.peer_mode) for s in request.swarm_actions]


# -- 1.1 ------------------------------------------------------------------------------------------


def test_a_join_registers_first_and_keeps_the_mode() -> None:
    me = session()
    operation = me.join("a", SEED, content_group=SCOPE)
    connect = sent(operation)
    assert isinstance(connect, ConnectRequest) and connect.version is V11
    assert connect.transaction_id == "100" and connect.swarm_actions == ()
    assert connect.peer_addresses[0].peer_protocol == "PPSP-PP/0.1"  # filled in
    join = step(me, operation, ok(connect))
    assert me.registered and me.joined == {}
    assert isinstance(join, JoinRequest) and join.content_group == SCOPE
    assert [(s.swarm_id, s.peer_mode, s.transaction_id) for s in join.swarms] == [("a", SEED, None)]
    others = PeerInfo(peer_id="other", swarm_id="a")
    stranger = PeerInfo(peer_id="x", swarm_id="b")
    assert step(me, operation, ok(join, others, PeerInfo(peer_id=ME), stranger)) is None
    assert operation.done and operation.result == [others]  # never ourselves, only swarm a
    assert me.joined == {"a": SEED}


def test_a_disconnect_of_several_swarms_uses_hierarchical_ids() -> None:
    me = session()
    me._registered = True
    operation = me.disconnect(["a", "b", "a"])
    leave = sent(operation)
    assert isinstance(leave, DisconnectRequest) and leave.scope is DisconnectScope.SWARMS
    root = leave.transaction_id.removesuffix(".0")
    assert [s.transaction_id for s in leave.swarms] == [f"{root}.1", f"{root}.2"]
    assert [s.swarm_id for s in leave.swarms] == ["a", "b"]
    cases: list[tuple[DisconnectScope, Literal["ALL"] | None]] = [
        (DisconnectScope.ALL_SWARMS, "ALL"),
        (DisconnectScope.SYSTEM, None),
    ]
    for scope, which in cases:
        request = sent(me.disconnect(which))
        assert isinstance(request, DisconnectRequest) and request.scope is scope


@pytest.mark.parametrize("version", [V11, V10])
def test_leaving_no_swarm_sends_nothing(version: ProtocolVersion) -> None:
    me = session(version=version)
    me._registered, me._joined = True, {"a": SEED}
    operation = me.disconnect([])
    assert operation.request is None and operation.done
    assert me.joined == {"a": SEED} and me.registered


def test_a_find_and_a_report_in_11() -> None:
    me = session()
    find = sent(me.find("a", content_group=SCOPE))
    assert isinstance(find, FindRequest) and find.content_group == SCOPE
    report = sent(me.report([StreamStatistics(swarm_id="a")], [CHUNK_MAP], now=5.0))
    assert isinstance(report, StatReportRequest) and report.content_maps == (CHUNK_MAP,)
    assert int(report.transaction_id) == int(find.transaction_id) + 1


# -- answers --------------------------------------------------------------------------------------


def test_answers_are_judged() -> None:
    me = session()
    request = sent(me.register())
    requester = PeerInfo(peer_id=ME, addresses=(PeerAddress(ip="198.51.100.7", port=4000),))
    answer = TrackerResponse(
        version=V11, transaction_id=request.transaction_id, requester=requester
    )
    assert me.receive(request, answer) == Accepted(answer)
    assert me.requester == requester
    # The storage may answer again: retried.
    busy = me.receive(request, refusal(request, TrackerErrorCode.SERVICE_UNAVAILABLE), 503)
    assert isinstance(busy, Retry) and isinstance(busy.error, ServiceUnavailable)
    # Another transaction's answer: retried, with the sentence a user reads at the end.
    other = me.receive(request, TrackerResponse(version=V11, transaction_id="7"))
    assert isinstance(other, Retry) and isinstance(other.error, InvalidAnswer)
    assert str(other.error) == "tracker 127.0.0.1:7000 answered transaction '7' instead of '100'"
    # A refusal is never retried; the 1.0 tracker's 400 is an unsupported version.
    refused = me.receive(request, version_refusal(request), 400)
    assert isinstance(refused, Refused) and isinstance(refused.error, UnsupportedVersion)
    forbidden = me.receive(request, refusal(request, TrackerErrorCode.FORBIDDEN), 403)
    assert isinstance(forbidden, Refused) and isinstance(forbidden.error, Forbidden)
    assert forbidden.error.transaction_id == request.transaction_id
    # A JSON error answer says 1 (bad request) for 404 and 413: the HTTP status tells.
    plain = refusal(request, TrackerErrorCode.BAD_REQUEST)
    for status, kind in ((404, NotFound), (413, PayloadTooLarge), (400, BadRequest)):
        verdict = me.receive(request, plain, status)
        assert isinstance(verdict, Refused) and type(verdict.error) is kind
    # A root ID answers for its hierarchical form.
    assert isinstance(
        me.receive(request, TrackerResponse(version=V11, transaction_id="100.0")), Accepted
    )


def test_error_from_words_the_refusal() -> None:
    error = error_from(
        ErrorResponse(version=V11, transaction_id="9", code=TrackerErrorCode.FORBIDDEN)
    )
    assert isinstance(error, Forbidden) and str(error) == "tracker answered FORBIDDEN: Forbidden"


# -- the fallback to 1.0 --------------------------------------------------------------------------


def test_a_refused_registration_waits_for_the_first_join_in_10() -> None:
    me = session()
    operation = me.register()
    assert step(me, operation, version_refusal(sent(operation))) is None
    assert operation.done and me.version is V10 and me.registered
    assert me.register().request is None  # nothing to send in 1.0


def test_the_fallback_rejoins_what_was_joined_in_11_then_sends_again() -> None:
    me = session()
    me._registered, me._joined = True, {"a": SEED, "b": LEECH}
    operation = me.report([StreamStatistics(swarm_id="a")], [CHUNK_MAP], now=1.0)
    rejoin = step(me, operation, version_refusal(sent(operation)))
    assert rejoin is not None and rejoin.version is V10
    assert leave_join(rejoin) == [("a", JOIN, SEED), ("b", JOIN, LEECH)]
    report = step(me, operation, ok(rejoin))
    assert isinstance(report, StatReportRequest) and report.version is V10
    assert report.content_maps == () and report.stream_stats  # no maps in 1.0
    assert step(me, operation, ok(report)) is None
    assert me.registered and me.joined == {"a": SEED, "b": LEECH}


def test_a_refused_11_join_becomes_one_10_connect_of_every_swarm() -> None:
    me = session()
    me._registered, me._joined = True, {"a": SEED}
    operation = me.join("b", LEECH, content_group=SCOPE)
    connect = step(me, operation, version_refusal(sent(operation)))
    assert connect is not None and connect.version is V10
    assert leave_join(connect) == [("a", JOIN, SEED), ("b", JOIN, LEECH)]
    assert isinstance(connect, ConnectRequest) and connect.content_group == ()
    assert step(me, operation, ok(connect, PeerInfo(peer_id="p", swarm_id="b"))) is None
    assert [p.peer_id for p in operation.result] == ["p"]


def test_the_10_dance_leaves_everything_then_joins_everything() -> None:
    me = session(version=V10)
    first = me.join("a", SEED)
    assert leave_join(sent(first)) == [("a", JOIN, SEED)]
    step(me, first, ok(sent(first)))
    second = me.join("b", LEECH)
    leave = sent(second)
    assert leave_join(leave) == [("a", LEAVE, SEED)]
    join = step(me, second, ok(leave))
    assert isinstance(join, ConnectRequest)
    assert leave_join(join) == [("a", JOIN, SEED), ("b", JOIN, LEECH)]
    root = join.transaction_id.removesuffix(".0")
    assert join.transaction_id == f"{root}.0"
    assert [s.transaction_id for s in join.swarm_actions] == [f"{root}.1", f"{root}.2"]
    step(me, second, ok(join))
    assert me.joined == {"a": SEED, "b": LEECH} and me.registered
    find = sent(me.find("a", content_group=SCOPE))
    assert isinstance(find, FindRequest) and find.content_group == ()  # swarm-wide in 1.0
    leave_b = me.disconnect(["b"])
    assert leave_join(sent(leave_b)) == [("b", LEAVE, LEECH)]
    step(me, leave_b, ok(sent(leave_b)))
    assert me.joined == {"a": SEED} and me.registered
    bye = me.disconnect(None)
    assert leave_join(sent(bye)) == [("a", LEAVE, SEED)]
    step(me, bye, ok(sent(bye)))
    assert me.joined == {} and not me.registered  # the last swarm took the registration along
    assert me.disconnect(None).request is None  # nothing to leave: nothing sent


def test_a_refusal_in_10_is_raised_not_fallen_back_from() -> None:
    me = session(version=V10)
    operation = me.join("a", SEED)
    with pytest.raises(UnsupportedVersion):
        step(me, operation, version_refusal(sent(operation)))
    assert operation.request is None and not operation.done


# -- tokens ---------------------------------------------------------------------------------------


def test_a_join_refused_outside_the_tokens_swarms_says_why() -> None:
    me = session(token_swarms=frozenset({"a"}))
    me._registered = True
    outside = me.join("b", LEECH)
    with pytest.raises(Forbidden) as info:
        step(me, outside, refusal(sent(outside), TrackerErrorCode.FORBIDDEN))
    assert (
        str(info.value) == "tracker 127.0.0.1:7000 refused JOIN: the token does not allow swarm b"
    )
    assert info.value.reason == "the token does not allow swarm b"
    assert info.value.transaction_id == "100"
    inside = me.join("a", LEECH)
    with pytest.raises(Forbidden) as info:
        step(me, inside, refusal(sent(inside), TrackerErrorCode.FORBIDDEN))
    assert "token" not in str(info.value)


# -- periodic reports -----------------------------------------------------------------------------


def test_the_next_report_is_due_an_interval_after_the_last() -> None:
    me = session()
    assert me.next_deadline() is None and not me.report_due(1e9)
    me.start_reporting(60.0, now=1000.0)
    assert me.next_deadline() == 1060.0 and me.report_interval == 60.0
    assert not me.report_due(1059.9) and me.report_due(1060.0)
    me.report(now=1020.0)  # any report moves the periodic one
    assert me.next_deadline() == 1080.0
    me.stop_reporting()
    assert me.next_deadline() is None
    me.start_reporting(10.0, now=5000.0)  # the last report still counts
    assert me.next_deadline() == 1030.0
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            me.start_reporting(bad, now=0.0)


@pytest.mark.parametrize("code", [TrackerErrorCode.FORBIDDEN, TrackerErrorCode.NOT_FOUND])
def test_a_forgotten_peer_rejoins(code: TrackerErrorCode) -> None:
    me = session()
    me._registered, me._joined = True, {"a": SEED}
    report = me.report(now=0.0)
    with pytest.raises((Forbidden, NotFound)) as info:
        step(me, report, refusal(sent(report), code))
    mend = me.recovery(info.value)
    assert mend is not None
    connect = sent(mend)
    assert isinstance(connect, ConnectRequest) and not me.registered
    join = step(me, mend, ok(connect))
    assert isinstance(join, JoinRequest) and [s.swarm_id for s in join.swarms] == ["a"]
    assert step(me, mend, ok(join, PeerInfo(peer_id="p"))) is None
    assert me.registered and [p.peer_id for p in mend.result] == ["p"]


def test_other_refusals_of_a_report_are_not_mended() -> None:
    assert session().recovery(BadRequest("no")) is None
    assert session().recovery(ServiceUnavailable("busy")) is None


# -- operations -----------------------------------------------------------------------------------


def test_an_operation_is_used_once() -> None:
    me = session()
    operation = me.find("a")
    with pytest.raises(LocalProtocolError):
        _ = operation.result
    step(me, operation, ok(sent(operation)))
    assert operation.result == []
    with pytest.raises(LocalProtocolError):
        operation.answered(
            ok(FindRequest(version=V11, transaction_id="1", peer_id=ME, swarm_id="a"))
        )


def test_an_abandoned_operation_keeps_what_it_changed() -> None:
    me = session()
    operation = me.join("a", SEED)
    join = step(me, operation, ok(sent(operation)))  # registered; the JOIN is lost on the way
    assert join is not None
    operation.abandon()
    assert operation.request is None and me.registered and me.joined == {}
    with pytest.raises(LocalProtocolError):  # nothing more goes through it
        operation.answered(ok(join))
    assert me.joined == {}


def test_an_operation_that_failed_takes_nothing_more() -> None:
    me = session()
    operation = me.find("a")
    request = sent(operation)
    with pytest.raises(Forbidden):
        step(me, operation, refusal(request, TrackerErrorCode.FORBIDDEN))
    with pytest.raises(LocalProtocolError):
        operation.answered(ok(request))


# -- sequences of intentions against the real tracker core ----------------------------------------


Intention = tuple[Any, ...]
SWARMS = ("a", "b", "c")

intentions: st.SearchStrategy[Intention] = st.one_of(
    st.just(("register",)),
    st.tuples(st.just("join"), st.sampled_from(SWARMS), st.sampled_from([SEED, LEECH])),
    st.tuples(st.just("find"), st.sampled_from(SWARMS)),
    st.just(("report",)),
    st.tuples(
        st.just("disconnect"),
        st.one_of(st.none(), st.just("ALL"), st.lists(st.sampled_from(SWARMS), max_size=3)),
    ),
    st.just(("forget",)),  # the tracker forgets everybody; the next periodic report mends it
    st.just(("restart as 1.0",)),  # the tracker comes back as a 1.0 one, empty
)


@dataclass
class Loopback:
    """The tracker core behind the codecs, as the HTTP server runs it."""

    tracker: Tracker
    encoding: Encoding
    now: float = 0.0
    sent: list[AnyRequest] = field(default_factory=list)
    refusals: list[TrackerErrorCode] = field(default_factory=list)

    async def answer(self, request: AnyRequest) -> tuple[TrackerResponse | ErrorResponse, int]:
        codec = codec_for(self.encoding)
        self.sent.append(request)
        message = codec.decode_request(codec.encode_request(request))
        answer: TrackerResponse | ErrorResponse
        try:
            answer = await self.tracker.handle(message, observed=("192.0.2.1", 9000), now=self.now)
        except TrackerProtocolError as exc:
            self.refusals.append(exc.code)
            version = message.version
            if exc.code is TrackerErrorCode.UNSUPPORTED_VERSION:
                version = self.tracker.config.max_version
            answer = ErrorResponse(
                version=version,
                transaction_id=exc.transaction_id,
                code=exc.code,
                reason=safe_reason(exc.reason),
            )
        status, reason = status_line(answer)
        return codec.decode_response(codec.encode_response(answer), status, reason), status


async def carry(
    me: TrackerSession,
    operation: Operation[T],
    answer: Callable[[AnyRequest], Awaitable[tuple[TrackerResponse | ErrorResponse, int]]],
) -> T:
    """Carry ``operation`` out against ``answer``, as the I/O client does (no retries here)."""
    request = operation.request
    while request is not None:
        verdict = me.receive(request, *await answer(request))
        if isinstance(verdict, Accepted):
            request = operation.answered(verdict.response)
        elif isinstance(verdict, Refused):
            request = operation.refused(verdict.error)
        else:
            raise AssertionError(f"the core asked for a retry: {verdict}")
    return operation.result


def known_to_tracker(me: TrackerSession) -> bool:
    """Whether the session believes the tracker tracks it (1.0: registration comes with swarms)."""
    return me.registered and (me.version is V11 or bool(me.joined))


def sensible(me: TrackerSession, kind: str, intention: Intention) -> bool:
    """Whether the session, from what it believes, makes a request the tracker accepts.

    A peer the tracker tracks may join a swarm it has not joined (any swarm in 1.0, which joins
    everything again), find and report what it joined, and leave what it joined; a 1.0 session
    with nothing to send sends nothing; a forgotten peer's periodic report mends it.
    """
    joined, known, v10 = me.joined, known_to_tracker(me), me.version is V10
    if kind == "register":
        return not known or v10
    if kind == "join":
        return v10 or intention[1] not in joined
    if kind == "find":
        return intention[1] in joined
    if kind == "report":
        return bool(joined)
    if kind == "periodic report":
        return bool(joined) or not me.registered
    which = intention[1]
    if which is None:
        return known or (v10 and not joined)
    if which == "ALL":
        return bool(joined) or v10
    return all(s in joined for s in which)


@settings(max_examples=150, deadline=None)
@given(
    first=st.sampled_from([V11, V10]),
    encoding=st.sampled_from([Encoding.XML, Encoding.JSON]),
    tracker10=st.booleans(),
    steps=st.lists(intentions, max_size=14),
)
def test_the_session_agrees_with_the_tracker(
    first: ProtocolVersion, encoding: Encoding, tracker10: bool, steps: list[Intention]
) -> None:
    """Whatever the intentions, after each one the tracker tracks exactly what the session
    believes (registration, swarms and modes), every request it sends is one the tracker
    accepts except where the session cannot know better (a 1.1 request to a 1.0 tracker before
    the fallback, anything from a peer the tracker forgot), a 1.0 session never speaks 1.1,
    and transaction IDs are never reused."""

    async def run() -> None:
        config = TrackerConfig(max_version=V10 if tracker10 else V11)
        wire = Loopback(Tracker(MemoryStorage(), config), encoding)
        me = TrackerSession(ME, addresses=(ADDRESS,), version=first, first_transaction_id=1)
        me.start_reporting(60.0, now=0.0)
        fell_back_at: int | None = None if first is V11 else 0
        for intention in steps:
            wire.now += 1.0
            kind = intention[0]
            if kind == "forget":
                await wire.tracker.expire(float("inf"))
                kind = "periodic report"
            elif kind == "restart as 1.0":
                if wire.tracker.config.max_version is V10 or me.version is V10:
                    continue  # (a 1.0 tracker coming back empty is "forget")
                wire.tracker = Tracker(MemoryStorage(), TrackerConfig(max_version=V10))
                # Whatever the session joined comes back with its next request.
                kind, intention = "find", ("find", "a")
            expected = sensible(me, kind, intention)
            refusals_before = len(wire.refusals)
            try:
                if kind == "register":
                    await carry(me, me.register(), wire.answer)
                elif kind == "join":
                    peers = await carry(me, me.join(intention[1], intention[2]), wire.answer)
                    assert all(p.peer_id != ME for p in peers)
                elif kind == "find":
                    peers = await carry(me, me.find(intention[1]), wire.answer)
                    assert all(p.peer_id != ME for p in peers)
                elif kind == "report":
                    held = sorted(me.joined)[:1]
                    stats = [StreamStatistics(swarm_id=s, uploaded_bytes=1) for s in held]
                    maps = [replace(CHUNK_MAP, swarm_id=s) for s in held]
                    await carry(me, me.report(stats, maps, now=wire.now), wire.answer)
                elif kind == "periodic report":
                    try:
                        await carry(me, me.report(now=wire.now), wire.answer)
                    except TrackerProtocolError as exc:
                        mend = me.recovery(exc)
                        if mend is None:
                            raise
                        await carry(me, mend, wire.answer)
                else:
                    await carry(me, me.disconnect(intention[1]), wire.answer)
            except Forbidden:
                # Refused only when asking what the session itself knows to be invalid (a
                # FIND of a swarm not joined, a second registration, ...).
                assert not expected, (intention, me.version, me.registered, me.joined)
            if me.version is V10 and fell_back_at is None:
                fell_back_at = len(wire.sent)
            unsupported = wire.refusals[refusals_before:].count(
                TrackerErrorCode.UNSUPPORTED_VERSION
            )
            assert unsupported <= 1  # refused once, never again
            # What the tracker tracks is what the session believes.
            storage = wire.tracker.storage
            assert await storage.memberships(ME) == me.joined, intention
            assert (await storage.get_peer(ME) is not None) == known_to_tracker(me), intention
            assert me._last_report is not None
            assert me.next_deadline() == me._last_report + 60.0
        if fell_back_at is not None:
            assert all(r.version is V10 for r in wire.sent[fell_back_at:])
        roots = [r.transaction_id.split(".")[0] for r in wire.sent]
        assert len(roots) == len(set(roots))

    asyncio.run(run())


# -- any answers at all ---------------------------------------------------------------------------

answers = st.sampled_from(
    [
        "ok",
        "ok with us",
        "version refused",
        TrackerErrorCode.BAD_REQUEST,
        TrackerErrorCode.FORBIDDEN,
        TrackerErrorCode.NOT_FOUND,
        TrackerErrorCode.INTERNAL_ERROR,
        TrackerErrorCode.AUTHENTICATION_REQUIRED,
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    first=st.sampled_from([V11, V10]),
    steps=st.lists(st.tuples(intentions, st.lists(answers, min_size=6, max_size=6)), max_size=12),
)
def test_any_answers_leave_a_consistent_session(
    first: ProtocolVersion, steps: list[tuple[Intention, list[Any]]]
) -> None:
    """Whatever the tracker answers, an intention ends with its result or a tracker protocol
    error; the version only goes from 1.1 to 1.0; once in 1.0 nothing is sent in 1.1; a JOIN's
    peer list never holds us; swarms are believed joined only once a join was accepted."""
    me = TrackerSession(ME, addresses=(ADDRESS,), version=first, first_transaction_id=1)
    roots: list[str] = []
    accepted_swarms: set[str] = set()
    for intention, script in steps:
        kind = intention[0]
        operation: Operation[Any]
        if kind == "register":
            operation = me.register()
        elif kind == "join":
            operation = me.join(intention[1], intention[2], content_group=SCOPE)
        elif kind in ("find", "restart as 1.0"):
            operation = me.find("a")
        elif kind == "disconnect":
            operation = me.disconnect(intention[1])
        else:
            operation = me.report(now=0.0)
        answers_left = list(script)
        try:
            while (request := operation.request) is not None:
                if me.version is V10:
                    assert request.version is V10
                roots.append(request.transaction_id.split(".")[0])
                answer_kind = answers_left.pop(0) if answers_left else "ok"
                before = me.version
                answer: TrackerResponse | ErrorResponse
                if answer_kind in ("ok", "ok with us"):
                    us = (PeerInfo(peer_id=ME),) if answer_kind == "ok with us" else ()
                    answer = ok(request, PeerInfo(peer_id="p"), *us)
                    if isinstance(request, JoinRequest):
                        accepted_swarms |= {s.swarm_id for s in request.swarms}
                    if isinstance(request, ConnectRequest):
                        accepted_swarms |= {
                            s.swarm_id for s in request.swarm_actions if s.action is JOIN
                        }
                elif answer_kind == "version refused":
                    answer = version_refusal(request)
                else:
                    assert isinstance(answer_kind, TrackerErrorCode)
                    answer = refusal(request, answer_kind)
                step(me, operation, answer)
                assert not (before is V10 and me.version is V11)
        except TrackerProtocolError:
            assert operation.request is None
        else:
            result = operation.result
            if isinstance(result, list):
                assert all(p.peer_id != ME for p in result)
        assert set(me.joined) <= accepted_swarms
    assert len(roots) == len(set(roots))


# -- corrupt-peer reports -------------------------------------------------------------------------


def _corrupt(peer: str, chunks: int = 1, swarm: str = "a") -> CorruptPeerReport:
    return CorruptPeerReport(
        swarm_id=swarm, peer_id=peer, ip="192.0.2.5", port=7001, corrupt_chunks=chunks
    )


def test_corrupt_reports_go_with_the_next_report_and_once_each() -> None:
    me = session()
    me.note_corrupt([_corrupt(f"p{n}") for n in range(MAX_CORRUPT_REPORTS + 2)])
    first = me.report(now=1.0)
    request = sent(first)
    assert isinstance(request, StatReportRequest)
    assert [r.peer_id for r in request.corrupt_peers] == [
        f"p{n}" for n in range(MAX_CORRUPT_REPORTS)
    ]
    assert step(me, first, ok(request)) is None and first.done
    # The rest goes with the next report, then none.
    second = me.report(now=2.0)
    request = sent(second)
    assert isinstance(request, StatReportRequest)
    assert [r.peer_id for r in request.corrupt_peers] == [
        f"p{MAX_CORRUPT_REPORTS}",
        f"p{MAX_CORRUPT_REPORTS + 1}",
    ]
    step(me, second, ok(request))
    request = sent(me.report(now=3.0))
    assert isinstance(request, StatReportRequest) and request.corrupt_peers == ()
    assert me.pending_corrupt_reports == ()


@pytest.mark.parametrize("version", [V11, V10])
def test_corrupt_reports_not_accepted_are_sent_again(version: ProtocolVersion) -> None:
    me = session(version=version)
    me.note_corrupt([_corrupt("liar")])
    refused = me.report(now=1.0)
    with pytest.raises(Forbidden):
        step(me, refused, refusal(sent(refused), TrackerErrorCode.FORBIDDEN))
    given_up = me.report(now=2.0)
    given_up.abandon()  # an unreachable tracker
    operation = me.report(now=3.0)
    request = sent(operation)
    assert isinstance(request, StatReportRequest) and request.version is version
    assert request.corrupt_peers == (_corrupt("liar"),)
    # More corrupt data from it while the report is in flight: kept, with the total, to resend.
    me.note_corrupt([_corrupt("liar", 2)])
    step(me, operation, ok(request))
    assert me.pending_corrupt_reports == (_corrupt("liar", 3),)


def test_pending_corrupt_reports_are_bounded() -> None:
    me = session()
    me.note_corrupt([_corrupt(f"p{n}") for n in range(MAX_PENDING_CORRUPT_REPORTS + 5)])
    me.note_corrupt([_corrupt("p0", 4)])  # one already kept: its count grows
    pending = me.pending_corrupt_reports
    assert len(pending) == MAX_PENDING_CORRUPT_REPORTS
    assert pending[0] == _corrupt("p0", 5)
