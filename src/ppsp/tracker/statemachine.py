"""The tracker's state machines, as data.

Two machines live here (draft-ietf-ppsp-base-tracker-protocol-12 section 2.3 and
draft-huang-ppsp-extended-tracker-protocol-01 section 3.2):

* the *tracker* machine, INIT -> STARTED -> TERMINATED (transient) -> INIT, driven by the first
  registration and the removal of the last one;
* the *per-peer* transaction machine, START -> PEER REGISTERED -> TRACKING -> TERMINATE, one
  instance per registered peer ID.  PPSP-TP/1.0 and PPSP-TP/1.1 each have their own table; the
  tracker picks the table by the version of the CONNECT that registered the peer.

Requests are first *classified* into a :class:`PeerEvent` by :func:`classify`, using only the
request and the set of swarms the peer has joined.  Classification never fails: a request whose
swarm actions are not a valid combination (Table 6 of the 1.0 draft, Table 9 of the 1.1 draft)
becomes one of the ``*_INVALID`` events, which appear in no table.  The table then maps
``(state, event)`` to a :class:`Transition` (what to do, where to go, which timer to run); any
pair not in the table raises :class:`~ppsp.errors.Forbidden` (403 / error code 03), as h2 does
for its connection machine.

What an error does to the peer's timers (the drafts' error conditions A and B) is a second,
smaller table, :data:`ERROR_POLICY`.

Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ppsp.errors import Forbidden
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    DisconnectRequest,
    DisconnectScope,
    FindRequest,
    IdentityEnum,
    JoinRequest,
    PeerMode,
    ProtocolVersion,
    StatReportRequest,
    SwarmActionType,
)

__all__ = [
    "ERROR_POLICY",
    "MACHINES",
    "TRACKER_TRANSITIONS",
    "ErrorPolicy",
    "PeerAction",
    "PeerEvent",
    "PeerMachine",
    "PeerState",
    "TimerEffect",
    "TrackerEvent",
    "TrackerState",
    "Transition",
    "classify",
    "machine_for",
    "refusal_reason",
    "tracker_state",
]


# ---------------------------------------------------------------------------------------------
# The tracker machine
# ---------------------------------------------------------------------------------------------


class TrackerState(IdentityEnum):
    """State of the tracker as a whole (Figure 4 of the 1.0 draft)."""

    INIT = "INIT"
    STARTED = "STARTED"
    TERMINATED = "TERMINATED"


class TrackerEvent(IdentityEnum):
    """What moves the tracker machine."""

    FIRST_PEER = "first peer registered"
    LAST_PEER_REMOVED = "last peer removed"
    RESTART = "restart"


TRACKER_TRANSITIONS: dict[tuple[TrackerState, TrackerEvent], TrackerState] = {
    (TrackerState.INIT, TrackerEvent.FIRST_PEER): TrackerState.STARTED,
    (TrackerState.STARTED, TrackerEvent.LAST_PEER_REMOVED): TrackerState.TERMINATED,
    # TERMINATED is transient: the tracker goes straight back to INIT.
    (TrackerState.TERMINATED, TrackerEvent.RESTART): TrackerState.INIT,
}
"""The tracker machine, (state, event) -> next state."""


def tracker_state(peer_count: int) -> TrackerState:
    """The tracker machine's stable state for a number of registered peers.

    The machine is fully determined by whether any peer is registered, so the tracker derives
    it from its storage instead of keeping a copy that could drift (TERMINATED is transient and
    never observed).
    """
    return TrackerState.STARTED if peer_count > 0 else TrackerState.INIT


# ---------------------------------------------------------------------------------------------
# The per-peer machine
# ---------------------------------------------------------------------------------------------


class PeerState(IdentityEnum):
    """State of one peer ID's transaction machine."""

    START = "START"
    PEER_REGISTERED = "PEER REGISTERED"
    TRACKING = "TRACKING"
    TERMINATE = "TERMINATE"


