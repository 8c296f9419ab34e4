"""The message types both protocols carry: peers, their addresses, chunk scopes and chunk maps.

The tracker protocol (:mod:`ppsp.wire.tracker`) hands out peer lists and receives chunk maps;
the peer protocol (:mod:`ppsp.wire.peer`) passes the same peer lists on and exchanges the same
chunk maps, "consistent with Tracker protocol" as the seed slides ask.  So these types are
defined once, here, and every codec reads and writes them by the same field rules
(:mod:`ppsp.wire.fields`): a peer list one codec read is a list every codec writes.

Every type is a frozen, slotted, keyword-only dataclass; sequences are tuples, so values are
hashable and safe to share.  Codecs do all validation: a value that exists is valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ppsp.wire.encoded import EncodedForms
from ppsp.wire.fields import MAX_PORT, MIN_PORT, is_canonical_ipv4

__all__ = [
    "AddressFamily",
    "AddressType",
    "ContentMap",
    "IdentityEnum",
    "PeerAddress",
    "PeerInfo",
    "PeerNum",
    "RepresentationMap",
    "RepresentationScope",
    "SegmentMap",
    "keyed_by_value",
    "merge_listed_peers",
    "template_shape",
]


class IdentityEnum(Enum):
    """An enumeration whose members hash by identity.

    ``Enum`` hashes a member by its name in Python code, a function call on every dictionary or
    set look-up; members are singletons compared by identity, so the identity hash agrees with
    ``==`` and costs no call.  Every enumeration of the wire model derives from this one.
    """

    __hash__ = object.__hash__


class AddressFamily(IdentityEnum):
    """``@addrType`` / ``address_type``."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"


class AddressType(IdentityEnum):
    """``@type`` / ``type`` of a peer address, for NAT traversal."""

    HOST = "HOST"
    REFLEXIVE = "REFLEXIVE"
    PROXY = "PROXY"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerAddress:
    """One transport address of a peer (``PeerAddress`` / ``peer_addr``).

    ``asn`` is kept as text: the drafts print it as a string in both encodings.
    """

    ip: str
    port: int
    family: AddressFamily = AddressFamily.IPV4
    priority: int | None = None
    type: AddressType | None = None
    connection: str | None = None
    asn: str | None = None
    peer_protocol: str | None = None


def keyed_by_value(address: PeerAddress) -> bool:
    """Whether an encoder may look ``address`` up by value among the forms it wrote.

    Not when its port or priority is a ``bool`` or ``float``: such an address equals a valid
    one (``True == 1``) but is itself invalid, and must be refused however often the valid
    one was written.  (The enumerations compare by identity, so a bare string never equals
    their members.)
    """
    return type(address.port) is int and (address.priority is None or type(address.priority) is int)


def template_shape(address: PeerAddress) -> tuple[object, ...] | None:
    """The shape of ``address`` (its fields besides the IP address and port: priority, type,
    connection, ASN, peer protocol) when the tracker codecs may write it from a template of
    that shape: an IPv4 address in canonical dotted text, an integer port in range and an
    integer or no priority; None for any other address (written by the general writers).

    The shape's own fields are not checked here: a codec checks them once per shape, with its
    general writer, before it keeps the shape's template.
    """
    ip, port, priority = address.ip, address.port, address.priority
    if (
        address.family is not AddressFamily.IPV4
        or type(port) is not int
        or not MIN_PORT <= port <= MAX_PORT
        or (priority is not None and type(priority) is not int)
        or type(ip) is not str
        or not is_canonical_ipv4(ip)
    ):
        return None
    return (priority, address.type, address.connection, address.asn, address.peer_protocol)


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerInfo(EncodedForms):
    """A peer in a peer list (``PeerInfo`` / ``peer_info``).

    ``swarm_id`` is the XML ``@swarmID`` attribute (or the JSON ``swarm_result`` the entry was
    listed under): the swarm this peer was returned for.

    The tracker lists the same entry object while the member it stands for is unchanged and
    among those listed last (see :func:`ppsp.tracker.peerlist.to_peer_infos`), and each
    tracker codec keeps the form it wrote for an entry in the entry
    (:class:`~ppsp.wire.encoded.EncodedForms`, outside the dataclass fields).
    """

    peer_id: str | None = None
    addresses: tuple[PeerAddress, ...] = ()
    swarm_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerNum:
    """Scope selector for the size and kind of a returned peer list (``PeerNum`` / ``peer_num``).

    ``count`` is the element text (XML) or ``peer_count`` (JSON).  The capability selectors are
    kept as text: the XML drafts use levels (``HIGH``, ``NORMAL``, ``LOW``) and RFC 7846 uses
    integers (links, seconds, kbps); the JSON codec writes decimal text as integers.
    """

    count: int | None = None
    ability_nat: str | None = None
    concurrent_links: str | None = None
    online_time: str | None = None
    upload_bandwidth: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RepresentationScope:
    """One ``Representation`` of a ``ContentGroup``: a chunk range of one content component.

    ``end_index`` is optional (open-ended scope, for example a live joining point).
    """

    representation_id: str
    start_index: int
    end_index: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmentMap:
    """A ``SegmentInfo`` of a chunk map: the chunks of ``[start_index, end_index]`` held.

    ``bitmap`` is the decoded Base64 chunk map: bit *i*, most significant bit of each byte first,
    is chunk ``start_index + i``; ``chunkmap_size`` counts bits (PROFILE.md).
    """

    start_index: int
    end_index: int
    chunkmap_size: int
    bitmap: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class RepresentationMap:
    """Chunk map of one ``Representation``: one or more segment ranges."""

    representation_id: str
    segments: tuple[SegmentMap, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ContentMap:
    """The chunks a peer holds in one swarm: the tracker's ``Stat property="ContentMap"``
    (PPSP-TP/1.1), whose representations are the peer protocol's ``CHUNK`` element."""

    swarm_id: str
    representations: tuple[RepresentationMap, ...]


def merge_listed_peers(peers: list[PeerInfo]) -> list[PeerInfo]:
    """A decoded peer list in which each peer appears once per swarm.

    Entries naming the same peer ID for the same swarm become one entry, at the place of the
    first, holding the addresses of all of them in order: RFC 7846 lists a peer with several
    addresses as one ``peer_info`` per address, and every codec reads every peer list this way
    (docs/PROTOCOL.md), so that a list one codec read is a list every codec writes alike.
    Entries without a peer ID are kept as they are.  The input list is returned when nothing
    merges (the usual case).
    """
    seen: dict[tuple[str | None, str], int] = {}
    merged: list[PeerInfo] | None = None
    for index, peer in enumerate(peers):
        if peer.peer_id is None:
            if merged is not None:
                merged.append(peer)
            continue
        key = (peer.swarm_id, peer.peer_id)
        first = seen.get(key)
        if first is None:
            if merged is not None:
                seen[key] = len(merged)
                merged.append(peer)
            else:
                seen[key] = index
            continue
        if merged is None:
            merged = list(peers[:index])
        kept = merged[first]
        merged[first] = PeerInfo(
            peer_id=kept.peer_id,
            addresses=kept.addresses + peer.addresses,
            swarm_id=kept.swarm_id,
        )
    return peers if merged is None else merged
