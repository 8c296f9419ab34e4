"""One set of field rules for every codec: what one codec accepts, the others write.

Values cross between the three codecs: a peer list a JSON tracker answer carried is listed again
in XML answers, peers hand the tracker's lists on in the peer protocol, chunk maps go to the
tracker and to other peers.  These properties build documents of every codec from the same
loosely generated values (valid ones, and the values at the edges of the rules: reserved swarm
IDs, whitespace, control characters, long identifiers, port 0, non-canonical and zoned IP
addresses, ICE priorities, bits past a chunk map's size, extra statistic names one encoding
cannot carry, ...).  Whenever one decoder accepts a document, every other codec must write what
it read, and read it back as the same value.

Only what an encoding cannot express at all is left out: RFC 7846 (JSON version 1) has no JOIN,
DISCONNECT, content group or content map, and a JSON answer carries one address of the requester
and no per-action result other than success or failure.  Peer lists are compared swarm by swarm.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ppsp.codecs import peer_xml as peer_codec
from ppsp.codecs import tracker_json as json_codec
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.errors import PeerProtocolError, TrackerProtocolError
from ppsp.wire.fields import distinct_scope
from ppsp.wire.peer import ChunkAvailabilityResponse
from ppsp.wire.peer import FindRequest as PeerFindRequest
from ppsp.wire.peer import FindResponse as PeerFindResponse
from ppsp.wire.tracker import (
    AddressType,
    AnyRequest,
    ConnectRequest,
    ContentMap,
    DisconnectRequest,
    Encoding,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerInfo,
    ProtocolVersion,
    RepresentationMap,
    StatReportRequest,
    TrackerResponse,
)
from wire.strategies import (
    peer_lists,
    raw_actions,
    raw_addresses,
    raw_maps,
    raw_peer_nums,
    raw_peers,
    raw_scopes,
    raw_stats,
    requests,
    swarm_texts,
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
V10, V11 = ProtocolVersion.V1_0, ProtocolVersion.V1_1
REQUESTER = PeerInfo(
    addresses=(PeerAddress(ip="198.51.100.1", port=1, type=AddressType.REFLEXIVE),)
)

# --------------------------------------------------------------------------------------------
# Writing the loose values in each codec's wire form, without any check.


def _attrs(**values: object) -> str:
    return "".join(
        f' {name}="{html.escape(str(value), quote=True)}"'
        for name, value in values.items()
        if value is not None
    )


def _text(value: object) -> str:
    return html.escape(str(value), quote=False)


def _xml(root: str, version: str, body: str) -> bytes:
    return f'<{root} version="{version}">{body}</{root}>'.encode("utf-8", "surrogatepass")


def _xml_address(addr: dict[str, Any]) -> str:
    attrs = _attrs(
        addrType=addr["family"],
        ip=addr["ip"],
        port=addr["port"],
        priority=addr["priority"],
        type=addr["type"],
        connection=addr["connection"],
        asn=addr["asn"],
        peerProtocol=addr["peer_protocol"],
    )
    return f"<PeerAddress{attrs}/>"


def _xml_peer(peer: dict[str, Any]) -> str:
    peer_id = "" if peer["peer_id"] is None else f"<PeerID>{_text(peer['peer_id'])}</PeerID>"
    addresses = "".join(_xml_address(a) for a in peer["addresses"])
    return f"<PeerInfo{_attrs(swarmID=peer['swarm_id'])}>{peer_id}{addresses}</PeerInfo>"


def _xml_segments(segments: list[dict[str, Any]]) -> str:
    return "".join(
        f"<SegmentInfo{_attrs(startIndex=s['start'], endIndex=s['end'], chunkmapSize=s['size'])}>"
        f"{_text(s['text'])}</SegmentInfo>"
        for s in segments
    )


def _xml_representations(raw: dict[str, Any]) -> str:
    return "".join(
        f"<Representation{_attrs(id=r['id'])}>{_xml_segments(r['segments'])}</Representation>"
        for r in raw["representations"]
    )


def _xml_scopes(scopes: list[dict[str, Any]]) -> str:
    if not scopes:
        return ""
    inner = "".join(
        f"<Representation{_attrs(id=s['id'])}>"
        f"<SegmentInfo{_attrs(startIndex=s['start'], endIndex=s['end'])}/></Representation>"
        for s in scopes
    )
    return f"<ContentGroup>{inner}</ContentGroup>"


def _xml_peer_num(num: dict[str, Any] | None, name: str = "PeerNum") -> str:
    if num is None:
        return ""
    attrs = _attrs(
        abilityNAT=num["ability_nat"],
        concurrentLinks=num["concurrent_links"],
        onlineTime=num["online_time"],
        uploadBWlevel=num["upload_bandwidth"],
    )
    count = "" if num["count"] is None else _text(num["count"])
    return f"<{name}{attrs}>{count}</{name}>"


def _tracker_xml_request(method: str, version: ProtocolVersion, body: str) -> bytes:
    head = f"<Request>{method}</Request><PeerID>p</PeerID><TransactionID>t</TransactionID>"
    return _xml("PPSPTrackerProtocol", version.value, head + body)


def _json_address(addr: dict[str, Any]) -> dict[str, Any]:
    ip: dict[str, Any] = {"address": addr["ip"]}
    if addr["family"] is not None:
        ip["address_type"] = addr["family"]
    out: dict[str, Any] = {"ip_address": ip, "port": addr["port"]}
    for name in ("priority", "type", "connection", "asn", "peer_protocol"):
        if addr[name] is not None:
            out[name] = addr[name]
    return out


def _json_peer_num(num: dict[str, Any] | None) -> dict[str, Any]:
    if num is None:
        return {}
    out = {k: v for k, v in num.items() if v is not None and k != "count"}
    if num["count"] is not None:
        out["peer_count"] = num["count"]
    return {"peer_num": out}


def _json_scopes(scopes: list[dict[str, Any]]) -> dict[str, Any]:
    if not scopes:
        return {}
    return {
        "content_group": [
            {"representation_id": s["id"], "start_index": s["start"]}
            | ({} if s["end"] is None else {"end_index": s["end"]})
            for s in scopes
        ]
    }


def _json_map(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "swarm_id": raw["swarm_id"],
        "representation": [
            {
                "id": r["id"],
                "segment_info": [
                    {
                        "start_index": s["start"],
                        "end_index": s["end"],
                        "chunkmap_size": s["size"],
                        "chunkmap": s["text"],
                    }
                    for s in r["segments"]
                ],
            }
            for r in raw["representations"]
        ],
    }


def _json(version: ProtocolVersion, **members: Any) -> bytes | None:
    number = 1 if version is V10 else 2
    document = {"PPSPTrackerProtocol": {"version": number, **members}}
    try:
        return orjson.dumps(document)
    except (orjson.JSONEncodeError, TypeError):
        return None  # a value JSON cannot hold at all (an integer over 64 bits)


def _json_request(version: ProtocolVersion, method: str, **members: Any) -> bytes | None:
    return _json(version, request_type=method, transaction_id="t", peer_id="p", **members)


# --------------------------------------------------------------------------------------------
# Decoding with each codec; None when it refuses.


def _try(decode: Callable[[], Any]) -> Any:
    try:
        return decode()
    except (TrackerProtocolError, PeerProtocolError):
        return None


def _tracker_request(encoding: str, data: bytes | None) -> AnyRequest | None:
    if data is None:
        return None
    codec = xml_codec if encoding == "xml" else json_codec
    return _try(lambda: codec.decode_request(data))  # type: ignore[no-any-return]


def _expressible_in_json(msg: AnyRequest) -> bool:
    """Whether RFC 7846 (version 1) has the message's method and members, when it is 1.0."""
    if msg.version is V11:
        return True
    if isinstance(msg, JoinRequest | DisconnectRequest):
        return False
    if isinstance(msg, ConnectRequest | FindRequest) and msg.content_group:
        return False
    return not (isinstance(msg, StatReportRequest) and msg.content_maps)