class PeerEvent(IdentityEnum):
    """A classified request (or a timeout) as seen by the per-peer machine.

    ``*_INVALID`` events are requests whose swarm information is not valid for the peer; they
    are in no table, so they always end in Forbidden.
    """

    REGISTER = "CONNECT (registration)"
    CONNECT_JOIN = "CONNECT (JOIN actions)"
    CONNECT_SWITCH = "CONNECT (LEAVE + LEECH JOIN)"
    CONNECT_LEAVE = "CONNECT (LEAVE some swarms)"
    CONNECT_LEAVE_ALL = "CONNECT (LEAVE every swarm)"
    CONNECT_INVALID = "CONNECT (invalid actions)"
    JOIN = "JOIN"
    JOIN_INVALID = "JOIN (swarm already joined)"
    FIND = "FIND"
    FIND_INVALID = "FIND (swarm not joined)"
    STAT_REPORT = "STAT_REPORT"
    STAT_REPORT_INVALID = "STAT_REPORT (swarm not joined)"
    DISCONNECT_SOME = "DISCONNECT (x, swarms remain)"
    DISCONNECT_LAST = "DISCONNECT (x = last swarms, or ALL)"
    DISCONNECT_INVALID = "DISCONNECT (swarm not joined)"
    DISCONNECT_SYSTEM = "DISCONNECT (nil)"
    TIMEOUT = "timeout"


class PeerAction(IdentityEnum):
    """What the tracker does on a transition."""

    REGISTER = "register the peer"
    REGISTER_AND_JOIN = "register the peer and join the swarms"
    JOIN = "join the swarms"
    SWITCH = "leave some swarms, join others"
    LEAVE = "leave the swarms"
    FIND = "return a peer list"
    REPORT = "store statistics and content maps"
    DEREGISTER = "clean peer info, delete registration"
    EXPIRE = "clean peer info, delete registration (timer ran out)"


class TimerEffect(IdentityEnum):
    """Which timer runs after a transition (a running timer is restarted)."""

    INIT = "init timer"
    TRACK = "track timer"
    STOP = "no timer"


@dataclass(frozen=True, slots=True)
class Transition:
    """One table entry: the action to take, the state to enter, the timer to (re)start."""

    action: PeerAction
    next_state: PeerState
    timer: TimerEffect


class ErrorPolicy(IdentityEnum):
    """What a rejected request does to the timer of a peer in a given state."""

    KEEP = "timer unchanged"
    RESET_ONCE = "reset the timer once until a valid message arrives"


S = PeerState
E = PeerEvent
A = PeerAction
T = TimerEffect

_COMMON_TRACKING: dict[tuple[PeerState, PeerEvent], Transition] = {
    (S.TRACKING, E.FIND): Transition(A.FIND, S.TRACKING, T.TRACK),
    (S.TRACKING, E.STAT_REPORT): Transition(A.REPORT, S.TRACKING, T.TRACK),
    (S.TRACKING, E.CONNECT_SWITCH): Transition(A.SWITCH, S.TRACKING, T.TRACK),
    (S.TRACKING, E.CONNECT_LEAVE): Transition(A.LEAVE, S.TRACKING, T.TRACK),
    (S.TRACKING, E.CONNECT_LEAVE_ALL): Transition(A.DEREGISTER, S.TERMINATE, T.STOP),
    (S.TRACKING, E.TIMEOUT): Transition(A.EXPIRE, S.TERMINATE, T.STOP),
}

V1_0_TABLE: dict[tuple[PeerState, PeerEvent], Transition] = {
    # PEER REGISTERED is transient in 1.0: a CONNECT registers and performs its actions at once.
    (S.START, E.CONNECT_JOIN): Transition(A.REGISTER_AND_JOIN, S.TRACKING, T.TRACK),
    **_COMMON_TRACKING,
}
"""PPSP-TP/1.0 per-peer machine (Figure 5 and Table 6 of the 1.0 draft)."""

V1_1_TABLE: dict[tuple[PeerState, PeerEvent], Transition] = {
    (S.START, E.REGISTER): Transition(A.REGISTER, S.PEER_REGISTERED, T.INIT),
    (S.START, E.CONNECT_JOIN): Transition(A.REGISTER_AND_JOIN, S.TRACKING, T.TRACK),
    (S.PEER_REGISTERED, E.JOIN): Transition(A.JOIN, S.TRACKING, T.TRACK),
    (S.PEER_REGISTERED, E.DISCONNECT_SYSTEM): Transition(A.DEREGISTER, S.TERMINATE, T.STOP),
    (S.PEER_REGISTERED, E.TIMEOUT): Transition(A.EXPIRE, S.TERMINATE, T.STOP),
    (S.TRACKING, E.JOIN): Transition(A.JOIN, S.TRACKING, T.TRACK),
    (S.TRACKING, E.DISCONNECT_SOME): Transition(A.LEAVE, S.TRACKING, T.TRACK),
    # Leaving the last swarm goes back to PEER REGISTERED, where the init timer runs again so
    # that an idle registration still expires.
    (S.TRACKING, E.DISCONNECT_LAST): Transition(A.LEAVE, S.PEER_REGISTERED, T.INIT),
    (S.TRACKING, E.DISCONNECT_SYSTEM): Transition(A.DEREGISTER, S.TERMINATE, T.STOP),
    **_COMMON_TRACKING,
}
"""PPSP-TP/1.1 per-peer machine (Figure 3 and Table 9 of the 1.1 draft)."""

