"""A peer's addresses packed into bytes: how the memory backend keeps them and how its peer lists
carry them to the codecs (issue 16).

A registered peer's addresses are a tuple of :class:`~ppsp.wire.tracker.PeerAddress` objects
(its advertised addresses, then the REFLEXIVE one the tracker observed): a tuple, two objects
and their IP strings, some 400 bytes for each peer, although nearly everything in them is
shared by every peer (the family, the type, the peer protocol) but an IP address and a port.
The memory backend keeps them as 2 bytes plus 6 bytes per address instead (:func:`pack`):

- 2 bytes: the addresses' *layout*, the sequence of their *shapes*, an index into a table shared
  by the process (:data:`MAX_LAYOUTS` at most).  An address's shape is what it holds besides its
  IP address and port (priority, type, connection, ASN, peer protocol), itself an index into a
  table shared by the process (:data:`MAX_SHAPES` shapes at most: hostile peers may claim any
  number of ASNs);
- per address, 4 bytes: the IPv4 address; 2 bytes: the port.

So the usual peer (an advertised address and the REFLEXIVE one) is 14 bytes: a ``bytes`` object
of 47 bytes, in a 48-byte block of the allocator (8 bytes an address, 16 bytes, took a 64-byte
block).  The port of the last address is the last two bytes, so that a peer seen from another
port changes only those.

Only what reads back equal is packed: IPv4 addresses in canonical dotted text (``10.0.0.1``,
not ``010.0.0.1``), integer ports in ``[1, 65535]``, integer or no priorities, a shape the table
holds or has room for.  Anything else (IPv6, a full shape table) is not packed (:func:`pack`
returns None) and the backend keeps the tuple as it came.

Reading a packed peer builds its tuple again (:func:`unpack`, about 1.5 microseconds an
address); the tuples read last are kept, a bounded number (:data:`UNPACKED_KEPT`), so that a
peer read again and again (a small swarm, a peer sending STAT_REPORTs) is not built each time,
and so that the record a request writes back with the tuple it read is recognised as unchanged
at the cost of one look-up (:func:`unpacked_kept`).

A peer list carries a packed member as a :class:`PackedPeerInfo`: a
:class:`~ppsp.wire.common.PeerInfo` whose addresses stay packed, equal to the plain entry, which
the tracker codecs write straight from the bytes and the layout's shapes (:func:`packed_of`,
:func:`layout_of`) without building an address object.  At 100,000 peers almost every entry of
an answer is new (its written form is not kept), and building the objects of each (an entry,
a tuple, two addresses: five tracked objects) cost more than writing it and filled the garbage
collector's young generation with objects the bounded tables of kept forms held for a while
(collections of 25-250 ms under load, docs/BENCHMARKS.md).

Pure functions and bounded tables, no I/O; not thread-safe (the tracker's event loop is the
only caller).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TypeVar

from ppsp.wire.builder import keyword_builder
from ppsp.wire.common import PeerInfo, template_shape
from ppsp.wire.fields import MAX_LAYOUTS, MAX_PEER_ADDRESSES, MAX_SHAPES
from ppsp.wire.tracker import AddressFamily, AddressType, PeerAddress

__all__ = [
    "LISTED_PACKED_BYTES",
    "MAX_LAYOUTS",
    "MAX_SHAPES",
    "OCTETS_KEPT",
    "PIECES_KEPT",
    "UNPACKED_KEPT",
    "Layout",
    "PackedPeerInfo",
    "Shape",
    "forget_kept",
    "keep_unpacked",
    "layout_forms",
    "layout_of",
    "pack",
    "packed_fields",
    "packed_host",
    "packed_of",
    "packed_peer_info",
    "packed_prefix",
    "unpack",
    "unpacked_kept",
]

Shape = tuple[int | None, AddressType | None, str | None, str | None, str | None]
"""What an address holds besides its IP address and port: priority, type, connection, ASN and
peer protocol (its family is IPv4: only those are packed)."""

Layout = tuple[Shape, ...]
"""The shapes of a packed peer's addresses, in order (one object per layout, while the process
lives: a codec may keep what it wrote for a layout by the layout's identity)."""

