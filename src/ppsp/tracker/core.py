"""The tracker's protocol core: typed requests in, typed responses (or protocol errors) out.

:class:`Tracker` owns no socket, no event loop and no clock.  The HTTP layer decodes a request,
calls :meth:`Tracker.handle` with the address it observed and the current time, and encodes the
returned :class:`~ppsp.wire.tracker.TrackerResponse` (or the raised
:class:`~ppsp.errors.TrackerProtocolError`, whose ``transaction_id`` is always set).  Timers are
deadlines kept with each peer in the :class:`~ppsp.tracker.storage.Storage`; the caller arms one
wake-up at :meth:`Tracker.next_deadline` and calls :meth:`Tracker.expire` then, the aioquic
``get_timer()`` / ``handle_timer(now)`` shape.

Each request goes through three steps: classify it against the peer's joined swarms
(:func:`~ppsp.tracker.statemachine.classify`), look the (state, event) pair up in the peer's
machine (1.0 or 1.1, by the version of its registering CONNECT), and perform the table's action.
The core is ``async`` only because the storage may be remote.

Before that, the sender is checked (docs/PROTOCOL.md, "Tracker behaviour"): with a bearer token's
:class:`~ppsp.tracker.credentials.Credentials`, the PeerID must be the token's subject and the
swarms joined among the token's; without, a registered PeerID answers only to the host address
it was last seen at (the host that registered it, since no other host may use it).  A refused
sender changes nothing.  The bounds of :class:`~ppsp.tracker.limits.Limits` on what is stored
are checked by the storage, in the same step as the change (:meth:`Storage.update`).

This module is the ordinary path (read the peer, decide, write).  With a storage that checks
guesses (Redis) a request is first tried in one round trip, :mod:`ppsp.tracker.guarded`; what
the addresses of a request are worth is :mod:`ppsp.tracker.addresses` (its public names are
importable from here too), and what both paths carry to the answer :mod:`ppsp.tracker.context`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ppsp.errors import (
    AuthenticationRequired,
    Forbidden,
    TrackerProtocolError,
    UnsupportedVersion,
)
from ppsp.tracker.addresses import (
    AddressUse,
    address_use,
    host_of,
    reflexive_address,
    same_host,
    shared_reflexive,
    usable_addresses,
)
from ppsp.tracker.context import RequestContext, action_results, swarm_mode
from ppsp.tracker.credentials import Credentials
from ppsp.tracker.guarded import answer_guarded
from ppsp.tracker.limits import DEFAULT_LIMITS, Limits
from ppsp.tracker.peerlist import (
    listed_first,
    peer_count,
    requester_info,
    select_from_groups,
    select_peers,
    to_peer_infos,
)
from ppsp.tracker.punch_hints import PunchHints, behind_nat, first_listed
from ppsp.tracker.statemachine import (
    ErrorPolicy,
    PeerAction,
    PeerMachine,
    PeerState,
    TimerEffect,
    TrackerState,
    classify,
    machine_for,
    tracker_state,
)
from ppsp.tracker.storage.base import (
    PeerListRead,
    PeerRecord,
    Storage,
    SwarmMember,
    group_members,
)
from ppsp.wire.builder import keyword_builder
from ppsp.wire.fields import MAX_LISTED_PEERS
from ppsp.wire.tracker import (
    ActionResult,
    AddressType,
    AnyRequest,
    ConnectRequest,
    DisconnectRequest,
    DisconnectScope,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerInfo,
    PeerMode,
    PeerNum,
    ProtocolVersion,
    RepresentationScope,
    StatReportRequest,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

log = logging.getLogger(__name__)

__all__ = [
    "AddressUse",
    "Tracker",
    "TrackerConfig",
    "TrackerStats",
    "address_use",
    "reflexive_address",
    "usable_addresses",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerConfig:
    """Tracker settings.

    ``max_version``: the newest PPSP-TP version served (1.0 makes a 1.0-only tracker that
    refuses 1.1 requests with "PPSP version 1.0").  ``init_timeout`` / ``track_timeout``: the
    init and track timers, in seconds.  ``max_peers``: peer-list size when the request names
    none.  ``candidate_sample``: how many members of a large swarm are considered (a random
    sample) when building one peer list, where the storage reads members one by one (a
    chunk-scoped list; any list with a storage that does not keep its members grouped by rank,
    see :meth:`~ppsp.tracker.storage.Storage.member_groups`).  ``limits``: the bounds on what
    hosts and peers may hold (registrations, memberships, swarms, places in peer lists).
    ``require_credentials``: every request must come with a verified bearer token
    (``--auth-key``); without one it is refused with AUTHENTICATION REQUIRED.
    """

    max_version: ProtocolVersion = ProtocolVersion.V1_1
    init_timeout: float = 30.0
    track_timeout: float = 180.0
    max_peers: int = 20
    candidate_sample: int = 1000
    limits: Limits = DEFAULT_LIMITS
    require_credentials: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackerStats:
    """A snapshot of the tracker: registered peers, live swarms, memberships, machine state."""

    peers: int
    swarms: int
    memberships: int
    state: TrackerState
    reported: int = 0
    """Memberships with at least one believed corrupt-peer report."""
    suspects: int = 0
    """Memberships reported by ``Limits.suspect_reporters`` distinct hosts: listed last."""


# Built by writing their slots (ppsp.wire.builder), from keyword arguments.
_build_record = keyword_builder(PeerRecord)
_build_response = keyword_builder(TrackerResponse)


def _joined_swarms(request: AnyRequest) -> list[str]:
    """The swarms a request asks to join (JOIN, or the JOIN actions of a CONNECT)."""
    if isinstance(request, JoinRequest):
        return [a.swarm_id for a in request.swarms]
    if isinstance(request, ConnectRequest):
        return [a.swarm_id for a in request.swarm_actions if a.action is not SwarmActionType.LEAVE]
    return []


class Tracker:
    """A PPSP-TP tracker over a :class:`~ppsp.tracker.storage.Storage`.

    ``rng`` drives the random choice among equally good peers (pass a seeded one in tests).
    ``punch_hints``: who will punch towards whom (:mod:`ppsp.tracker.punch_hints`), this
    process's own table unless one is given.
    """

    def __init__(
        self,
        storage: Storage,
        config: TrackerConfig | None = None,
        *,
        rng: random.Random | None = None,
        punch_hints: PunchHints | None = None,
    ) -> None:
        self.storage = storage
        self.config = config if config is not None else TrackerConfig()
        self._rng = rng if rng is not None else random.Random()
        self.punch_hints = punch_hints if punch_hints is not None else PunchHints()
        """Askers behind NAT listed a peer lately, listed to it first (docs/PROTOCOL.md,
        "Tracker behaviour", "Hints for peers behind NAT")."""
        # Earliest deadline this tracker wrote or read.  Deadlines only move later when timers
        # are reset and peers only disappear, so this is never later than the true earliest
        # deadline of the peers this process wrote: waking at it is at worst early.
        self._next_deadline: float | None = None

    # -- public API -----------------------------------------------------------------------

    async def handle(
        self,
        request: AnyRequest,
        *,
        observed: tuple[str, int],
        now: float,
        credentials: Credentials | None = None,
    ) -> TrackerResponse:
        """Process one request from a peer seen at ``observed`` at time ``now``.

        ``credentials``: what the request's verified bearer token says (None: no token).
        Returns the success response, in the request's version.  Raises a
        :class:`~ppsp.errors.TrackerProtocolError` subclass (with ``transaction_id`` set) when
        the request is refused: :class:`~ppsp.errors.UnsupportedVersion` for a 1.1 request to a
        1.0-only tracker; :class:`~ppsp.errors.AuthenticationRequired` without credentials when
        they are required; :class:`~ppsp.errors.Forbidden` for a PeerID that is not the token's
        subject, a swarm outside the token's, a registered PeerID named from another host
        without a token, a per-host or per-peer bound, and anything the peer's state machine
        does not allow (including any request but CONNECT from an unregistered peer ID);
        :class:`~ppsp.errors.ServiceUnavailable` when the tracker is full (a bound on the
        total) or the storage fails.
        """
        try:
            return await self._handle(request, observed, now, credentials)
        except TrackerProtocolError as exc:
            if exc.transaction_id is None:
                exc.transaction_id = request.transaction_id
            raise

    async def expire(self, now: float) -> int:
        """Remove every peer whose init or track timer has run out; return how many."""
        removed, self._next_deadline = await self.storage.expire_next(now)
        return len(removed)

    def next_deadline(self) -> float | None:
        """When :meth:`expire` should next be called (None: no timer known to run).

        Exact for the memory backend.  With a storage shared between processes (Redis) it
        covers the timers this process set, plus what the last :meth:`expire` read back from
        the storage; call :meth:`expire` once at start-up to learn the stored timers.
        """
        return self._next_deadline

    async def stats(self) -> TrackerStats:
        """Counts of peers, swarms and memberships, and the tracker machine's state."""
        counts = await self.storage.counts()
        return TrackerStats(
            peers=counts.peers,
            swarms=counts.swarms,
            memberships=counts.memberships,
            state=tracker_state(counts.peers),
            reported=counts.reported,
            suspects=counts.suspects,
        )

    # -- request processing ---------------------------------------------------------------

    async def _handle(
        self,
        request: AnyRequest,
        observed: tuple[str, int],
        now: float,
        credentials: Credentials | None,
    ) -> TrackerResponse:
        if (
            request.version is ProtocolVersion.V1_1
            and self.config.max_version is ProtocolVersion.V1_0
        ):
            raise UnsupportedVersion(
                "this tracker speaks PPSP-TP/1.0 only", reason="PPSP version 1.0"
            )
        if credentials is not None:
            _check_credentials(request, credentials)
        elif self.config.require_credentials:
            raise AuthenticationRequired("this tracker needs a bearer token with every request")
        if self.storage.guarded:
            # One round trip (docs/PROTOCOL.md, "One round trip to Redis per request"): decided
            # on a guess the storage checks where the record is; when it does not hold,
            # nothing was written.
            answer = await answer_guarded(
                self, request, shared_reflexive(observed), now, credentials
            )
            if answer is not None:
                return answer
        record, joined = await self.storage.peer_and_memberships(request.peer_id)
        if record is not None and credentials is None:
            # Open mode: the PeerID answers to the host it was last seen at, which is the
            # host that registered it unless a token moved it.  Nothing is changed, not even
            # the timer: the request is not the peer's.
            addresses = record.addresses
            if addresses and addresses[-1].type is AddressType.REFLEXIVE:
                bound = addresses[-1].ip
                if not same_host(observed[0], bound):
                    raise Forbidden(
                        f"peer ID {request.peer_id} is registered from another host address",
                        reason="Peer ID registered from another host",
                    )
        state = record.state if record is not None else PeerState.START
        machine = machine_for(record.version if record is not None else request.version)
        event = classify(request, joined)
        try:
            transition = machine.transition(state, event)
        except Forbidden:
            if record is not None:
                await self._penalize(record, machine, now)
            raise
        ctx = RequestContext(
            request=request,
            record=record,
            joined=joined,
            machine=machine,
            transition=transition,
            reflexive=shared_reflexive(observed),
            now=now,
        )
        return await self._ACTIONS[transition.action](self, ctx)

    async def _penalize(self, record: PeerRecord, machine: PeerMachine, now: float) -> None:
        """Apply the error policy (conditions A and B) to a peer whose request was refused."""
        if machine.error_policy(record.state) is not ErrorPolicy.RESET_ONCE or record.grace_used:
            return
        timeout = (
            self.config.init_timeout
            if record.state is PeerState.PEER_REGISTERED
            else self.config.track_timeout
        )
        await self._put(replace(record, deadline=now + timeout, grace_used=True))

    async def _put(self, record: PeerRecord) -> None:
        await self.storage.put_peer(record)
        self._track_deadline(record)

    async def _update(
        self,
        record: PeerRecord,
        *,
        leave: Sequence[str] = (),
        join: Sequence[tuple[str, PeerMode]] = (),
    ) -> None:
        """Write the record and the swarm changes in one step, within the configured bounds."""
        await self.storage.update(record, leave=leave, join=join, limits=self.config.limits)
        self._track_deadline(record)

    def _track_deadline(self, record: PeerRecord) -> None:
        if self._next_deadline is None or record.deadline < self._next_deadline:
            self._next_deadline = record.deadline

    async def _save(self, ctx: RequestContext) -> PeerRecord:
        """Write the peer's record after a valid request (see :meth:`_record_after`)."""
        record = self._record_after(ctx)
        await self._put(record)
        return record

    def _record_after(self, ctx: RequestContext) -> PeerRecord:
        """The peer's record after a valid request: new state, timer, addresses."""
        request = ctx.request
        previous = ctx.record
        if request.addresses or previous is None:
            # Only addresses others can use are kept (docs/PROTOCOL.md, "Addresses").
            addresses = (*usable_addresses(request.addresses, ctx.reflexive), ctx.reflexive)
        elif previous.addresses[-1] is ctx.reflexive:
            addresses = previous.addresses  # unchanged: the same tuple, nothing to refresh
        else:
            # The REFLEXIVE address is always last.
            addresses = (*previous.addresses[:-1], ctx.reflexive)
        timer = ctx.transition.timer
        if timer is TimerEffect.INIT:
            deadline = ctx.now + self.config.init_timeout
        elif timer is TimerEffect.TRACK:
            deadline = ctx.now + self.config.track_timeout
        else:
            deadline = ctx.now
        # The host a new registration is counted for: the host it came from.
        if previous is not None:
            host = previous.host
        else:
            seen = ctx.reflexive.ip
            host = host_of(seen)
            if host == seen:
                host = seen  # the string the REFLEXIVE address holds: no copy kept
        # A valid message clears the grace.
        return _build_record(
            peer_id=request.peer_id,
            version=ctx.machine.version,
            state=ctx.transition.next_state,
            addresses=addresses,
            deadline=deadline,
            grace_used=False,
            host=host,
        )

    def _response(
        self,
        ctx: RequestContext,
        *,
        results: tuple[ActionResult, ...] = (),
        peers: tuple[PeerInfo, ...] = (),
        with_requester: bool = True,
    ) -> TrackerResponse:
        requester = requester_info(ctx.request.peer_id, ctx.reflexive) if with_requester else None
        return _build_response(
            version=ctx.request.version,
            transaction_id=ctx.request.transaction_id,
            results=results,
            requester=requester,
            peers=peers,
        )

    async def _peer_list(
        self,
        swarm_id: str,
        record: PeerRecord,
        peer_num: PeerNum | None,
        scope: tuple[RepresentationScope, ...],
        *,
        require_scope: bool,
        now: float,
        room: int = MAX_LISTED_PEERS,
        read: PeerListRead | None = None,
    ) -> tuple[PeerInfo, ...]:
        """The peer list of ``swarm_id`` for ``record`` at ``now``; ``read``: the swarm's
        suspects and members, already read with the request's change (None: read them here)."""
        count = min(peer_count(peer_num, self.config.max_peers), room)
        if count == 0:
            return ()
        # Members enough distinct hosts reported for corrupt data come after every other
        # (docs/SECURITY.md): as many more are drawn, then they are moved to the end.
        if read is not None:
            suspects = read[0]
        else:
            suspects = await self.storage.suspects(swarm_id)
        wanted = min(count + len(suspects), MAX_LISTED_PEERS) if suspects else count
        limits = self.config.limits
        # What one prefix may take of a list while others are left (docs/PROTOCOL.md).
        share = limits.list_share_per_prefix if limits.per_host else None
        hints = self.punch_hints
        # Askers behind NAT that will punch towards the requester: listed first (at most
        # half the list), the rest drawn as usual, with twice as many more (see listed_first).
        # (Empty tuples, not lists: nothing is allocated for a list without hints.)
        hinted: Sequence[str] = hints.askers(swarm_id, record.peer_id, now) if hints.noted else ()
        first: Sequence[SwarmMember] = ()
        if not scope:
            # Ranked by group (protocol, ASN, priority), not member by member.
            # The groups may be the storage's own lists: read at once, before another await.
            if read is not None:
                if hinted:
                    first = self._first(hinted, read[1], suspects, count, share)
                groups = group_members(read[1])
            else:
                if hinted:
                    first = await self._first_stored(swarm_id, hinted, suspects, count, share)
                groups = await self.storage.member_groups(
                    swarm_id, limit=self.config.candidate_sample
                )
            chosen = select_from_groups(
                groups,
                exclude=record.peer_id,
                requester_addresses=record.addresses,
                count=wanted + 2 * len(first),
                rng=self._rng,
                share=share,
            )
        else:
            if read is not None:
                candidates = read[1]
            else:
                candidates = await self.storage.members(
                    swarm_id, limit=self.config.candidate_sample, with_maps=True
                )
            if hinted:
                first = self._first(
                    hinted, candidates, suspects, count, share, scope, require_scope
                )
            chosen = select_peers(
                candidates,
                requester_id=record.peer_id,
                requester_addresses=record.addresses,
                count=wanted + 2 * len(first),
                rng=self._rng,
                scope=scope,
                require_scope=require_scope,
                share=share,
            )
        if first:
            chosen = listed_first(first, chosen, wanted, share)
            hints.used(swarm_id, record.peer_id, [member.peer_id for member in first])
        if suspects:
            peers = _suspects_last(chosen, suspects, count, swarm_id)
        else:
            peers = to_peer_infos(chosen, swarm_id)
        if peers and behind_nat(record.addresses):
            # The requester will punch towards every peer listed: each may list it first.
            hints.note(
                swarm_id,
                record.peer_id,
                [info.peer_id for info in peers if info.peer_id is not None],
                now,
            )
        return peers

    @staticmethod
    def _first(
        hinted: Sequence[str],
        members: Sequence[SwarmMember],
        suspects: frozenset[str],
        count: int,
        share: int | None,
        scope: Sequence[RepresentationScope] = (),
        require_scope: bool = False,
    ) -> list[SwarmMember]:
        """The hinted askers listed first, found among the members read for the list (all of
        a swarm of up to ``candidate_sample``, a sample of a larger one)."""
        wanted = set(hinted)
        by_id = {member.peer_id: member for member in members if member.peer_id in wanted}
        return first_listed(
            (by_id[asker] for asker in hinted if asker in by_id),
            suspects=suspects,
            limit=(count + 1) // 2,
            share=share,
            scope=scope,
            require_scope=require_scope,
        )

    async def _first_stored(
        self,
        swarm_id: str,
        hinted: Sequence[str],
        suspects: frozenset[str],
        count: int,
        share: int | None,
    ) -> list[SwarmMember]:
        """The hinted askers listed first, each read from the storage (a grouped list reads no
        member one by one): still registered and a member of the swarm, with its addresses
        and mode as stored now."""
        # At most TARGET_HINTS askers: each read, then the share bound applies.
        found: list[SwarmMember] = []
        for asker in hinted:
            if asker in suspects:
                continue
            stored, joined = await self.storage.peer_and_memberships(asker)
            mode = joined.get(swarm_id)
            if stored is not None and mode is not None:
                found.append(SwarmMember(peer_id=asker, mode=mode, addresses=stored.addresses))
        return first_listed(found, suspects=suspects, limit=(count + 1) // 2, share=share)

    async def _list_joined(
        self,
        record: PeerRecord,
        joins: list[SwarmAction],
        peer_num: PeerNum | None,
        scope: tuple[RepresentationScope, ...],
        reads: Mapping[str, PeerListRead] | None = None,
        *,
        now: float,
    ) -> tuple[PeerInfo, ...]:
        """Peer lists for each LEECH swarm joined (and SEED joins with PeerNum) at ``now``;
        ``reads``: the swarms' suspects and members already read (None: read them here)."""
        peers: list[PeerInfo] = []
        for action in joins:
            # RFC 7846 4.1.1: a SEED gets a list only when it sent peer_num.
            if swarm_mode(action) is PeerMode.LEECH or peer_num is not None:
                # One answer lists at most MAX_LISTED_PEERS over all the swarms joined (a
                # JOIN of many swarms would otherwise make an answer no reader takes).
                room = MAX_LISTED_PEERS - len(peers)
                if room <= 0:
                    break
                peers.extend(
                    await self._peer_list(
                        action.swarm_id,
                        record,
                        peer_num,
                        scope,
                        require_scope=False,
                        now=now,
                        room=room,
                        read=reads.get(action.swarm_id) if reads is not None else None,
                    )
                )
        return tuple(peers)

    async def _do_register(self, ctx: RequestContext) -> TrackerResponse:
        await self._update(self._record_after(ctx))
        return self._response(ctx)

    async def _do_join(self, ctx: RequestContext) -> TrackerResponse:
        request = ctx.request
        if isinstance(request, ConnectRequest):
            actions = request.swarm_actions
            leaves = [a for a in actions if a.action is SwarmActionType.LEAVE]
            joins = [a for a in actions if a.action is not SwarmActionType.LEAVE]
            peer_num, scope = request.peer_num, request.content_group
        elif isinstance(request, JoinRequest):
            actions = request.swarms
            leaves, joins = [], list(actions)  # JOIN requests never leave
            peer_num, scope = request.peer_num, request.content_group
        else:
            raise TypeError(f"{type(request).__name__} cannot join")
        # The record, the leaves and the joins in one step: refused whole over a bound.
        record = self._record_after(ctx)
        await self._update(
            record,
            leave=[a.swarm_id for a in leaves],
            join=[(a.swarm_id, swarm_mode(a)) for a in joins],
        )
        peers = await self._list_joined(record, joins, peer_num, scope, now=ctx.now)
        return self._response(ctx, results=action_results(actions), peers=peers)

    async def _do_leave(self, ctx: RequestContext) -> TrackerResponse:
        request = ctx.request
        if isinstance(request, DisconnectRequest):
            actions = request.swarms
            if request.scope is DisconnectScope.ALL_SWARMS:
                names = list(ctx.joined)
            else:
                names = [a.swarm_id for a in actions]
        elif isinstance(request, ConnectRequest):
            actions = request.swarm_actions
            names = [a.swarm_id for a in actions]
        else:
            raise TypeError(f"{type(request).__name__} cannot leave")
        await self._update(self._record_after(ctx), leave=names)
        return self._response(
            ctx,
            results=action_results(actions),
            with_requester=isinstance(request, ConnectRequest),
        )

    async def _do_find(self, ctx: RequestContext) -> TrackerResponse:
        request = ctx.request
        if not isinstance(request, FindRequest):
            raise TypeError(f"{type(request).__name__} is not FIND")
        record = await self._save(ctx)
        peers = await self._peer_list(
            request.swarm_id,
            record,
            request.peer_num,
            request.content_group,
            require_scope=bool(request.content_group),
            now=ctx.now,
        )
        return self._response(ctx, peers=peers)

    async def _do_report(self, ctx: RequestContext) -> TrackerResponse:
        request = ctx.request
        if not isinstance(request, StatReportRequest):
            raise TypeError(f"{type(request).__name__} is not STAT_REPORT")
        record = self._record_after(ctx)
        await self.storage.put_report(
            record, request.stream_stats, request.content_maps, limits=self.config.limits
        )
        self._track_deadline(record)
        await self._corrupt_reports(request, ctx.reflexive)
        return self._response(ctx, with_requester=False)

    async def _corrupt_reports(self, request: StatReportRequest, reflexive: PeerAddress) -> None:
        """Count the corrupt-peer reports of a STAT_REPORT, if it has any."""
        if request.corrupt_peers:
            # Believed per distinct reporter host, from members only (docs/SECURITY.md).
            outcomes = await self.storage.add_corrupt_reports(
                request.peer_id,
                host_of(reflexive.ip),
                request.corrupt_peers,
                self.config.limits,
            )
            log.debug(
                "corrupt-peer reports of %s: %s",
                request.peer_id,
                ", ".join(
                    f"{r.peer_id} {o.value}"
                    for r, o in zip(request.corrupt_peers, outcomes, strict=True)
                ),
            )

    async def _do_deregister(self, ctx: RequestContext) -> TrackerResponse:
        await self.storage.delete_peer(ctx.request.peer_id)
        request = ctx.request
        if isinstance(request, ConnectRequest):
            # A CONNECT that leaves every swarm: still a CONNECT answer, with the requester.
            return self._response(ctx, results=action_results(request.swarm_actions))
        return self._response(ctx, with_requester=False)

    _ACTIONS = {
        PeerAction.REGISTER: _do_register,
        PeerAction.REGISTER_AND_JOIN: _do_join,
        PeerAction.JOIN: _do_join,
        PeerAction.SWITCH: _do_join,
        PeerAction.LEAVE: _do_leave,
        PeerAction.FIND: _do_find,
        PeerAction.REPORT: _do_report,
        PeerAction.DEREGISTER: _do_deregister,
        PeerAction.EXPIRE: _do_deregister,
    }


def _check_credentials(request: AnyRequest, credentials: Credentials) -> None:
    """Refuse (Forbidden) a request its bearer token does not cover: another PeerID than the
    token's subject, or a JOIN (or fast CONNECT) of a swarm outside the token's swarms."""
    if request.peer_id != credentials.subject:
        raise Forbidden(
            f"the bearer token is for peer ID {credentials.subject}, not this one",
            reason="Bearer token for another peer ID",
        )
    allowed = credentials.swarms
    if allowed is not None:
        for swarm_id in _joined_swarms(request):
            if swarm_id not in allowed:
                raise Forbidden(
                    f"the bearer token does not allow joining swarm {swarm_id}",
                    reason="Bearer token does not allow this swarm",
                )


def _suspects_last(
    chosen: list[SwarmMember], suspects: frozenset[str], count: int, swarm_id: str
) -> tuple[PeerInfo, ...]:
    """The first ``count`` of ``chosen`` with the suspects after every other member."""
    honest = [member for member in chosen if member.peer_id not in suspects]
    if len(honest) < count:
        honest.extend(member for member in chosen if member.peer_id in suspects)
    return to_peer_infos(honest[:count], swarm_id)