def _check_request_everywhere(msg: AnyRequest) -> None:
    """``msg`` (accepted by one codec) is written by both tracker codecs and read back equal;
    its shared parts (scope, PeerNum, chunk maps) go through the peer codec too."""
    assert xml_codec.decode_request(xml_codec.encode_request(msg)) == msg
    if _expressible_in_json(msg):
        assert json_codec.decode_request(json_codec.encode_request(msg)) == msg
    if isinstance(msg, FindRequest):
        find = PeerFindRequest(
            transaction_id="1",
            peer_id="p",
            swarm_id=msg.swarm_id,
            content_group=msg.content_group,
            peer_num=msg.peer_num,
        )
        assert peer_codec.decode_request(peer_codec.encode_request(find)) == find
    if isinstance(msg, StatReportRequest):
        for content_map in msg.content_maps:
            _check_chunk_map_in_peer_codec(content_map.representations)


def _check_chunk_map_in_peer_codec(chunk_map: tuple[RepresentationMap, ...]) -> None:
    answer = ChunkAvailabilityResponse(transaction_id="1", swarm_id="s", chunk_map=chunk_map)
    assert peer_codec.decode_response(peer_codec.encode_response(answer)) == answer


# --------------------------------------------------------------------------------------------
# Requests


@PROPERTY
@given(st.sampled_from([V10, V11]), swarm_texts, raw_peer_nums, raw_scopes)
def test_find_accepted_anywhere_is_written_everywhere(
    version: ProtocolVersion, swarm: str, num: dict[str, Any] | None, scopes: list[dict[str, Any]]
) -> None:
    xml_body = f"<SwarmID>{_text(swarm)}</SwarmID>{_xml_peer_num(num)}{_xml_scopes(scopes)}"
    json_find = {"swarm_id": swarm, **_json_peer_num(num), **_json_scopes(scopes)}
    for msg in (
        _tracker_request("xml", _tracker_xml_request("FIND", version, xml_body)),
        _tracker_request("json", _json_request(version, "FIND", find=json_find)),
    ):
        if msg is not None:
            _check_request_everywhere(msg)
    # The peer codec's FIND carries the same scope and PeerNum: what it reads, the tracker's
    # codecs write.
    peer_body = (
        "<Method>FIND</Method><TransactionID>1</TransactionID><PeerID>p</PeerID>"
        f"<SwarmID>{_text(swarm)}</SwarmID>{_xml_scopes(scopes)}{_xml_peer_num(num, 'Peernum')}"
    )
    peer = _try(lambda: peer_codec.decode_request(_xml("PPSPPeerProtocol", "0.1", peer_body)))
    if isinstance(peer, PeerFindRequest):
        find = FindRequest(
            version=V11,
            transaction_id="t",
            peer_id="p",
            swarm_id=peer.swarm_id,
            peer_num=peer.peer_num,
            # A tracker's ContentGroup holds each range once (fields.distinct_scope): the
            # tracker codecs write a scope read by the peer codec as its distinct ranges.
            content_group=distinct_scope(peer.content_group),
        )
        _check_request_everywhere(find)