UNPACKED_KEPT = 8192
"""Tuples kept per generation by :func:`unpack` (at most twice as many: some 6 MiB)."""

PIECES_KEPT = 8192
"""Packed addresses kept per generation by address object (at most twice as many)."""

_IPV4 = AddressFamily.IPV4
_build_address = keyword_builder(PeerAddress)

_SHAPES: list[Shape] = []
_SHAPE_IDS: dict[Shape, int] = {}
_LAYOUTS: list[Layout] = []
_LAYOUT_IDS: dict[tuple[int, ...], bytes] = {}

# Two generations each (young, old): an entry read in the old one moves to the young one; when
# the young one is full it becomes the old one and the old one is dropped.
_unpacked: list[dict[bytes, tuple[PeerAddress, ...]]] = [{}, {}]
_pieces: list[dict[int, tuple[PeerAddress, int, bytes]]] = [{}, {}]

OCTETS_KEPT = 8192
"""Canonical IPv4 addresses whose four octets are kept (a table emptied when full)."""

_octets: dict[str, bytes] = {}
"""The octets of the canonical IPv4 addresses packed lately: a peer seen from another port
brings a new address object of the same IP with every request."""


def _shape_id(shape: Shape) -> int | None:
    found = _SHAPE_IDS.get(shape)
    if found is None and len(_SHAPES) < MAX_SHAPES:
        found = _SHAPE_IDS[shape] = len(_SHAPES)
        _SHAPES.append(shape)
    return found


def _piece(address: PeerAddress) -> tuple[int, bytes] | None:
    """The shape and the 6 bytes of one address, or None when it is not packed (see the
    module)."""
    if address.family is not _IPV4:
        return None
    port = address.port
    priority = address.priority
    ip = address.ip
    if (
        type(port) is not int
        or not 1 <= port <= 65535
        or (priority is not None and type(priority) is not int)
        or type(ip) is not str
    ):
        return None
    octets = _octets.get(ip)
    if octets is None:
        parts = ip.split(".")
        if len(parts) != 4:
            return None
        try:
            octets = bytes(map(int, parts))
        except ValueError:  # not decimal, or not in [0, 255]
            return None
        if f"{octets[0]}.{octets[1]}.{octets[2]}.{octets[3]}" != ip:
            return None  # not the canonical text: it would not read back equal
        if len(_octets) >= OCTETS_KEPT:
            _octets.clear()
        _octets[ip] = octets
    shape = _shape_id(
        (priority, address.type, address.connection, address.asn, address.peer_protocol)
    )
    if shape is None:
        return None
    return shape, octets + port.to_bytes(2, "big")


def pack(addresses: Sequence[PeerAddress]) -> bytes | None:
    """The packed form of ``addresses`` (2 bytes, then 6 each), or None when one of them is not
    packed (or their layout is not: a full table); no addresses pack to ``b""``.

    The form of an address object met lately is looked up by its identity (the tuple a request
    writes back holds the objects its reading built, and the core's shared REFLEXIVE address).
    """
    if not addresses:
        return b""
    young = _pieces[0]
    shapes: list[int] = []
    pieces: list[bytes] = [b""]
    for address in addresses:
        key = id(address)
        found = young.get(key)
        if found is None:
            found = _pieces[1].get(key)
            if found is None:
                piece = _piece(address)
                if piece is None:
                    return None
                found = (address, *piece)  # holds the address: its identity is not reused
            if len(young) >= PIECES_KEPT:
                _pieces[1] = young
                young = _pieces[0] = {}
            young[key] = found
        shapes.append(found[1])
        pieces.append(found[2])
    layout = tuple(shapes)
    head = _LAYOUT_IDS.get(layout)
    if head is None:
        if len(_LAYOUTS) >= MAX_LAYOUTS:
            return None
        head = _LAYOUT_IDS[layout] = len(_LAYOUTS).to_bytes(2, "big")
        _LAYOUTS.append(tuple(_SHAPES[shape] for shape in layout))
    pieces[0] = head
    return b"".join(pieces)


