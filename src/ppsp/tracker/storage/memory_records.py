"""The memory backend's peers as records: what an entry keeps of the record it is given.

:class:`~ppsp.tracker.storage.memory.MemoryStorage` keeps the fields of a record in a
:class:`~ppsp.tracker.storage.memory_swarms.PeerEntry`, not the record: its version, state and
``grace_used`` with its rank profile and mode as one shared *kind* tuple (:func:`kind_of`), its
host only when its addresses do not tell it, its addresses
packed when they can be (:func:`stored_form`, :func:`restored_form`: an unchanged write is
recognised at the cost of one look-up), and builds the record again when it is read
(:func:`record_of`).  Kept apart from the backend's module: functions of records and entries,
no I/O and no clock.
"""

from __future__ import annotations

import sys

from ppsp.tracker.storage.base import PeerRecord, RankProfile, prefix_of, report_outcome
from ppsp.tracker.storage.memory_swarms import (
    Kind,
    PeerEntry,
    Stored,
    kind_with_host,
    read_deadline,
    read_held,
    shared_kind,
)
from ppsp.wire.builder import keyword_builder
from ppsp.wire.packed import (
    keep_unpacked,
    pack,
    packed_prefix,
    unpack,
    unpacked_kept,
)
from ppsp.wire.tracker import AddressType, CorruptPeerReport, PeerAddress, PeerMode

__all__ = [
    "believed",
    "kind_for",
    "kind_of",
    "prefix_of_stored",
    "record_of",
    "restored_form",
    "stored_form",
]

_REFLEXIVE = AddressType.REFLEXIVE

_build_record = keyword_builder(PeerRecord)
"""PeerRecord(...) likewise: a stored peer's record is built when it is read."""

_last_kind: list[Kind] = []
"""The kind last looked up: most records in a row have the same (an identity check)."""


def kind_of(record: PeerRecord, profile: RankProfile, mode: PeerMode) -> Kind:
    """The shared kind tuple of a record's version, state, ``grace_used``, ``profile`` and
    ``mode`` (:func:`~ppsp.tracker.storage.memory_swarms.kind_with_host` adds a host the
    addresses do not tell)."""
    if _last_kind:
        last = _last_kind[0]
        if (
            last[0] is record.version
            and last[1] is record.state
            and last[2] is record.grace_used
            and last[3] is profile
            and last[4] is mode
        ):
            return last
    # Enum members hash in Python: the table is read only when the kind changes.
    found = shared_kind((record.version, record.state, bool(record.grace_used), profile, mode))
    _last_kind[:] = (found,)
    return found


def kind_for(record: PeerRecord, profile: RankProfile, mode: PeerMode, stored: Stored) -> Kind:
    """The kind of an entry that keeps ``record``'s addresses as ``stored``: :func:`kind_of`,
    with the record's host when the addresses do not tell it (their last is no REFLEXIVE
    address of that host, or they are not packed: :attr:`PeerEntry.host
    <ppsp.tracker.storage.memory_swarms.PeerEntry.host>`)."""
    kind = kind_of(record, profile, mode)
    host = record.host
    last = record.addresses[-1] if record.addresses else None
    if (
        last is not None
        and (host is last.ip or host == last.ip)  # most often the very string
        and last.type is _REFLEXIVE
        and type(stored) is bytes
    ):
        return kind
    return kind_with_host(kind, host)


def record_of(peer: PeerEntry) -> PeerRecord:
    """The record of a stored peer, built from the fields its entry holds."""
    kind = peer.kind
    both = read_held(peer)  # entry_stored() and PeerEntry.deadline in one reading
    if type(both) is bytes:
        addresses = unpack(both[8:])
        deadline: float = read_deadline(both)[0]
    else:
        addresses, deadline = both
    # The host the addresses tell (PeerEntry.host: the REFLEXIVE address they end with),
    # unless the kind holds another.
    host = kind[5] if len(kind) == 6 else addresses[-1].ip
    return _build_record(
        peer_id=peer.peer_id,
        version=kind[0],
        state=kind[1],
        addresses=addresses,
        deadline=deadline,
        grace_used=kind[2],
        host=host,
    )


def stored_form(addresses: tuple[PeerAddress, ...]) -> Stored:
    """``addresses`` as a peer entry keeps them: packed when they can be, else the tuple."""
    packed = pack(addresses)
    if packed is None:
        return addresses
    keep_unpacked(packed, addresses)
    return packed


def restored_form(stored: Stored, addresses: tuple[PeerAddress, ...]) -> Stored | None:
    """``addresses`` as a peer entry keeps them, or None when they are those kept as ``stored``
    (most often the very tuple a read of them gave: recognised at the cost of one look-up)."""
    if isinstance(stored, bytes):
        if unpacked_kept(stored) is addresses:
            return None
        packed = pack(addresses)
        if packed is None:
            return addresses
        if packed == stored:
            return None
        keep_unpacked(packed, addresses)
        return packed
    return None if stored is addresses or stored == addresses else stored_form(addresses)


def prefix_of_stored(stored: Stored) -> str | None:
    """The prefix of a member with these addresses, one string per prefix (interned)."""
    if isinstance(stored, bytes):
        prefix = packed_prefix(stored)
        return None if prefix is None else sys.intern(prefix)
    if stored and stored[-1].type is AddressType.REFLEXIVE:
        return sys.intern(prefix_of(stored[-1].ip))
    return None


def believed(
    report: CorruptPeerReport,
    reporter_id: str,
    reporter_host: str,
    reporter: PeerEntry | None,
    reported: PeerEntry | None,
) -> bool:
    """Whether a corrupt-peer report can be believed (:func:`~ppsp.tracker.storage.base.
    report_outcome`), from the entries of its reporter and of the peer it reports."""
    return (
        report_outcome(
            report,
            reporter_id=reporter_id,
            reporter_host=reporter_host,
            reporter_swarms=() if reporter is None else reporter.swarms,
            reported=None if reported is None else record_of(reported),
            reported_member=reported is not None and report.swarm_id in reported.swarms,
        )
        is None
    )