@PROPERTY
@given(
    st.sampled_from([V10, V11]),
    st.sampled_from(["CONNECT", "JOIN", "DISCONNECT"]),
    raw_actions,
    st.lists(raw_addresses(), max_size=3),
)
def test_swarm_actions_and_addresses_accepted_anywhere_are_written_everywhere(
    version: ProtocolVersion,
    method: str,
    actions: list[dict[str, Any]],
    addresses: list[dict[str, Any]],
) -> None:
    xml_body = "".join(
        f"<SwarmID{_attrs(action=a['action'], peerMode=a['mode'], transactionID=a['tid'])}>"
        f"{_text(a['swarm_id'])}</SwarmID>"
        for a in actions
    )
    if method == "CONNECT" and addresses:
        inner = "".join(_xml_address(a) for a in addresses)
        xml_body += f"<PeerGroup><PeerInfo>{inner}</PeerInfo></PeerGroup>"
    modes = {"SEED": "SEEDER", "LEECH": "LEECH", None: None}
    json_actions = [
        {
            k: v
            for k, v in {
                "swarm_id": a["swarm_id"],
                "action": a["action"],
                "peer_mode": modes[a["mode"]],
                "transaction_id": a["tid"],
            }.items()
            if v is not None
        }
        for a in actions
    ]
    data: dict[str, Any] = {"swarm_action": json_actions}
    if method == "CONNECT":
        data["peer_addr"] = [_json_address(a) for a in addresses]
    for msg in (
        _tracker_request("xml", _tracker_xml_request(method, version, xml_body)),
        _tracker_request("json", _json_request(version, method, **{method.lower(): data})),
    ):
        if msg is not None:
            _check_request_everywhere(msg)