def unpack(packed: bytes) -> tuple[PeerAddress, ...]:
    """The addresses packed in ``packed`` (by :func:`pack`), equal to those packed."""
    young, old = _unpacked
    found = young.get(packed)
    if found is None:
        found = old.get(packed)
        if found is None:
            found = _build(packed)
        if len(young) >= UNPACKED_KEPT:
            _unpacked[1] = young
            young = _unpacked[0] = {}
        young[packed] = found
    return found


def keep_unpacked(packed: bytes, addresses: tuple[PeerAddress, ...]) -> None:
    """Keep ``addresses`` (equal to what ``packed`` unpacks to) as :func:`unpack`'s tuple for
    ``packed``: the tuple a peer's record was written with is the one its next read gives, so
    that a request that keeps its addresses writes back the very tuple it read (recognised by
    :func:`unpacked_kept`) and the codecs find the forms they kept for its address objects."""
    young = _unpacked[0]
    if len(young) >= UNPACKED_KEPT:
        _unpacked[1] = young
        young = _unpacked[0] = {}
    young[packed] = addresses


def unpacked_kept(packed: bytes) -> tuple[PeerAddress, ...] | None:
    """The tuple :func:`unpack` last gave for ``packed`` while it is kept, else None."""
    found = _unpacked[0].get(packed)
    return found if found is not None else _unpacked[1].get(packed)


def _build(packed: bytes) -> tuple[PeerAddress, ...]:
    if not packed:
        return ()
    out: list[PeerAddress] = []
    at = 2
    for shape in layout_of(packed):
        ip = f"{packed[at]}.{packed[at + 1]}.{packed[at + 2]}.{packed[at + 3]}"
        out.append(_shaped(shape, ip, (packed[at + 4] << 8) | packed[at + 5]))
        at += 6
    return tuple(out)


def _shaped(shape: Shape, ip: str, port: int) -> PeerAddress:
    """The IPv4 address ``ip``:``port`` of ``shape``."""
    priority, kind, connection, asn, protocol = shape
    return _build_address(
        ip=ip,
        port=port,
        family=_IPV4,
        priority=priority,
        type=kind,
        connection=connection,
        asn=asn,
        peer_protocol=protocol,
    )


def packed_prefix(packed: bytes) -> str | None:
    """:func:`~ppsp.tracker.storage.base.member_prefix` of a member with these addresses: the
    /24 of the last address when it is REFLEXIVE (its first three numbers), else None."""
    if not packed:
        return None
    if layout_of(packed)[-1][1] is not AddressType.REFLEXIVE:
        return None
    at = len(packed) - 6
    return f"{packed[at]}.{packed[at + 1]}.{packed[at + 2]}"


_REFLEXIVE = AddressType.REFLEXIVE
_OCTETS_AT = struct.Struct("4B").unpack_from
_DECIMAL = [str(number) for number in range(256)]
"""Each octet's text, for :func:`packed_host`."""


def packed_host(packed: bytes) -> str | None:
    """The IP address (text) of the last address in ``packed`` when it is REFLEXIVE, else None:
    the host a peer with these addresses was seen from (an IPv4 address is its own host key,
    :func:`~ppsp.core.hosts.host_key`; only canonical IPv4 addresses are packed)."""
    if not packed or _LAYOUTS[(packed[0] << 8) | packed[1]][-1][1] is not _REFLEXIVE:
        return None
    # Written from the numbers' kept texts: half the time of formatting the four integers.
    first, second, third, fourth = _OCTETS_AT(packed, len(packed) - 6)
    return f"{_DECIMAL[first]}.{_DECIMAL[second]}.{_DECIMAL[third]}.{_DECIMAL[fourth]}"


def layout_of(packed: bytes) -> Layout:
    """The shapes of the addresses packed in ``packed`` (non-empty, made by :func:`pack`)."""
    return _LAYOUTS[(packed[0] << 8) | packed[1]]


LISTED_PACKED_BYTES = 2 + 6 * MAX_PEER_ADDRESSES
"""Length of the longest packed addresses a listed entry carries packed (:func:`packed_fields`
reads up to that many; a longer record, written before the bound, is listed unpacked)."""