del S, E, A, T

ERROR_POLICY: dict[tuple[ProtocolVersion, PeerState], ErrorPolicy] = {
    # 1.1 condition A: "resets the init timer one last time".
    (ProtocolVersion.V1_1, PeerState.PEER_REGISTERED): ErrorPolicy.RESET_ONCE,
    # 1.1 condition B resets the track timer; its NOTE advises doing so "one last time", so a
    # peer that only ever sends invalid requests still times out.
    (ProtocolVersion.V1_1, PeerState.TRACKING): ErrorPolicy.RESET_ONCE,
    # 1.0 condition B (draft -12): respond with the error, nothing else.
    (ProtocolVersion.V1_0, PeerState.TRACKING): ErrorPolicy.KEEP,
    (ProtocolVersion.V1_0, PeerState.PEER_REGISTERED): ErrorPolicy.KEEP,
}
"""(machine version, state) -> what an error does to the peer's timer.  START: nothing exists."""


class PeerMachine:
    """The per-peer transaction machine of one protocol version: a table and a lookup."""

    __slots__ = ("table", "version")

    def __init__(
        self, version: ProtocolVersion, table: Mapping[tuple[PeerState, PeerEvent], Transition]
    ) -> None:
        self.version = version
        self.table = dict(table)

    def transition(self, state: PeerState, event: PeerEvent) -> Transition:
        """The transition for ``event`` in ``state``; Forbidden when the table has none."""
        try:
            return self.table[(state, event)]
        except KeyError:
            raise Forbidden(
                f"{event.value} not allowed in state {state.value} (PPSP-TP/{self.version.value})",
                reason=refusal_reason(state, event),
            ) from None

    def error_policy(self, state: PeerState) -> ErrorPolicy:
        """What a rejected request does to the timer of a peer in ``state``."""
        return ERROR_POLICY.get((self.version, state), ErrorPolicy.KEEP)

    def describe(self) -> str:
        """The table as text, one transition per line (for documentation and debugging)."""
        lines = [f"PPSP-TP/{self.version.value} per-peer machine"]
        for (state, event), tr in self.table.items():
            lines.append(
                f"  {state.value:<16} --{event.value}--> {tr.next_state.value:<16}"
                f" [{tr.action.value}; {tr.timer.value}]"
            )
        return "\n".join(lines)


_REFUSED_EVENT: dict[PeerEvent, str] = {
    PeerEvent.JOIN_INVALID: "Swarm already joined",
    PeerEvent.FIND_INVALID: "Swarm not joined",
    PeerEvent.STAT_REPORT_INVALID: "Swarm not joined",
    PeerEvent.DISCONNECT_INVALID: "Swarm not joined",
    PeerEvent.CONNECT_INVALID: "Swarm actions invalid for this peer",
}
"""The reason phrase of a refused ``*_INVALID`` event (what was wrong with its swarms)."""

_CONNECTS = frozenset(
    {
        PeerEvent.REGISTER,
        PeerEvent.CONNECT_JOIN,
        PeerEvent.CONNECT_SWITCH,
        PeerEvent.CONNECT_LEAVE,
        PeerEvent.CONNECT_LEAVE_ALL,
        PeerEvent.CONNECT_INVALID,
    }
)


def refusal_reason(state: PeerState, event: PeerEvent) -> str:
    """The HTTP reason phrase of a request ``event`` refused in ``state`` (docs/PROTOCOL.md,
    "Refusals and their reasons"): one short line of the tracker's own words, never the
    request's."""
    if state is PeerState.START and event not in _CONNECTS:
        return "Peer ID not registered"
    found = _REFUSED_EVENT.get(event)
    if found is not None:
        return found
    if event is PeerEvent.REGISTER:
        return "Peer ID already registered"
    return f"{event.value} not allowed in state {state.value}"