@PROPERTY
@given(st.sampled_from([V10, V11]), raw_stats, st.lists(raw_maps(), max_size=2))
def test_statistics_and_maps_accepted_anywhere_are_written_everywhere(
    version: ProtocolVersion, stats: list[dict[str, Any]], maps: list[dict[str, Any]]
) -> None:
    xml_stats = []
    for stat in stats:
        swarm = "" if stat["swarm_id"] is None else f"<SwarmID>{_text(stat['swarm_id'])}</SwarmID>"
        uploaded = stat["uploaded"]
        up = "" if uploaded is None else f"<UploadedBytes>{uploaded}</UploadedBytes>"
        extra = "".join(f"<{n}>{_text(v)}</{n}>" for n, v in stat["extra"])
        xml_stats.append(f'<Stat property="StreamStatistics">{swarm}{up}{extra}</Stat>')
    for raw in maps:
        swarm = f"<SwarmID>{_text(raw['swarm_id'])}</SwarmID>"
        xml_stats.append(f'<Stat property="ContentMap">{swarm}{_xml_representations(raw)}</Stat>')
    xml_body = f"<StatisticsGroup>{''.join(xml_stats)}</StatisticsGroup>"
    json_stats = []
    for stat in stats:
        member: dict[str, Any] = dict(stat["extra"])
        if stat["swarm_id"] is not None:
            member["swarm_id"] = stat["swarm_id"]
        if stat["uploaded"] is not None:
            member["uploaded_bytes"] = stat["uploaded"]
        json_stats.append(member)
    groups = [{"type": "STREAM_STATS", "stat": json_stats}]
    if maps:
        groups.append({"type": "CONTENT_MAP", "stat": [_json_map(raw) for raw in maps]})
    for msg in (
        _tracker_request("xml", _tracker_xml_request("STAT_REPORT", version, xml_body)),
        _tracker_request("json", _json_request(version, "STAT_REPORT", stat_report=groups)),
    ):
        if msg is not None:
            _check_request_everywhere(msg)


# --------------------------------------------------------------------------------------------
# Peer lists and chunk maps in answers


def _by_swarm(peers: tuple[PeerInfo, ...]) -> dict[str | None, dict[str | None, tuple[Any, ...]]]:
    """A peer list swarm by swarm (JSON groups peers by swarm_result)."""
    grouped: dict[str | None, dict[str | None, tuple[Any, ...]]] = {}
    for peer in peers:
        assert peer.peer_id not in grouped.setdefault(peer.swarm_id, {})
        grouped[peer.swarm_id][peer.peer_id] = peer.addresses
    return grouped


def _check_peers_everywhere(peers: tuple[PeerInfo, ...]) -> None:
    """A peer list one codec read is written by every codec and read back the same."""
    answer = TrackerResponse(version=V11, transaction_id="t", requester=REQUESTER, peers=peers)
    xml_back = xml_codec.decode_response(xml_codec.encode_response(answer))
    assert isinstance(xml_back, TrackerResponse) and xml_back.peers == peers
    for check in (True, False):
        json_back = json_codec.decode_response(json_codec.encode_response(answer, check=check))
        assert isinstance(json_back, TrackerResponse)
        assert _by_swarm(json_back.peers) == _by_swarm(peers)
    find = PeerFindResponse(transaction_id="1", peers=peers)
    assert peer_codec.decode_response(peer_codec.encode_response(find)) == find


@PROPERTY
@given(st.lists(raw_peers(), max_size=4), st.booleans())
def test_peer_lists_read_anywhere_are_written_everywhere(
    peers: list[dict[str, Any]], one_entry_per_address: bool
) -> None:
    reflexive = '<PeerAddress ip="198.51.100.1" port="1" type="REFLEXIVE"/>'
    xml_answer = (
        "<Response>SUCCESSFUL</Response><TransactionID>t</TransactionID><PeerGroup>"
        f"<PeerInfo>{reflexive}</PeerInfo>{''.join(_xml_peer(p) for p in peers)}</PeerGroup>"
    )
    results: list[dict[str, Any]] = []
    for peer in peers:
        entries: list[dict[str, Any]] = []
        addresses = [_json_address(a) for a in peer["addresses"]]
        if one_entry_per_address:
            entries = [{"peer_id": peer["peer_id"], "peer_addr": a} for a in addresses]
        else:
            entries = [{"peer_id": peer["peer_id"], "peer_addr": addresses}]
        entries = [{k: v for k, v in e.items() if v is not None} for e in entries]
        result = {"result": 0, "peer_group": {"peer_info": entries}}
        if peer["swarm_id"] is not None:
            result["swarm_id"] = peer["swarm_id"]
        results.append(result)
    json_answer = _json(
        V10, response_type=0, error_code=0, transaction_id="t", swarm_result=results
    )
    peer_answer = (
        "<Response>FIND</Response><TransactionID>1</TransactionID>"
        f"<Peers>{''.join(_xml_peer(p) for p in peers)}</Peers>"
    )
    decoded = [
        _try(lambda: xml_codec.decode_response(_xml("PPSPTrackerProtocol", "1.1", xml_answer))),
        None if json_answer is None else _try(lambda: json_codec.decode_response(json_answer)),
        _try(lambda: peer_codec.decode_response(_xml("PPSPPeerProtocol", "0.1", peer_answer))),
    ]
    for answer in decoded:
        if answer is not None:
            _check_peers_everywhere(answer.peers)


