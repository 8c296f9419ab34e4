"""Stored forms of the tracker's records, for storage backends that keep bytes (Redis).

Sans-I/O: a peer record's hash fields, its addresses as JSON, a peer's statistics as JSON and
content maps in a compact binary form (the raw bitmaps, not their Base64 text), each with its
inverse.  Decoded address lists are kept (bounded), since the same peers are listed again and
again.
"""

from __future__ import annotations

import struct

import orjson

from ppsp.tracker.statemachine import PeerState
from ppsp.tracker.storage.base import PeerRecord
from ppsp.wire.tracker import (
    AddressFamily,
    AddressType,
    ContentMap,
    PeerAddress,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
    StreamStatistics,
)

__all__ = [
    "address_to_json",
    "decode_addresses",
    "decode_record",
    "decode_stats",
    "pack_content_map",
    "stats_field_and_data",
    "unpack_content_map",
]

_ADDRESS_CACHE_SIZE = 65_536
"""Most stored address lists kept decoded (the same peers are listed again and again)."""

_decoded_addresses: dict[bytes, tuple[PeerAddress, ...]] = {}


def stats_field_and_data(stats: StreamStatistics) -> tuple[str, bytes]:
    """The hash field (the swarm, or '' peer-wide) and stored form of a peer's statistics."""
    field = stats.swarm_id if stats.swarm_id is not None else ""
    data = orjson.dumps(
        {
            "swarm_id": stats.swarm_id,
            "uploaded_bytes": stats.uploaded_bytes,
            "downloaded_bytes": stats.downloaded_bytes,
            "available_bandwidth": stats.available_bandwidth,
            "concurrent_links": stats.concurrent_links,
            "extra": [list(pair) for pair in stats.extra],
        }
    )
    return field, data


def decode_stats(data: bytes) -> StreamStatistics:
    """Inverse of the stored form of :func:`stats_field_and_data`."""
    obj = orjson.loads(data)
    return StreamStatistics(
        swarm_id=obj["swarm_id"],
        uploaded_bytes=obj["uploaded_bytes"],
        downloaded_bytes=obj["downloaded_bytes"],
        available_bandwidth=obj["available_bandwidth"],
        concurrent_links=obj["concurrent_links"],
        extra=tuple((str(k), str(v)) for k, v in obj["extra"]),
    )


def address_to_json(a: PeerAddress) -> dict[str, object]:
    """One address in the JSON form a stored record keeps."""
    return {
        "ip": a.ip,
        "port": a.port,
        "family": a.family.value,
        "priority": a.priority,
        "type": a.type.value if a.type is not None else None,
        "connection": a.connection,
        "asn": a.asn,
        "peer_protocol": a.peer_protocol,
    }


def decode_addresses(raw: bytes) -> tuple[PeerAddress, ...]:
    """The addresses of a stored record, decoded once per distinct stored form."""
    found = _decoded_addresses.get(raw)
    if found is None:
        if len(_decoded_addresses) >= _ADDRESS_CACHE_SIZE:
            _decoded_addresses.clear()
        found = _decoded_addresses[raw] = _parse_addresses(raw)
    return found


def _parse_addresses(raw: bytes) -> tuple[PeerAddress, ...]:
    return tuple(
        PeerAddress(
            ip=o["ip"],
            port=o["port"],
            family=AddressFamily(o["family"]),
            priority=o["priority"],
            type=AddressType(o["type"]) if o["type"] is not None else None,
            connection=o["connection"],
            asn=o["asn"],
            peer_protocol=o["peer_protocol"],
        )
        for o in orjson.loads(raw)
    )


def decode_record(peer_id: str, raw: dict[bytes, bytes]) -> PeerRecord:
    """A peer's record from its stored hash fields."""
    return PeerRecord(
        peer_id=peer_id,
        version=ProtocolVersion(raw[b"v"].decode()),
        state=PeerState[raw[b"s"].decode()],
        addresses=decode_addresses(raw[b"a"]),
        deadline=float(raw[b"d"]),
        grace_used=raw.get(b"g") == b"1",
        host=raw[b"h"].decode() if b"h" in raw else "",
    )


# Content maps are stored as bytes: the raw bitmaps, not their Base64 text.
#   map     := u16 len, swarm id utf-8, u16 n, representation * n
#   repr    := u16 len, id utf-8, u32 n, segment * n
#   segment := q start, q end, q chunkmap size, u32 len, bitmap bytes
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_SEG = struct.Struct(">qqqI")


def pack_content_map(content_map: ContentMap) -> bytes:
    """Serialize a content map to the compact binary form stored in Redis."""
    out = bytearray()

    def text(value: str) -> None:
        data = value.encode()
        out.extend(_U16.pack(len(data)))
        out.extend(data)

    text(content_map.swarm_id)
    out.extend(_U16.pack(len(content_map.representations)))
    for rep in content_map.representations:
        text(rep.representation_id)
        out.extend(_U32.pack(len(rep.segments)))
        for seg in rep.segments:
            out.extend(
                _SEG.pack(seg.start_index, seg.end_index, seg.chunkmap_size, len(seg.bitmap))
            )
            out.extend(seg.bitmap)
    return bytes(out)


def unpack_content_map(data: bytes) -> ContentMap:
    """Inverse of :func:`pack_content_map`."""
    pos = 0

    def text() -> str:
        nonlocal pos
        (size,) = _U16.unpack_from(data, pos)
        pos += 2
        value = data[pos : pos + size].decode()
        pos += size
        return value

    swarm_id = text()
    (nreps,) = _U16.unpack_from(data, pos)
    pos += 2
    reps = []
    for _ in range(nreps):
        rep_id = text()
        (nsegs,) = _U32.unpack_from(data, pos)
        pos += 4
        segs = []
        for _ in range(nsegs):
            start, end, size, blen = _SEG.unpack_from(data, pos)
            pos += _SEG.size
            segs.append(
                SegmentMap(
                    start_index=start,
                    end_index=end,
                    chunkmap_size=size,
                    bitmap=data[pos : pos + blen],
                )
            )
            pos += blen
        reps.append(RepresentationMap(representation_id=rep_id, segments=tuple(segs)))
    return ContentMap(swarm_id=swarm_id, representations=tuple(reps))
