"""The per-peer machines as tables: every (state, event) pair, and request classification."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.errors import Forbidden, TrackerErrorCode
from ppsp.tracker.statemachine import (
    MACHINES,
    TRACKER_TRANSITIONS,
    ErrorPolicy,
    PeerAction,
    PeerEvent,
    PeerState,
    TimerEffect,
    TrackerEvent,
    TrackerState,
    Transition,
    classify,
    machine_for,
    tracker_state,
)
from ppsp.wire.tracker import (
    ConnectRequest,
    DisconnectRequest,
    DisconnectScope,
    FindRequest,
    JoinRequest,
    PeerMode,
    ProtocolVersion,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
)

V10, V11 = ProtocolVersion.V1_0, ProtocolVersion.V1_1
JOIN, LEAVE = SwarmActionType.JOIN, SwarmActionType.LEAVE
SEED, LEECH = PeerMode.SEED, PeerMode.LEECH


@settings(max_examples=300, deadline=None)
@given(
    version=st.sampled_from(list(ProtocolVersion)),
    state=st.sampled_from(list(PeerState)),
    event=st.sampled_from(list(PeerEvent)),
)
def test_every_pair_is_a_table_transition_or_forbidden(
    version: ProtocolVersion, state: PeerState, event: PeerEvent
) -> None:
    machine = machine_for(version)
    expected = machine.table.get((state, event))
    if expected is None:
        with pytest.raises(Forbidden) as info:
            machine.transition(state, event)
        assert info.value.code is TrackerErrorCode.FORBIDDEN
        assert info.value.http_status == 403
    else:
        assert machine.transition(state, event) == expected


def test_invalid_events_and_terminate_appear_in_no_table() -> None:
    invalid = {e for e in PeerEvent if e.name.endswith("_INVALID")}
    for machine in MACHINES.values():
        for (state, event), tr in machine.table.items():
            assert event not in invalid
            assert state is not PeerState.TERMINATE
            # Terminating stops every timer; staying alive always runs one.
            assert (tr.next_state is PeerState.TERMINATE) == (tr.timer is TimerEffect.STOP)


def test_v11_table_follows_figure_3() -> None:
    m = machine_for(V11)
    S, E = PeerState, PeerEvent
    assert m.transition(S.START, E.REGISTER) == Transition(
        PeerAction.REGISTER, S.PEER_REGISTERED, TimerEffect.INIT
    )
    assert m.transition(S.START, E.CONNECT_JOIN).next_state is S.TRACKING
    assert m.transition(S.PEER_REGISTERED, E.JOIN).timer is TimerEffect.TRACK
    assert m.transition(S.TRACKING, E.DISCONNECT_LAST).next_state is S.PEER_REGISTERED
    assert m.transition(S.TRACKING, E.DISCONNECT_LAST).timer is TimerEffect.INIT
    assert m.transition(S.TRACKING, E.DISCONNECT_SOME).next_state is S.TRACKING
    assert m.transition(S.TRACKING, E.CONNECT_LEAVE_ALL).next_state is S.TERMINATE
    for state in (S.PEER_REGISTERED, S.TRACKING):
        assert m.transition(state, E.DISCONNECT_SYSTEM).action is PeerAction.DEREGISTER
        assert m.transition(state, E.TIMEOUT).next_state is S.TERMINATE
    # Error condition A: FIND, CONNECT, STAT_REPORT while PEER REGISTERED.
    for event in (E.FIND, E.REGISTER, E.CONNECT_JOIN, E.STAT_REPORT):
        with pytest.raises(Forbidden):
            m.transition(S.PEER_REGISTERED, event)
    # Error condition B: a registration CONNECT or CONNECT with JOINs while TRACKING.
    for event in (E.REGISTER, E.CONNECT_JOIN):
        with pytest.raises(Forbidden):
            m.transition(S.TRACKING, event)
    assert m.error_policy(S.PEER_REGISTERED) is ErrorPolicy.RESET_ONCE
    assert m.error_policy(S.TRACKING) is ErrorPolicy.RESET_ONCE


def test_v10_table_has_no_11_operations() -> None:
    m = machine_for(V10)
    for event in (
        PeerEvent.REGISTER,
        PeerEvent.JOIN,
        PeerEvent.DISCONNECT_SOME,
        PeerEvent.DISCONNECT_LAST,
        PeerEvent.DISCONNECT_SYSTEM,
    ):
        for state in PeerState:
            with pytest.raises(Forbidden):
                m.transition(state, event)
    assert m.transition(PeerState.START, PeerEvent.CONNECT_JOIN).next_state is PeerState.TRACKING
    assert m.error_policy(PeerState.TRACKING) is ErrorPolicy.KEEP


def test_describe_prints_every_transition() -> None:
    for machine in MACHINES.values():
        text = machine.describe()
        assert len(text.splitlines()) == len(machine.table) + 1
        assert "TRACKING" in text


def test_tracker_machine() -> None:
    assert tracker_state(0) is TrackerState.INIT
    assert tracker_state(3) is TrackerState.STARTED
    state = TrackerState.INIT
    for event in (TrackerEvent.FIRST_PEER, TrackerEvent.LAST_PEER_REMOVED, TrackerEvent.RESTART):
        state = TRACKER_TRANSITIONS[(state, event)]
    assert state is TrackerState.INIT


# -- classification (Table 6 / Table 9) --------------------------------------------------------


def connect(*actions: tuple[str, SwarmActionType | None, PeerMode | None]) -> ConnectRequest:
    return ConnectRequest(
        version=V11,
        transaction_id="1",
        peer_id="p",
        swarm_actions=tuple(SwarmAction(swarm_id=s, action=a, peer_mode=m) for s, a, m in actions),
    )


NONE: dict[str, PeerMode] = {}
ONE = {"1": LEECH}
TWO = {"1": SEED, "2": SEED}


@pytest.mark.parametrize(
    ("request_", "joined", "event"),
    [
        # Table 9 rows, with START = nothing joined.
        (connect(("1", JOIN, LEECH)), NONE, PeerEvent.CONNECT_JOIN),
        (connect(("1", LEAVE, LEECH)), NONE, PeerEvent.CONNECT_INVALID),
        (connect(("1", LEAVE, LEECH)), ONE, PeerEvent.CONNECT_LEAVE_ALL),
        (connect(("1", JOIN, LEECH), ("2", LEAVE, LEECH)), NONE, PeerEvent.CONNECT_INVALID),
        (connect(("1", LEAVE, LEECH), ("2", JOIN, LEECH)), ONE, PeerEvent.CONNECT_SWITCH),
        (connect(("x", JOIN, LEECH), ("y", JOIN, SEED)), NONE, PeerEvent.CONNECT_JOIN),
        (connect(("1", JOIN, SEED), ("2", JOIN, SEED)), NONE, PeerEvent.CONNECT_JOIN),
        (connect(("1", JOIN, SEED), ("2", JOIN, SEED)), TWO, PeerEvent.CONNECT_INVALID),
        (connect(("1", LEAVE, SEED), ("2", LEAVE, SEED)), TWO, PeerEvent.CONNECT_LEAVE_ALL),
        # Beyond the tables.
        (connect(("3", JOIN, SEED)), TWO, PeerEvent.CONNECT_JOIN),  # then Forbidden (B)
        (connect(("1", LEAVE, SEED)), TWO, PeerEvent.CONNECT_LEAVE),
        (connect(("1", LEAVE, None), ("3", JOIN, SEED)), TWO, PeerEvent.CONNECT_INVALID),
        (connect(("1", JOIN, None), ("1", JOIN, None)), NONE, PeerEvent.CONNECT_INVALID),
        (connect(("1", None, None)), NONE, PeerEvent.CONNECT_JOIN),
        (connect(), NONE, PeerEvent.REGISTER),
        (connect(), ONE, PeerEvent.REGISTER),
    ],
)
def test_classify_connect(
    request_: ConnectRequest, joined: dict[str, PeerMode], event: PeerEvent
) -> None:
    assert classify(request_, joined) is event


def _join(*names: str) -> JoinRequest:
    return JoinRequest(
        version=V11,
        transaction_id="1",
        peer_id="p",
        swarms=tuple(SwarmAction(swarm_id=n, peer_mode=SEED) for n in names),
    )


def _disconnect(scope: DisconnectScope, *names: str) -> DisconnectRequest:
    return DisconnectRequest(
        version=V11,
        transaction_id="1",
        peer_id="p",
        scope=scope,
        swarms=tuple(SwarmAction(swarm_id=n) for n in names),
    )


def test_classify_other_requests() -> None:
    S = DisconnectScope
    assert classify(_join("1"), NONE) is PeerEvent.JOIN
    assert classify(_join("3"), TWO) is PeerEvent.JOIN
    assert classify(_join("1"), TWO) is PeerEvent.JOIN_INVALID
    assert classify(_join("3", "3"), TWO) is PeerEvent.JOIN_INVALID
    assert classify(_join(), TWO) is PeerEvent.JOIN_INVALID
    assert classify(_disconnect(S.SYSTEM), NONE) is PeerEvent.DISCONNECT_SYSTEM
    assert classify(_disconnect(S.ALL_SWARMS, "ALL"), TWO) is PeerEvent.DISCONNECT_LAST
    assert classify(_disconnect(S.ALL_SWARMS, "ALL"), NONE) is PeerEvent.DISCONNECT_INVALID
    assert classify(_disconnect(S.SWARMS, "1"), TWO) is PeerEvent.DISCONNECT_SOME
    assert classify(_disconnect(S.SWARMS, "2", "1"), TWO) is PeerEvent.DISCONNECT_LAST
    assert classify(_disconnect(S.SWARMS, "9"), TWO) is PeerEvent.DISCONNECT_INVALID
    find = FindRequest(version=V11, transaction_id="1", peer_id="p", swarm_id="1")
    assert classify(find, ONE) is PeerEvent.FIND
    assert classify(find, NONE) is PeerEvent.FIND_INVALID
    keepalive = StatReportRequest(version=V11, transaction_id="1", peer_id="p")
    assert classify(keepalive, NONE) is PeerEvent.STAT_REPORT
    wide = StatReportRequest(
        version=V11,
        transaction_id="1",
        peer_id="p",
        stream_stats=(StreamStatistics(uploaded_bytes=1),),
    )
    assert classify(wide, NONE) is PeerEvent.STAT_REPORT
    other = StatReportRequest(
        version=V11,
        transaction_id="1",
        peer_id="p",
        stream_stats=(StreamStatistics(swarm_id="2"),),
    )
    assert classify(other, ONE) is PeerEvent.STAT_REPORT_INVALID
    assert classify(other, TWO) is PeerEvent.STAT_REPORT


def test_every_refusal_has_a_reason_of_its_own() -> None:
    # docs/PROTOCOL.md, "Refusals and their reasons": the reason phrase says why, in the
    # tracker's words; only the version refusal begins "PPSP version".
    reasons = set()
    for machine in MACHINES.values():
        for state in PeerState:
            for event in PeerEvent:
                if (state, event) in machine.table:
                    continue
                with pytest.raises(Forbidden) as refused:
                    machine.transition(state, event)
                reason = refused.value.reason
                assert reason != "Forbidden" and not reason.startswith("PPSP version")
                assert reason.isascii() and reason.isprintable() and len(reason) <= 100
                reasons.add(reason)
    assert {
        "Peer ID not registered",
        "Swarm already joined",
        "Swarm not joined",
        "Swarm actions invalid for this peer",
    } <= reasons
