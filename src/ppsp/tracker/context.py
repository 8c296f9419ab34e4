"""What the tracker's two paths carry from a request to its answer.

The ordinary path (:mod:`ppsp.tracker.core`: read the peer, decide, write) and the one-round-trip
path (:mod:`ppsp.tracker.guarded`: decide on a guess the storage checks) hand the same
:class:`RequestContext` to the tracker's record and answer steps, and read a request's swarm
actions alike (:func:`swarm_mode`, :func:`action_results`).  Kept apart from both so that the
guarded path needs nothing of :mod:`ppsp.tracker.core` when it is imported: the core imports it.
"""

from __future__ import annotations

from ppsp.tracker.statemachine import PeerMachine, Transition
from ppsp.tracker.storage.base import PeerRecord
from ppsp.wire.tracker import (
    ActionResult,
    AnyRequest,
    PeerAddress,
    PeerMode,
    SwarmAction,
)

__all__ = ["RequestContext", "action_results", "swarm_mode"]


class RequestContext:
    """What an action needs about the request being handled.

    A plain slotted class rather than a frozen dataclass: one is built for every request, and
    a frozen dataclass pays an ``object.__setattr__`` call per field.
    """

    __slots__ = ("joined", "machine", "now", "record", "reflexive", "request", "transition")

    def __init__(
        self,
        *,
        request: AnyRequest,
        record: PeerRecord | None,
        joined: dict[str, PeerMode],
        machine: PeerMachine,
        transition: Transition,
        reflexive: PeerAddress,
        now: float,
    ) -> None:
        self.request = request
        self.record = record
        self.joined = joined
        self.machine = machine
        self.transition = transition
        self.reflexive = reflexive
        self.now = now


def swarm_mode(action: SwarmAction) -> PeerMode:
    """A swarm action's peer mode; LEECH when the request names none."""
    return action.peer_mode if action.peer_mode is not None else PeerMode.LEECH


def action_results(actions: tuple[SwarmAction, ...]) -> tuple[ActionResult, ...]:
    """One result per swarm action that has its own transaction ID (hierarchical IDs).

    Actions without one get no result: the answer's TransactionID covers them, and the JSON
    codec derives each ``swarm_result`` from the peers listed for the swarm.
    """
    return tuple(
        ActionResult(transaction_id=a.transaction_id, swarm_id=a.swarm_id)
        for a in actions
        if a.transaction_id is not None
    )
