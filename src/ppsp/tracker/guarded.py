"""The tracker's one-round-trip path: a request decided on a guess that the storage checks.

With a storage shared between processes (Redis, ``Storage.guarded``), reading the peer's record
before deciding would cost a round trip of its own.  Instead :func:`answer_guarded` guesses the
stored peer from the request alone (a CONNECT from a peer not registered yet, a JOIN from a
registered peer in none of the swarms it names, a FIND, STAT_REPORT or DISCONNECT from a
registered peer in the states where each is allowed: :func:`_guess`, from the state machines)
and hands the guess to one storage call that checks it where the record is, then writes and
reads what the answer needs (docs/PROTOCOL.md, "One round trip to Redis per request").  When
the guess does not hold nothing is written and the answer is None: the caller,
:meth:`Tracker.handle <ppsp.tracker.core.Tracker.handle>`, takes its ordinary path.

Kept apart from :mod:`ppsp.tracker.core` because no other storage takes this path and its
guesses are a question of their own (which states the machines agree on).  The functions take
the tracker and use its own steps (the record after a request, the answer, the peer lists,
the deadline it tracks), so that both paths write and answer alike; the core imports this
module, which needs nothing of the core at run time (:mod:`ppsp.tracker.context`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ppsp.errors import Forbidden
from ppsp.tracker.addresses import usable_addresses
from ppsp.tracker.context import RequestContext, action_results, swarm_mode
from ppsp.tracker.credentials import Credentials
from ppsp.tracker.peerlist import peer_count
from ppsp.tracker.statemachine import (
    PeerAction,
    PeerEvent,
    PeerState,
    TimerEffect,
    Transition,
    classify,
    machine_for,
)
from ppsp.tracker.storage.base import Guard
from ppsp.wire.fields import MAX_LISTED_PEERS
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    DisconnectRequest,
    DisconnectScope,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerMode,
    PeerNum,
    ProtocolVersion,
    StatReportRequest,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

if TYPE_CHECKING:
    from ppsp.tracker.core import Tracker

__all__ = ["answer_guarded"]


async def answer_guarded(
    tracker: Tracker,
    request: AnyRequest,
    reflexive: PeerAddress,
    now: float,
    credentials: Credentials | None,
) -> TrackerResponse | None:
    """The request handled in one storage round trip, on a guess of the stored peer.

    A CONNECT is guessed to come from a peer not registered yet; a FIND, a STAT_REPORT
    and a DISCONNECT of the whole system from a registered peer in the states where they
    are allowed, a member of every swarm they name, whose last address is REFLEXIVE at the
    observed IP address (the host check of open mode; any IP address with a token).  The
    storage checks the guess before it writes; None when it does not hold (nothing
    written: the caller reads and decides as usual).
    """
    if isinstance(request, ConnectRequest):
        return await _register_new(tracker, request, reflexive, now)
    if isinstance(request, JoinRequest):
        return await _join_guarded(tracker, request, reflexive, now, credentials)
    swarms: tuple[str, ...] = ()
    if isinstance(request, FindRequest):
        event, swarms = PeerEvent.FIND, (request.swarm_id,)
    elif isinstance(request, StatReportRequest):
        named = [s.swarm_id for s in request.stream_stats if s.swarm_id is not None]
        named += [m.swarm_id for m in request.content_maps]
        event, swarms = PeerEvent.STAT_REPORT, tuple(dict.fromkeys(named))
    elif isinstance(request, DisconnectRequest) and request.scope is DisconnectScope.SYSTEM:
        event = PeerEvent.DISCONNECT_SYSTEM
    else:
        return None
    guess = _guess(event)
    if guess is None:
        return None
    version, states, transition = guess
    addresses: tuple[PeerAddress, ...] | None = None
    if request.addresses:
        addresses = (*usable_addresses(request.addresses, reflexive), reflexive)
    guard = Guard(
        version=version,
        states=states,
        swarms=swarms,
        host=reflexive.ip if credentials is None else None,
    )
    deadline = _deadline(tracker, transition.timer, now)
    ctx = RequestContext(
        request=request,
        record=None,
        joined={},
        machine=machine_for(version or request.version),
        transition=transition,
        reflexive=reflexive,
        now=now,
    )
    if isinstance(request, FindRequest):
        count = min(peer_count(request.peer_num, tracker.config.max_peers), MAX_LISTED_PEERS)
        scope = request.content_group
        found = await tracker.storage.find_guarded(
            request.peer_id,
            request.swarm_id,
            guard,
            state=transition.next_state,
            addresses=addresses,
            reflexive=reflexive,
            deadline=deadline,
            limit=tracker.config.candidate_sample if count else None,
            with_maps=bool(scope),
        )
        if found is None:
            return None
        record, read = found
        tracker._track_deadline(record)
        peers = await tracker._peer_list(
            request.swarm_id,
            record,
            request.peer_num,
            scope,
            require_scope=bool(scope),
            now=now,
            read=read,
        )
        return tracker._response(ctx, peers=peers)
    if isinstance(request, StatReportRequest):
        written = await tracker.storage.report_guarded(
            request.peer_id,
            guard,
            state=transition.next_state,
            addresses=addresses,
            reflexive=reflexive,
            deadline=deadline,
            stats=request.stream_stats,
            content_maps=request.content_maps,
            limits=tracker.config.limits,
        )
        if written is None:
            return None
        tracker._track_deadline(written)
        await tracker._corrupt_reports(request, reflexive)
        return tracker._response(ctx, with_requester=False)
    if await tracker.storage.delete_guarded(request.peer_id, guard) is None:
        return None
    return tracker._response(ctx, with_requester=False)


async def _register_new(
    tracker: Tracker, request: ConnectRequest, reflexive: PeerAddress, now: float
) -> TrackerResponse | None:
    """A CONNECT guessed to come from a peer not registered yet (see :func:`answer_guarded`)."""
    machine = machine_for(request.version)
    try:
        transition = machine.transition(PeerState.START, classify(request, {}))
    except Forbidden:
        return None  # refused unless the peer is registered: the ordinary path decides
    if transition.action not in (PeerAction.REGISTER, PeerAction.REGISTER_AND_JOIN):
        return None
    ctx = RequestContext(
        request=request,
        record=None,
        joined={},
        machine=machine,
        transition=transition,
        reflexive=reflexive,
        now=now,
    )
    record = tracker._record_after(ctx)
    joins = [a for a in request.swarm_actions if a.action is not SwarmActionType.LEAVE]
    peer_num, scope = request.peer_num, request.content_group
    lists = _lists(tracker, joins, peer_num)
    reads = await tracker.storage.register_new(
        record,
        join=[(a.swarm_id, swarm_mode(a)) for a in joins],
        limits=tracker.config.limits,
        lists=lists,
        limit=tracker.config.candidate_sample,
        with_maps=bool(scope),
    )
    if reads is None:
        return None
    tracker._track_deadline(record)
    if transition.action is PeerAction.REGISTER:
        return tracker._response(ctx)
    peers = await tracker._list_joined(
        record, joins, peer_num, scope, reads=dict(zip(lists, reads, strict=True)), now=now
    )
    return tracker._response(ctx, results=action_results(request.swarm_actions), peers=peers)


async def _join_guarded(
    tracker: Tracker,
    request: JoinRequest,
    reflexive: PeerAddress,
    now: float,
    credentials: Credentials | None,
) -> TrackerResponse | None:
    """A JOIN guessed to come from a registered peer that is in none of the swarms it
    names (see :func:`answer_guarded`)."""
    names = [a.swarm_id for a in request.swarms]
    guess = _guess(PeerEvent.JOIN)
    if not names or len(set(names)) != len(names) or guess is None:
        return None
    version, states, transition = guess
    addresses: tuple[PeerAddress, ...] | None = None
    if request.addresses:
        addresses = (*usable_addresses(request.addresses, reflexive), reflexive)
    guard = Guard(
        version=version, states=states, host=reflexive.ip if credentials is None else None
    )
    joins = list(request.swarms)
    peer_num, scope = request.peer_num, request.content_group
    lists = _lists(tracker, joins, peer_num)
    found = await tracker.storage.join_guarded(
        request.peer_id,
        guard,
        state=transition.next_state,
        addresses=addresses,
        reflexive=reflexive,
        deadline=_deadline(tracker, transition.timer, now),
        join=[(a.swarm_id, swarm_mode(a)) for a in joins],
        limits=tracker.config.limits,
        lists=lists,
        limit=tracker.config.candidate_sample,
        with_maps=bool(scope),
    )
    if found is None:
        return None
    record, reads = found
    tracker._track_deadline(record)
    ctx = RequestContext(
        request=request,
        record=None,
        joined={},
        machine=machine_for(record.version),
        transition=transition,
        reflexive=reflexive,
        now=now,
    )
    peers = await tracker._list_joined(
        record, joins, peer_num, scope, reads=dict(zip(lists, reads, strict=True)), now=now
    )
    return tracker._response(ctx, results=action_results(request.swarms), peers=peers)


def _lists(tracker: Tracker, joins: Sequence[SwarmAction], peer_num: PeerNum | None) -> list[str]:
    """The swarms whose peer lists the tracker's ``_list_joined`` may give for these joins (it stops
    once an answer is full)."""
    if peer_count(peer_num, tracker.config.max_peers) <= 0:
        return []
    return [a.swarm_id for a in joins if swarm_mode(a) is PeerMode.LEECH or peer_num is not None]


def _deadline(tracker: Tracker, timer: TimerEffect, now: float) -> float:
    """When the timer a transition starts runs out (``now``: it stops)."""
    if timer is TimerEffect.INIT:
        return now + tracker.config.init_timeout
    if timer is TimerEffect.TRACK:
        return now + tracker.config.track_timeout
    return now


@functools.cache
def _guess(
    event: PeerEvent,
) -> tuple[ProtocolVersion | None, tuple[PeerState, ...], Transition] | None:
    """The registered states (and version: None for any) a request of ``event`` is guessed to
    come from: those where every version's machine takes one same transition, which it
    returns; None when the machines do not agree (no guess is made)."""
    found: dict[tuple[ProtocolVersion, PeerState], Transition] = {}
    for version in ProtocolVersion:
        for state in (PeerState.PEER_REGISTERED, PeerState.TRACKING):
            try:
                found[(version, state)] = machine_for(version).transition(state, event)
            except Forbidden:
                continue
    versions = {version for version, _ in found}
    states = tuple(sorted({state for _, state in found}, key=lambda s: s.name))
    transitions = set(found.values())
    if len(transitions) != 1 or len(found) != len(versions) * len(states):
        return None
    only = None if len(versions) == len(ProtocolVersion) else next(iter(versions))
    return only, states, transitions.pop()