_FIELDS = [struct.Struct(">2x" + "4BH" * count) for count in range(MAX_PEER_ADDRESSES + 1)]
"""Per number of addresses, the layout of packed bytes: the 2-byte layout, then each
address's four octets and port."""


def packed_fields(packed: bytes) -> tuple[int, ...]:
    """The four octets and the port of each address packed in ``packed`` (non-empty, made by
    :func:`pack`, with at most ``MAX_PEER_ADDRESSES`` addresses), five integers an address,
    in order, read in one call: what a codec writes of them, canonical and in range."""
    return _FIELDS[(len(packed) - 2) // 6].unpack(packed)


_F = TypeVar("_F")


def layout_forms(
    layout: Layout, form_of: Callable[[tuple[object, ...], PeerAddress], _F | None]
) -> tuple[_F, ...] | None:
    """What a codec writes for each shape of ``layout`` besides the IP address and port:
    ``form_of(shape, address)`` on an address of that shape (IP ``0.0.0.0``, port 1) and its
    template shape (:func:`~ppsp.wire.common.template_shape`), which checks the shape's fields
    once before addresses of that shape are written from packed bytes.  None for a layout
    longer than a listed peer's addresses may be, or when a shape has no form (None)."""
    if len(layout) > MAX_PEER_ADDRESSES:
        return None
    forms = []
    for shape in layout:
        sample = _shaped(shape, "0.0.0.0", 1)
        template = template_shape(sample)
        form = None if template is None else form_of(template, sample)
        if form is None:
            return None
        forms.append(form)
    return tuple(forms)


class PackedPeerInfo(PeerInfo):
    """A peer-list entry whose addresses stay packed (see the module): equal to (and hashed as)
    the :class:`~ppsp.wire.common.PeerInfo` of the same fields.

    The inherited ``addresses`` slot holds the packed bytes (:func:`packed_of`); the property
    of the same name unpacks them for any reader but the codecs' writers.  Built only by
    :func:`packed_peer_info`; its constructor (``dataclasses.replace``, copies) builds a plain
    :class:`~ppsp.wire.common.PeerInfo`.
    """

    __slots__ = ()

    def __new__(cls, **fields: object) -> PeerInfo:  # type: ignore[misc]
        """A plain entry of the same fields (see the class)."""
        return PeerInfo(**fields)  # type: ignore[arg-type]

    @property
    def addresses(self) -> tuple[PeerAddress, ...]:
        """The entry's addresses, unpacked."""
        return unpack(_READ_PACKED(self))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PeerInfo):
            return NotImplemented
        return (
            self.peer_id == other.peer_id
            and self.swarm_id == other.swarm_id
            and self.addresses == other.addresses
        )

    def __hash__(self) -> int:
        return hash((self.peer_id, self.addresses, self.swarm_id))

    def __repr__(self) -> str:
        return (
            f"PeerInfo(peer_id={self.peer_id!r}, addresses={self.addresses!r}, "
            f"swarm_id={self.swarm_id!r})"
        )


_NEW = object.__new__
_READ_PACKED = vars(PeerInfo)["addresses"].__get__
_SET_PEER_ID = vars(PeerInfo)["peer_id"].__set__
_SET_PACKED = vars(PeerInfo)["addresses"].__set__
_SET_SWARM_ID = vars(PeerInfo)["swarm_id"].__set__


def packed_peer_info(peer_id: str, packed: bytes, swarm_id: str | None) -> PackedPeerInfo:
    """The entry of a peer whose addresses are ``packed`` (non-empty, made by :func:`pack`)."""
    info: PackedPeerInfo = _NEW(PackedPeerInfo)
    _SET_PEER_ID(info, peer_id)
    _SET_PACKED(info, packed)
    _SET_SWARM_ID(info, swarm_id)
    return info


def packed_of(info: PackedPeerInfo) -> bytes:
    """The packed addresses of ``info``."""
    packed: bytes = _READ_PACKED(info)
    return packed


def forget_kept() -> None:
    """Empty the bounded tables of tuples and packed forms kept (the shapes stay)."""
    for tables in (_unpacked, _pieces):
        tables[0] = {}
        tables[1] = {}
    _octets.clear()