@PROPERTY
@given(raw_maps())
def test_chunk_maps_read_anywhere_are_written_everywhere(raw: dict[str, Any]) -> None:
    xml_body = (
        '<StatisticsGroup><Stat property="ContentMap">'
        f"<SwarmID>s</SwarmID>{_xml_representations(raw)}</Stat></StatisticsGroup>"
    )
    stat = {**_json_map(raw), "swarm_id": "s"}
    peer_body = (
        "<Response>CHUNK_AVAILABILITY</Response><TransactionID>1</TransactionID>"
        f"<CHUNK>{_xml_representations(raw)}</CHUNK>"
    )
    maps: list[tuple[RepresentationMap, ...]] = []
    for msg in (
        _tracker_request("xml", _tracker_xml_request("STAT_REPORT", V11, xml_body)),
        _tracker_request(
            "json",
            _json_request(V11, "STAT_REPORT", stat_report={"type": "CONTENT_MAP", "stat": stat}),
        ),
    ):
        if isinstance(msg, StatReportRequest):
            maps.extend(m.representations for m in msg.content_maps)
    answer = _try(lambda: peer_codec.decode_response(_xml("PPSPPeerProtocol", "0.1", peer_body)))
    if isinstance(answer, ChunkAvailabilityResponse):
        maps.append(answer.chunk_map)
    for chunk_map in maps:
        _check_chunk_map_in_peer_codec(chunk_map)
        if chunk_map:  # a tracker content map holds at least one representation
            report = StatReportRequest(
                version=V11,
                transaction_id="t",
                peer_id="p",
                content_maps=(ContentMap(swarm_id="s", representations=chunk_map),),
            )
            _check_request_everywhere(report)


# --------------------------------------------------------------------------------------------
# Valid messages (the shared strategies): what every encoding carries reads back alike in each


@PROPERTY
@given(requests(encoding=Encoding.JSON))
def test_requests_every_encoding_carries_read_back_alike(msg: AnyRequest) -> None:
    _check_request_everywhere(msg)


@PROPERTY
@given(peer_lists())
def test_peer_lists_read_back_alike_in_every_codec(peers: tuple[PeerInfo, ...]) -> None:
    _check_peers_everywhere(peers)


def test_the_issue_example_a_long_json_peer_id_never_reaches_an_xml_answer() -> None:
    """A 300-character PeerID was read from JSON (up to 512) and could not be written in XML
    (up to 256): every XML answer listing that peer was a 500."""
    data = _json_request(V10, "FIND", find={"swarm_id": "s"})
    assert data is not None
    long_id = data.replace(b'"peer_id":"p"', b'"peer_id":"' + b"x" * 300 + b'"')
    assert _tracker_request("json", long_id) is None
    assert _tracker_request("xml", _tracker_xml_request("FIND", V10, "<SwarmID>s</SwarmID>"))


def test_every_codec_reads_integers_by_one_rule() -> None:
    """1 to 19 ASCII digits: the tracker XML codec took 20 (leading zeros), the others 19."""
    for digits, count in (("0" * 18 + "5", 5), ("0" * 19 + "5", None)):
        xml = _tracker_request(
            "xml",
            _tracker_xml_request("FIND", V11, f"<SwarmID>s</SwarmID><PeerNum>{digits}</PeerNum>"),
        )
        json = _tracker_request(
            "json",
            _json_request(V11, "FIND", find={"swarm_id": "s", "peer_num": {"peer_count": digits}}),
        )
        peer_body = (
            "<Method>FIND</Method><TransactionID>1</TransactionID><PeerID>p</PeerID>"
            f"<SwarmID>s</SwarmID><Peernum>{digits}</Peernum>"
        )
        peer = _try(
            lambda body=peer_body: peer_codec.decode_request(_xml("PPSPPeerProtocol", "0.1", body))
        )
        found = [
            None if msg is None or msg.peer_num is None else msg.peer_num.count
            for msg in (xml, json, peer)
        ]
        assert found == [count, count, count]
