"""The corrupt-peer report extension of STAT_REPORT in both codecs (docs/PROTOCOL.md)."""

from __future__ import annotations

import orjson
import pytest

from ppsp.codecs import tracker_json, tracker_xml
from ppsp.errors import BadRequest, LocalProtocolError
from ppsp.wire.fields import MAX_CORRUPT_REPORTS
from ppsp.wire.tracker import CorruptPeerReport, ProtocolVersion, StatReportRequest

V10, V11 = ProtocolVersion.V1_0, ProtocolVersion.V1_1
REPORT = CorruptPeerReport(
    swarm_id="s1", peer_id="liar", ip="192.0.2.5", port=7001, corrupt_chunks=3
)


def _xml(version: str, stats: str) -> bytes:
    return (
        f'<PPSPTrackerProtocol xmlns="TBD" version="{version}"><Request>STAT_REPORT</Request>'
        f"<TransactionID>9</TransactionID><PeerID>me</PeerID>"
        f"<StatisticsGroup>{stats}</StatisticsGroup></PPSPTrackerProtocol>"
    ).encode()


CORRUPT_STAT = (
    '<Stat property="CorruptPeer"><SwarmID>s1</SwarmID><PeerID>liar</PeerID>'
    '<PeerAddress addrType="ipv4" ip="192.0.2.5" port="7001"/>'
    "<CorruptChunks>3</CorruptChunks></Stat>"
)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_xml_reads_the_element_in_either_version(version: str) -> None:
    stats = '<Stat property="StreamStatistics"><UploadedBytes>5</UploadedBytes></Stat>'
    msg = tracker_xml.decode_request(_xml(version, stats + CORRUPT_STAT))
    assert isinstance(msg, StatReportRequest)
    assert msg.corrupt_peers == (REPORT,)
    assert msg.stream_stats[0].uploaded_bytes == 5


def test_xml_ignores_unknown_content_inside_and_beside_the_element() -> None:
    inside = CORRUPT_STAT.replace("</Stat>", "<Reason>hash</Reason></Stat>")
    beside = '<Stat property="CorruptPeerV9"><Anything/></Stat>'
    msg = tracker_xml.decode_request(_xml("1.0", inside + beside))
    assert isinstance(msg, StatReportRequest)
    assert msg.corrupt_peers == (REPORT,)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('port="7001"', 'port="0"'),
        ("<CorruptChunks>3</CorruptChunks>", "<CorruptChunks>0</CorruptChunks>"),
        ("<CorruptChunks>3</CorruptChunks>", ""),
        ('<PeerAddress addrType="ipv4" ip="192.0.2.5" port="7001"/>', ""),
        ('ip="192.0.2.5"', 'ip="not-an-ip"'),
        ("<SwarmID>s1</SwarmID>", "<SwarmID>ALL</SwarmID>"),
        ("<PeerID>liar</PeerID>", "<PeerID>li ar</PeerID>"),
        ("<PeerID>liar</PeerID>", "<PeerID>a</PeerID><PeerID>b</PeerID>"),
    ],
)
def test_xml_refuses_a_malformed_element(old: str, new: str) -> None:
    with pytest.raises(BadRequest):
        tracker_xml.decode_request(_xml("1.1", CORRUPT_STAT.replace(old, new)))


def _json(version: int, groups: object) -> bytes:
    root = {
        "version": version,
        "request_type": "STAT_REPORT",
        "transaction_id": "9",
        "peer_id": "me",
        "stat_report": groups,
    }
    return orjson.dumps({"PPSPTrackerProtocol": root})


JSON_STAT = {
    "swarm_id": "s1",
    "peer_id": "liar",
    "peer_addr": {"ip_address": {"address_type": "ipv4", "address": "192.0.2.5"}, "port": 7001},
    "corrupt_chunks": 3,
}


@pytest.mark.parametrize("version", [1, 2])
def test_json_reads_the_group_in_either_version(version: int) -> None:
    group = {"type": "CORRUPT_PEER", "stat": [JSON_STAT]}
    msg = tracker_json.decode_request(_json(version, [group, {"type": "OTHER", "stat": []}]))
    assert isinstance(msg, StatReportRequest)
    assert msg.corrupt_peers == (REPORT,)


@pytest.mark.parametrize(
    "change",
    [{"corrupt_chunks": 0}, {"peer_addr": None}, {"swarm_id": "nil"}, {"peer_id": ""}],
)
def test_json_refuses_a_malformed_stat(change: dict[str, object]) -> None:
    stat = {**JSON_STAT, **change}
    with pytest.raises(BadRequest):
        tracker_json.decode_request(_json(2, {"type": "CORRUPT_PEER", "stat": [stat]}))


@pytest.mark.parametrize("version", [V10, V11])
def test_both_codecs_write_and_read_back_the_reports(version: ProtocolVersion) -> None:
    msg = StatReportRequest(
        version=version, transaction_id="9", peer_id="me", corrupt_peers=(REPORT,) * 2
    )
    for codec in (tracker_xml, tracker_json):
        assert codec.decode_request(codec.encode_request(msg)) == msg


def test_the_bound_is_the_same_when_reading_and_writing() -> None:
    many = StatReportRequest(
        version=V11,
        transaction_id="9",
        peer_id="me",
        corrupt_peers=(REPORT,) * (MAX_CORRUPT_REPORTS + 1),
    )
    for codec in (tracker_xml, tracker_json):
        with pytest.raises(LocalProtocolError):
            codec.encode_request(many)
    with pytest.raises(BadRequest):
        tracker_xml.decode_request(_xml("1.1", CORRUPT_STAT * (MAX_CORRUPT_REPORTS + 1)))
    group = {"type": "CORRUPT_PEER", "stat": [JSON_STAT] * (MAX_CORRUPT_REPORTS + 1)}
    with pytest.raises(BadRequest):
        tracker_json.decode_request(_json(2, [group]))
    fits = tracker_xml.decode_request(_xml("1.1", CORRUPT_STAT * MAX_CORRUPT_REPORTS))
    assert isinstance(fits, StatReportRequest)
    assert len(fits.corrupt_peers) == MAX_CORRUPT_REPORTS


def test_writers_refuse_an_ip_they_could_not_read_back_alike() -> None:
    msg = StatReportRequest(
        version=V11,
        transaction_id="9",
        peer_id="me",
        corrupt_peers=(CorruptPeerReport(swarm_id="s", peer_id="p", ip="2001:DB8::1", port=1),),
    )
    for codec in (tracker_xml, tracker_json):
        with pytest.raises(LocalProtocolError):
            codec.encode_request(msg)


def test_a_plain_report_without_the_element_reads_as_before() -> None:
    stats = '<Stat property="StreamStatistics"><UploadedBytes>5</UploadedBytes></Stat>'
    msg = tracker_xml.decode_request(_xml("1.0", stats))
    assert isinstance(msg, StatReportRequest)
    assert msg.corrupt_peers == ()