MACHINES: dict[ProtocolVersion, PeerMachine] = {
    ProtocolVersion.V1_0: PeerMachine(ProtocolVersion.V1_0, V1_0_TABLE),
    ProtocolVersion.V1_1: PeerMachine(ProtocolVersion.V1_1, V1_1_TABLE),
}
"""One machine per protocol version."""


def machine_for(version: ProtocolVersion) -> PeerMachine:
    """The per-peer machine for a peer registered with a CONNECT of ``version``."""
    return MACHINES[version]


def classify(request: AnyRequest, joined: Mapping[str, PeerMode]) -> PeerEvent:
    """Turn a request into a :class:`PeerEvent`, given the swarms the peer has joined.

    Classification depends only on the request and ``joined`` (empty for an unknown peer);
    whether the event is allowed in the peer's state is the table's business.
    """
    if isinstance(request, ConnectRequest):
        return _classify_connect(request, joined)
    if isinstance(request, JoinRequest):
        names = [s.swarm_id for s in request.swarms]
        if not names or _has_duplicates(names) or any(n in joined for n in names):
            return PeerEvent.JOIN_INVALID
        return PeerEvent.JOIN
    if isinstance(request, DisconnectRequest):
        return _classify_disconnect(request, joined)
    if isinstance(request, FindRequest):
        return PeerEvent.FIND if request.swarm_id in joined else PeerEvent.FIND_INVALID
    if isinstance(request, StatReportRequest):
        named = [s.swarm_id for s in request.stream_stats if s.swarm_id is not None]
        named += [m.swarm_id for m in request.content_maps]
        if all(n in joined for n in named):
            return PeerEvent.STAT_REPORT
        return PeerEvent.STAT_REPORT_INVALID
    raise TypeError(f"not a tracker request: {type(request).__name__}")


def _has_duplicates(names: list[str]) -> bool:
    return len(set(names)) != len(names)


def _classify_connect(request: ConnectRequest, joined: Mapping[str, PeerMode]) -> PeerEvent:
    actions = request.swarm_actions
    if not actions:
        return PeerEvent.REGISTER
    if _has_duplicates([a.swarm_id for a in actions]):
        return PeerEvent.CONNECT_INVALID
    # An action without @action is a JOIN: the 1.0 drafts only ever omit it for joins.
    leaves = [a for a in actions if a.action is SwarmActionType.LEAVE]
    joins = [a for a in actions if a.action is not SwarmActionType.LEAVE]
    if any(a.swarm_id in joined for a in joins):
        # JOIN of a swarm already joined (e.g. Table 9 "N SEED JOIN TRACKING: Invalid").
        return PeerEvent.CONNECT_INVALID
    if any(a.swarm_id not in joined for a in leaves):
        # LEAVE of a swarm not joined, which covers every LEAVE from START.
        return PeerEvent.CONNECT_INVALID
    if not leaves:
        return PeerEvent.CONNECT_JOIN
    if joins:
        # The channel switch of Tables 6 and 9: the joins are as LEECH.
        if all(a.peer_mode in (None, PeerMode.LEECH) for a in joins):
            return PeerEvent.CONNECT_SWITCH
        return PeerEvent.CONNECT_INVALID
    if len(leaves) == len(joined):
        return PeerEvent.CONNECT_LEAVE_ALL
    return PeerEvent.CONNECT_LEAVE


def _classify_disconnect(request: DisconnectRequest, joined: Mapping[str, PeerMode]) -> PeerEvent:
    if request.scope is DisconnectScope.SYSTEM:
        return PeerEvent.DISCONNECT_SYSTEM
    if request.scope is DisconnectScope.ALL_SWARMS:
        return PeerEvent.DISCONNECT_LAST if joined else PeerEvent.DISCONNECT_INVALID
    names = [s.swarm_id for s in request.swarms]
    if not names or _has_duplicates(names) or any(n not in joined for n in names):
        return PeerEvent.DISCONNECT_INVALID
    return PeerEvent.DISCONNECT_LAST if len(names) == len(joined) else PeerEvent.DISCONNECT_SOME
