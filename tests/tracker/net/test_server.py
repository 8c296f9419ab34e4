"""The tracker HTTP server over real loopback HTTP, against the real Tracker and MemoryStorage."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from ppsp.codecs import tracker_json as json_codec
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.codecs.tracker import codec_for, encoding_for, safe_reason
from ppsp.errors import ServiceUnavailable, TrackerErrorCode
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.limits import Limits
from ppsp.tracker.net.redis_storage import RedisStorage
from ppsp.tracker.net.server import (
    TRACKER_APP_KEY,
    Expirer,
    ServerSettings,
    TrackerApp,
    create_app,
    make_storage,
    running_tracker,
    serve_app,
    storage_label,
)
from ppsp.tracker.storage import MemoryStorage
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    ContentMap,
    DisconnectRequest,
    DisconnectScope,
    Encoding,
    ErrorResponse,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    TrackerResponse,
)
from tracker.storage.redis_server import free_port, redis_server

V11 = ProtocolVersion.V1_1
V10 = ProtocolVersion.V1_0
ENCODINGS = [Encoding.XML, Encoding.JSON]


@contextlib.asynccontextmanager
async def serve(app: TrackerApp) -> AsyncIterator[str]:
    async with serve_app(app) as url:
        yield url


class Fixture:
    """A served tracker and a session to talk to it."""

    def __init__(self, url: str, tracker: Tracker, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.tracker = tracker
        self.session = session

    async def raw(
        self, body: bytes, content_type: str, **headers: str
    ) -> tuple[int, str, bytes, dict[str, str]]:
        async with self.session.post(
            self.url + "/video_1",
            data=body,
            headers={"Content-Type": content_type, **headers},
        ) as resp:
            return resp.status, resp.reason or "", await resp.read(), dict(resp.headers)

    async def send(
        self, encoding: Encoding, msg: AnyRequest
    ) -> tuple[int, TrackerResponse | ErrorResponse]:
        codec = codec_for(encoding)
        status, reason, body, _ = await self.raw(codec.encode_request(msg), encoding.content_type)
        return status, codec.decode_response(body, status, reason)


@contextlib.asynccontextmanager
async def tracker_fixture(
    config: TrackerConfig | None = None, settings: ServerSettings | None = None
) -> AsyncIterator[Fixture]:
    tracker = Tracker(MemoryStorage(), config or TrackerConfig())
    app = create_app(tracker, settings=settings)
    async with serve(app) as url, aiohttp.ClientSession() as session:
        yield Fixture(url, tracker, session)


@pytest.fixture
async def fx() -> AsyncIterator[Fixture]:
    async with tracker_fixture() as fixture:
        yield fixture


def _ok(result: tuple[int, TrackerResponse | ErrorResponse]) -> TrackerResponse:
    status, answer = result
    assert status == 200, answer
    assert isinstance(answer, TrackerResponse)
    return answer


CHUNK_MAP = ContentMap(
    swarm_id="swarm_b",
    representations=(
        RepresentationMap(
            representation_id="tag0",
            segments=(
                SegmentMap(start_index=0, end_index=24, chunkmap_size=25, bitmap=b"\xff\xff\0\0"),
            ),
        ),
    ),
)


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_seed_session(fx: Fixture, encoding: Encoding) -> None:
    me = "656164657221"
    ids: dict[str, Any] = {"version": V11, "peer_id": me}
    register = _ok(
        await fx.send(
            encoding,
            ConnectRequest(
                transaction_id="1",
                peer_addresses=(PeerAddress(ip="127.0.0.1", port=7001),),
                **ids,
            ),
        )
    )
    assert register.transaction_id == "1"
    # The tracker reports the address it observed: loopback, our client port.
    assert register.requester is not None
    assert register.requester.addresses[0].ip == "127.0.0.1"

    join_a = JoinRequest(
        transaction_id="2",
        swarms=(SwarmAction(swarm_id="swarm_a", peer_mode=PeerMode.SEED),),
        **ids,
    )
    assert _ok(await fx.send(encoding, join_a)).transaction_id == "2"
    stats = StreamStatistics(swarm_id="swarm_a", uploaded_bytes=10, downloaded_bytes=0)
    _ok(
        await fx.send(encoding, StatReportRequest(transaction_id="3", stream_stats=(stats,), **ids))
    )

    for i, other in enumerate(("956264622298", "3332001256741")):
        for req in (
            ConnectRequest(version=V11, transaction_id=f"o{i}", peer_id=other),
            JoinRequest(
                version=V11,
                transaction_id=f"oj{i}",
                peer_id=other,
                swarms=(SwarmAction(swarm_id="swarm_b", peer_mode=PeerMode.SEED),),
            ),
        ):
            _ok(await fx.send(encoding, req))

    join_b = JoinRequest(
        transaction_id="4",
        swarms=(SwarmAction(swarm_id="swarm_b", peer_mode=PeerMode.LEECH),),
        **ids,
    )
    peers = {p.peer_id for p in _ok(await fx.send(encoding, join_b)).peers}
    assert peers == {"956264622298", "3332001256741"}
    report = StatReportRequest(transaction_id="5", content_maps=(CHUNK_MAP,), **ids)
    _ok(await fx.send(encoding, report))
    found = _ok(await fx.send(encoding, FindRequest(transaction_id="6", swarm_id="swarm_b", **ids)))
    assert {p.peer_id for p in found.peers} == peers
    leave_b = DisconnectRequest(
        transaction_id="7",
        scope=DisconnectScope.SWARMS,
        swarms=(SwarmAction(swarm_id="swarm_b"),),
        **ids,
    )
    _ok(await fx.send(encoding, leave_b))
    _ok(
        await fx.send(encoding, StatReportRequest(transaction_id="8", stream_stats=(stats,), **ids))
    )
    bye = _ok(
        await fx.send(
            encoding, DisconnectRequest(transaction_id="9", scope=DisconnectScope.SYSTEM, **ids)
        )
    )
    assert bye.transaction_id == "9"
    stats_now = await fx.tracker.stats()
    assert stats_now.peers == 2  # the two others remain
    assert stats_now.memberships == 2


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/ppsp-tracker+xml", Encoding.XML),
        ("application/xml; charset=utf-8", Encoding.XML),
        ("TEXT/XML", Encoding.XML),
        ("application/ppsp-tracker+json", Encoding.JSON),
        ("application/json;charset=UTF-8", Encoding.JSON),
        ("text/plain", None),
        ("", None),
        (None, None),
    ],
)
def test_encoding_for(content_type: str | None, expected: Encoding | None) -> None:
    assert encoding_for(content_type) is expected


def test_safe_reason() -> None:
    assert safe_reason("bad\r\nInjected: header") == "bad  Injected: header"
    assert safe_reason("\x00\x01") == "Error"
    assert len(safe_reason("x" * 500)) == 100


@pytest.mark.parametrize(
    "content_type",
    ["application/xml", "text/xml; charset=utf-8", "application/json"],
)
async def test_alternative_media_types(fx: Fixture, content_type: str) -> None:
    encoding = encoding_for(content_type)
    assert encoding is not None
    body = codec_for(encoding).encode_request(
        ConnectRequest(version=V11, transaction_id="42", peer_id="alt")
    )
    status, reason, answer, headers = await fx.raw(body, content_type)
    assert status == 200, reason
    assert headers["Content-Type"] == encoding.content_type
    decoded = codec_for(encoding).decode_response(answer, status, reason)
    assert isinstance(decoded, TrackerResponse)


@pytest.mark.parametrize(
    ("content_type", "headers"),
    [
        ("text/plain", {}),
        ("application/octet-stream", {}),
        ("application/ppsp-tracker+xml", {"Content-Encoding": "gzip"}),
    ],
)
async def test_unsupported_media_type(
    fx: Fixture, content_type: str, headers: dict[str, str]
) -> None:
    status, _, body, answer_headers = await fx.raw(b"<x/>", content_type, **headers)
    assert status == 415
    assert b"application/ppsp-tracker+xml" in body
    assert "application/ppsp-tracker+json" in answer_headers["Accept-Post"]


async def test_missing_content_type_is_415(fx: Fixture) -> None:
    async with fx.session.post(fx.url + "/", data=b"<x/>", skip_auto_headers=["Content-Type"]) as r:
        assert r.status == 415


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<PPSPTrackerProtocol version="1.1"><Request>CONNECT</Request><PeerID>&lol3;</PeerID>
<TransactionID>1</TransactionID></PPSPTrackerProtocol>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<PPSPTrackerProtocol version="1.1"><Request>CONNECT</Request><PeerID>&xxe;</PeerID>
<TransactionID>1</TransactionID></PPSPTrackerProtocol>"""

DTD_ONLY = b"""<?xml version="1.0"?>
<!DOCTYPE PPSPTrackerProtocol SYSTEM "http://127.0.0.1:9/ppsp.dtd">
<PPSPTrackerProtocol version="1.1"><Request>CONNECT</Request><PeerID>p</PeerID>
<TransactionID>1</TransactionID></PPSPTrackerProtocol>"""

GOOD_XML = xml_codec.encode_request(ConnectRequest(version=V11, transaction_id="7", peer_id="p"))

XML_HOSTILE: dict[str, tuple[bytes, TrackerErrorCode]] = {
    "empty": (b"", TrackerErrorCode.BAD_REQUEST),
    "not xml": (b"hello", TrackerErrorCode.BAD_REQUEST),
    "truncated": (GOOD_XML[: len(GOOD_XML) // 2], TrackerErrorCode.BAD_REQUEST),
    "wrong root": (b"<?xml version='1.0'?><Other/>", TrackerErrorCode.BAD_REQUEST),
    "unknown method": (
        GOOD_XML.replace(b">CONNECT<", b">EXPLODE<"),
        TrackerErrorCode.BAD_REQUEST,
    ),
    "unknown version": (
        GOOD_XML.replace(b'version="1.1"', b'version="7.3"'),
        TrackerErrorCode.UNSUPPORTED_VERSION,
    ),
    "wrong type": (
        xml_codec.encode_request(
            FindRequest(version=V11, transaction_id="7", peer_id="p", swarm_id="s")
        ).replace(b"<PeerID>p</PeerID>", b"<PeerID>p</PeerID><PeerNum>many</PeerNum>"),
        TrackerErrorCode.BAD_REQUEST,
    ),
    "dtd": (DTD_ONLY, TrackerErrorCode.BAD_REQUEST),
    "billion laughs": (BILLION_LAUGHS, TrackerErrorCode.BAD_REQUEST),
    "external entity": (EXTERNAL_ENTITY, TrackerErrorCode.BAD_REQUEST),
    "binary": (bytes(range(256)) * 4, TrackerErrorCode.BAD_REQUEST),
    "deep": (b"<a>" * 5000 + b"</a>" * 5000, TrackerErrorCode.BAD_REQUEST),
}


def _json(obj: Any) -> bytes:
    return orjson.dumps(obj)


GOOD_JSON: dict[str, Any] = {
    "version": 2,
    "request_type": "CONNECT",
    "transaction_id": "7",
    "peer_id": "p",
}

JSON_HOSTILE: dict[str, tuple[bytes, TrackerErrorCode]] = {
    "empty": (b"", TrackerErrorCode.BAD_REQUEST),
    "not json": (b"{nope", TrackerErrorCode.BAD_REQUEST),
    "truncated": (_json({"PPSPTrackerProtocol": GOOD_JSON})[:30], TrackerErrorCode.BAD_REQUEST),
    "array root": (b"[1,2,3]", TrackerErrorCode.BAD_REQUEST),
    "unknown method": (
        _json({"PPSPTrackerProtocol": {**GOOD_JSON, "request_type": "EXPLODE"}}),
        TrackerErrorCode.BAD_REQUEST,
    ),
    "unknown version": (
        _json({"PPSPTrackerProtocol": {**GOOD_JSON, "version": 9}}),
        TrackerErrorCode.UNSUPPORTED_VERSION,
    ),
    "wrong type": (
        _json({"PPSPTrackerProtocol": {**GOOD_JSON, "peer_id": {"x": [1]}}}),
        TrackerErrorCode.BAD_REQUEST,
    ),
    "huge integer": (
        _json({"PPSPTrackerProtocol": {**GOOD_JSON, "version": 123456}}).replace(
            b"123456", b"9" * 400
        ),
        TrackerErrorCode.BAD_REQUEST,
    ),
    "deep": (b"[" * 20_000 + b"]" * 20_000, TrackerErrorCode.BAD_REQUEST),
    "invalid utf-8": (b'{"PPSPTrackerProtocol": "\xff\xfe"}', TrackerErrorCode.BAD_REQUEST),
}


async def _still_serving(fx: Fixture, encoding: Encoding) -> None:
    _ok(
        await fx.send(
            encoding, ConnectRequest(version=V11, transaction_id="99", peer_id="after-attack")
        )
    )
    await fx.tracker.storage.delete_peer("after-attack")


@pytest.mark.parametrize("name", sorted(XML_HOSTILE))
async def test_hostile_xml(fx: Fixture, name: str) -> None:
    body, code = XML_HOSTILE[name]
    status, reason, answer, _ = await fx.raw(body, Encoding.XML.content_type)
    assert status == code.http_status, (status, reason)
    assert b"Traceback" not in answer and b"root:" not in answer
    decoded = xml_codec.decode_response(answer, status, reason)
    assert isinstance(decoded, ErrorResponse)
    assert decoded.code is code
    await _still_serving(fx, Encoding.XML)


@pytest.mark.parametrize("name", sorted(JSON_HOSTILE))
async def test_hostile_json(fx: Fixture, name: str) -> None:
    body, code = JSON_HOSTILE[name]
    status, reason, answer, _ = await fx.raw(body, Encoding.JSON.content_type)
    assert status == code.http_status, (status, reason)
    document = orjson.loads(answer)["PPSPTrackerProtocol"]
    assert document["response_type"] == 1
    assert document["error_code"] == code.json_code
    await _still_serving(fx, Encoding.JSON)


async def test_error_echoes_transaction_id(fx: Fixture) -> None:
    # FIND from an unregistered peer: refused by the state machine, with the request's ID.
    status, answer = await fx.send(
        Encoding.JSON,
        FindRequest(version=V11, transaction_id="555", peer_id="nobody", swarm_id="s"),
    )
    assert status == 403
    assert isinstance(answer, ErrorResponse)
    assert answer.code is TrackerErrorCode.FORBIDDEN
    assert answer.transaction_id == "555"


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_one_mebibyte_is_413(fx: Fixture, encoding: Encoding) -> None:
    body = b" " * (1 << 20)
    status, reason, answer, headers = await fx.raw(body, encoding.content_type)
    assert status == 413, reason
    assert headers.get("Connection", "").lower() == "close"
    decoded = codec_for(encoding).decode_response(answer, status, reason)
    assert isinstance(decoded, ErrorResponse)
    await _still_serving(fx, encoding)


async def test_chunked_body_over_bound_is_413(fx: Fixture) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b" " * 16384

    async with fx.session.post(
        fx.url + "/", data=chunks(), headers={"Content-Type": Encoding.XML.content_type}
    ) as resp:
        assert resp.status == 413


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_chunked_request_within_the_bound_is_answered(
    fx: Fixture, encoding: Encoding
) -> None:
    body = codec_for(encoding).encode_request(
        ConnectRequest(version=V11, transaction_id="7", peer_id="chunky")
    )

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    async with fx.session.post(
        fx.url + "/", data=chunks(), headers={"Content-Type": encoding.content_type}
    ) as resp:
        assert resp.status == 200
        answer = codec_for(encoding).decode_response(await resp.read(), 200, resp.reason or "")
    assert isinstance(answer, TrackerResponse) and answer.transaction_id == "7"
    await _still_serving(fx, encoding)


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_five_thousand_swarms(encoding: Encoding) -> None:
    swarms = tuple(SwarmAction(swarm_id=f"s{i}", peer_mode=PeerMode.LEECH) for i in range(5000))
    # Written by hand: the encoders refuse to produce more swarms than the decoders accept.
    if encoding is Encoding.XML:
        ids = "".join(f'<SwarmID peerMode="LEECH">{s.swarm_id}</SwarmID>' for s in swarms)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><PPSPTrackerProtocol version="1.1">'
            f"<Request>JOIN</Request><PeerID>big</PeerID>{ids}"
            "<TransactionID>5000</TransactionID></PPSPTrackerProtocol>"
        ).encode()
    else:
        body = _json(
            {
                "PPSPTrackerProtocol": {
                    "version": 2,
                    "request_type": "JOIN",
                    "transaction_id": "5000",
                    "peer_id": "big",
                    "join": {
                        "swarm_action": [
                            {"swarm_id": s.swarm_id, "peer_mode": "LEECH"} for s in swarms
                        ]
                    },
                }
            }
        )
    assert len(body) > 64 * 1024
    # With the default bound the body is refused unread ...
    async with tracker_fixture() as fx:
        status, *_ = await fx.raw(body, encoding.content_type)
        assert status == 413
    # ... and with a bound that lets it through, the codec's own limits refuse it.
    async with tracker_fixture(settings=ServerSettings(max_body=1 << 20)) as fx:
        _ok(await fx.send(encoding, ConnectRequest(version=V11, transaction_id="1", peer_id="big")))
        status, reason, _, _ = await fx.raw(body, encoding.content_type)
        assert status == 400, reason
        assert (await fx.tracker.stats()).memberships == 0
        await _still_serving(fx, encoding)


async def test_slow_client_does_not_block_others() -> None:
    async with tracker_fixture(settings=ServerSettings(limits=Limits(body_timeout=1.0))) as fx:
        host, port = fx.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ppsp-tracker+xml\r\n"
            b"Content-Length: 500\r\n\r\n<?xml"
        )
        await writer.drain()

        async def slow_answer() -> bytes:
            return await reader.read(65536)

        slow = asyncio.create_task(slow_answer())
        # A normal request is answered while the slow one is still pending.
        await asyncio.wait_for(_still_serving(fx, Encoding.XML), 5)
        assert not slow.done()
        answer = await asyncio.wait_for(slow, 10)
        writer.close()
        # The slow client gets its 408 (or, at worst, a closed connection), never a hang.
        assert answer.startswith(b"HTTP/1.1 408"), answer
        metrics = fx.tracker  # the server is still healthy afterwards
        assert (await metrics.stats()).peers == 0


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_unexpected_exception_is_500(
    fx: Fixture,
    encoding: Encoding,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom(*args: object, **kwargs: object) -> TrackerResponse:
        raise RuntimeError("secret internal detail")

    with monkeypatch.context() as patch:
        patch.setattr(fx.tracker, "handle", boom)
        msg = ConnectRequest(version=V11, transaction_id="1", peer_id="p")
        body = codec_for(encoding).encode_request(msg)
        status, reason, answer, _ = await fx.raw(body, encoding.content_type)
    assert status == 500
    assert b"secret" not in answer and b"Traceback" not in answer
    assert "secret" not in reason
    decoded = codec_for(encoding).decode_response(answer, status, reason)
    assert isinstance(decoded, ErrorResponse)
    assert decoded.code is TrackerErrorCode.INTERNAL_ERROR
    assert "secret internal detail" in caplog.text  # logged for the operator
    await _still_serving(fx, encoding)


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_unsupported_version_from_10_tracker(encoding: Encoding) -> None:
    async with tracker_fixture(TrackerConfig(max_version=V10)) as fx:
        status, answer = await fx.send(
            encoding, ConnectRequest(version=V11, transaction_id="1", peer_id="p")
        )
        assert status == 400
        assert isinstance(answer, ErrorResponse)
        assert answer.code is TrackerErrorCode.UNSUPPORTED_VERSION
        assert answer.version is V10
        if encoding is Encoding.XML:
            codec = codec_for(encoding)
            body = codec.encode_request(
                ConnectRequest(version=V11, transaction_id="2", peer_id="p")
            )
            _, reason, _, _ = await fx.raw(body, encoding.content_type)
            assert reason == "PPSP version 1.0"


async def test_status_and_metrics(fx: Fixture) -> None:
    for encoding in ENCODINGS:
        _ok(
            await fx.send(
                encoding,
                ConnectRequest(version=V11, transaction_id="1", peer_id=f"m-{encoding.value}"),
            )
        )
    await fx.raw(b"junk", Encoding.XML.content_type)
    async with fx.session.get(fx.url + "/status") as resp:
        assert resp.status == 200
        status = await resp.json()
    assert status["peers"] == 2
    assert status["swarms"] == 0
    assert status["memberships"] == 0
    assert status["reported"] == status["suspects"] == 0
    assert status["version"] == "1.1"
    assert status["storage"] == "ok"
    async with fx.session.get(fx.url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    assert 'ppsp_tracker_requests_total{encoding="xml",method="CONNECT",outcome="ok"} 1.0' in text
    assert 'ppsp_tracker_requests_total{encoding="json",method="CONNECT",outcome="ok"} 1.0' in text
    assert 'method="unknown",outcome="bad_request"' in text
    assert "ppsp_tracker_peers 2.0" in text
    assert "ppsp_tracker_reported_peers 0.0" in text
    assert "ppsp_tracker_suspect_peers 0.0" in text
    assert "ppsp_tracker_request_duration_seconds_bucket" in text
    # The exposition of one process, as prometheus_client's own Counter writes it.
    assert (
        "# TYPE ppsp_tracker_expired_peers_total counter\nppsp_tracker_expired_peers_total 0.0"
        in text
    )
    assert "\nppsp_tracker_expired_peers_created 1." in text
    assert 'ppsp_tracker_requests_created{encoding="xml",method="CONNECT",outcome="ok"} 1.' in text


async def test_metrics_registry_per_app() -> None:
    async with tracker_fixture() as a, tracker_fixture() as b:
        _ok(
            await a.send(Encoding.XML, ConnectRequest(version=V11, transaction_id="1", peer_id="x"))
        )
        async with b.session.get(b.url + "/metrics") as resp:
            assert 'outcome="ok"' not in await resp.text()


async def test_expirer_with_fake_clock() -> None:
    now = [1000.0]
    tracker = Tracker(MemoryStorage(), TrackerConfig(init_timeout=30.0))
    app = create_app(tracker, clock=lambda: now[0], run_expiry=False)
    state = app[TRACKER_APP_KEY]
    assert state.clock() == 1000.0
    expired: list[int] = []
    expirer = Expirer(tracker, lambda: now[0], poll=1.0, on_expired=expired.append)
    assert await expirer.tick() == 1.0  # nothing to wait for
    async with serve(app) as url, aiohttp.ClientSession() as session:
        fx = Fixture(url, tracker, session)
        _ok(
            await fx.send(
                Encoding.XML, ConnectRequest(version=V11, transaction_id="1", peer_id="e")
            )
        )
        assert 0 < await expirer.tick() <= 1.0
        assert (await tracker.stats()).peers == 1
        now[0] = 1000.0 + 29.0
        assert await expirer.tick() == pytest.approx(1.0)
        assert (await tracker.stats()).peers == 1
        now[0] = 1000.0 + 30.5
        await expirer.tick()
        assert (await tracker.stats()).peers == 0
        assert expired == [1]
        # The expiry of the registration is visible to the peer: it must register again.
        status, _ = await fx.send(
            Encoding.XML, FindRequest(version=V11, transaction_id="2", peer_id="e", swarm_id="s")
        )
        assert status == 403


async def test_expiry_with_the_storage_down_is_a_warning_and_tried_again(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A storage that cannot be reached: a one-line warning (no traceback), and the expirer
    # goes on running until it is cancelled.
    closed = redis_url.rsplit(":", 1)[0] + ":1/0"
    tracker = Tracker(make_storage(closed), TrackerConfig(init_timeout=1.0))
    now = [0.0]
    expirer = Expirer(tracker, lambda: now[0], poll=1.0)
    task = asyncio.ensure_future(expirer.run())
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if any("expiring peers failed" in r.getMessage() for r in caplog.records):
                break
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await tracker.storage.close()
    failures = [r for r in caplog.records if "expiring peers failed" in r.getMessage()]
    assert failures, caplog.text
    assert all(r.levelname == "WARNING" and r.exc_info is None for r in failures)
    assert "storage unavailable" in failures[0].getMessage()


async def test_expiry_task_runs_in_app() -> None:
    now = [0.0]
    tracker = Tracker(MemoryStorage(), TrackerConfig(init_timeout=1.0))
    app = create_app(tracker, clock=lambda: now[0], settings=ServerSettings(expiry_poll=0.01))
    async with serve(app) as url, aiohttp.ClientSession() as session:
        fx = Fixture(url, tracker, session)
        _ok(
            await fx.send(
                Encoding.XML, ConnectRequest(version=V11, transaction_id="1", peer_id="e")
            )
        )
        now[0] = 5.0  # past the init timer; the background task notices within its poll bound
        for _ in range(500):
            if (await tracker.stats()).peers == 0:
                break
            await asyncio.sleep(0.01)
        assert (await tracker.stats()).peers == 0


async def test_running_tracker_with_redis(redis_url: str) -> None:
    async with (
        running_tracker(TrackerConfig(), storage_url=redis_url) as running,
        aiohttp.ClientSession() as session,
    ):
        fx = Fixture(running.url, running.tracker, session)
        peer = "redis-server-test-peer"
        _ok(
            await fx.send(
                Encoding.JSON, ConnectRequest(version=V11, transaction_id="1", peer_id=peer)
            )
        )
        join = JoinRequest(
            version=V11,
            transaction_id="2",
            peer_id=peer,
            swarms=(SwarmAction(swarm_id="redis-swarm", peer_mode=PeerMode.SEED),),
        )
        _ok(await fx.send(Encoding.XML, join))
        bye = DisconnectRequest(
            version=V11, transaction_id="3", peer_id=peer, scope=DisconnectScope.SYSTEM
        )
        _ok(await fx.send(Encoding.XML, bye))


def test_json_codec_is_used_for_json() -> None:
    assert codec_for(Encoding.JSON) is json_codec
    assert codec_for(Encoding.XML) is xml_codec


# -- a storage that fails ------------------------------------------------------------------------


def _bodies(peer: str, tid: str) -> dict[Encoding, bytes]:
    msg = ConnectRequest(version=V11, transaction_id=tid, peer_id=peer)
    return {encoding: codec_for(encoding).encode_request(msg) for encoding in ENCODINGS}


async def test_a_storage_that_goes_away_is_503_and_status_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="ppsp.tracker.net.server")
    with redis_server() as server:
        tracker = Tracker(RedisStorage(server.url, prefix="gone:"), TrackerConfig())
        app = create_app(tracker, clock=lambda: 0.0, settings=ServerSettings(expiry_poll=0.02))
        try:
            async with serve(app) as url, aiohttp.ClientSession() as session:
                fx = Fixture(url, tracker, session)
                _ok(
                    await fx.send(
                        Encoding.XML, ConnectRequest(version=V11, transaction_id="1", peer_id="a")
                    )
                )
                server.stop()
                for round_ in range(3):
                    for encoding, body in _bodies("b", f"2{round_}").items():
                        status, reason, answer, _ = await fx.raw(body, encoding.content_type)
                        assert status == 503, reason
                        decoded = codec_for(encoding).decode_response(answer, status, reason)
                        assert isinstance(decoded, ErrorResponse)
                        assert decoded.code is TrackerErrorCode.SERVICE_UNAVAILABLE
                        if encoding is Encoding.JSON:
                            assert orjson.loads(answer)["PPSPTrackerProtocol"]["error_code"] == 5
                await asyncio.sleep(0.05)  # the expiry task fails too, meanwhile
                async with session.get(url + "/status") as resp:
                    assert resp.status == 503
                    down = await resp.json()
                assert down["storage"] == "unreachable" and "peers" not in down
                assert down["version"] == "1.1" and "storage unavailable" in down["error"]
                async with session.get(url + "/metrics") as resp:
                    assert resp.status == 200
                    text = await resp.text()
                assert "ppsp_tracker_peers NaN" in text
                for label in ("xml", "json"):
                    key = f'encoding="{label}",method="CONNECT",outcome="service_unavailable"'
                    assert f"ppsp_tracker_requests_total{{{key}}} 3.0" in text

                server.start()  # back, on the same port, empty
                _ok(
                    await fx.send(
                        Encoding.JSON, ConnectRequest(version=V11, transaction_id="3", peer_id="c")
                    )
                )
                async with session.get(url + "/status") as resp:
                    assert resp.status == 200
                    up = await resp.json()
                assert up["storage"] == "ok" and up["peers"] == 1
        finally:
            await tracker.storage.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    # One line when it failed (whatever failed first), one when it answered again.
    assert len(warnings) == 2, caplog.text
    assert "failed: storage unavailable" in warnings[0].getMessage()
    assert "answers again" in warnings[1].getMessage()
    assert all(r.exc_info is None for r in caplog.records), caplog.text


async def test_running_tracker_refuses_a_storage_it_cannot_use() -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(ServiceUnavailable, match="storage unavailable"):
        async with running_tracker(TrackerConfig(), storage_url=closed):
            raise AssertionError("served without its storage")
    with pytest.raises(ValueError, match="invalid storage URL"):
        async with running_tracker(TrackerConfig(), storage_url="redis://127.0.0.1:port/0"):
            raise AssertionError("served with a malformed storage URL")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://user:secret@h/0", "redis://user:***@h/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        (None, "memory"),
    ],
)
def test_storage_urls_in_messages_hide_the_password(url: str | None, shown: str) -> None:
    assert storage_label(url) == shown


class _FlakyTracker:
    """A tracker whose storage fails ``failures`` times, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    async def expire(self, now: float) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise ServiceUnavailable("storage unavailable: down")
        return 0

    def next_deadline(self) -> float | None:
        return None


async def test_expirer_looks_again_until_the_storage_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # With Redis the first look is how a tracker learns the timers stored by others: a
    # failed one is tried again at every tick, and the failures are one warning.
    flaky = _FlakyTracker(failures=3)
    expirer = Expirer(flaky, lambda: 0.0, poll=1.0)  # type: ignore[arg-type]
    for _ in range(6):
        assert await expirer.tick() == 1.0
    assert flaky.calls == 4  # three failures, one success, then nothing due
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert messages == [
        "expiring peers failed: storage unavailable: down",
        "the storage answers again (it failed with: storage unavailable: down)",
    ]


# -- several processes: /metrics sums them ---------------------------------------------------------


def _metric(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {sample} in\n{text}")


async def test_processes_sharing_a_metrics_directory_expose_the_sums(tmp_path: Path) -> None:
    (tmp_path / "garbage.json").write_bytes(b"{not json")
    (tmp_path / "other.json").write_bytes(b'{"requests": [["a", "b"]], "latency": {}}')
    shared = ServerSettings(metrics_flush=3600.0)  # written at start, stop and scrapes only
    a = Tracker(MemoryStorage(), TrackerConfig())
    b = Tracker(MemoryStorage(), TrackerConfig())
    app_a = create_app(a, settings=replace(shared, shared_metrics=tmp_path / "1.json"))
    app_b = create_app(b, settings=replace(shared, shared_metrics=tmp_path / "2.json"))
    ok = 'ppsp_tracker_requests_total{encoding="xml",method="CONNECT",outcome="ok"}'
    bad = 'ppsp_tracker_requests_total{encoding="json",method="unknown",outcome="bad_request"}'
    count = 'ppsp_tracker_request_duration_seconds_count{encoding="xml"}'
    async with serve(app_a) as url_a, aiohttp.ClientSession() as session:
        fx_a = Fixture(url_a, a, session)
        async with serve(app_b) as url_b:
            fx_b = Fixture(url_b, b, session)
            for i in range(2):
                _ok(
                    await fx_a.send(
                        Encoding.XML,
                        ConnectRequest(version=V11, transaction_id="1", peer_id=f"a{i}"),
                    )
                )
            for i in range(3):
                _ok(
                    await fx_b.send(
                        Encoding.XML,
                        ConnectRequest(version=V11, transaction_id="1", peer_id=f"b{i}"),
                    )
                )
            await fx_b.raw(b"junk", Encoding.JSON.content_type)
            app_a[TRACKER_APP_KEY].metrics.count_expired(2)
            app_b[TRACKER_APP_KEY].metrics.count_expired(1)
            async with session.get(url_b + "/metrics") as resp:
                text_b = await resp.text()
            # b wrote its numbers as it answered; a sums them with its own newest ones.
            async with session.get(url_a + "/metrics") as resp:
                text_a = await resp.text()
            assert _metric(text_b, ok) == 3  # a's file is as old as a's start
            assert _metric(text_a, ok) == 5 and _metric(text_a, bad) == 1
            assert _metric(text_a, count) == 5
            assert _metric(text_a, "ppsp_tracker_expired_peers_total") == 3
            # The gauges are this process's storage's counts, never summed.
            assert _metric(text_a, "ppsp_tracker_peers") == 2
        # b has stopped: what it counted still counts (the sums never go down).
        _ok(
            await fx_a.send(
                Encoding.XML, ConnectRequest(version=V11, transaction_id="1", peer_id="a9")
            )
        )
        async with session.get(url_a + "/metrics") as resp:
            text_a = await resp.text()
        assert _metric(text_a, ok) == 6 and _metric(text_a, bad) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "1.json",
        "2.json",
        "garbage.json",
        "other.json",
    ]
    assert not math.isnan(_metric(text_a, "ppsp_tracker_expired_peers_created"))


class _SwallowingTracker:
    """A tracker whose storage turns a cancellation into its own error (as redis-py can)."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def expire(self, now: float) -> int:
        if self.entered.is_set():
            return 0  # once only: a later cancellation ends the task whatever it does
        self.entered.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise ServiceUnavailable("storage unavailable: connection closed") from None
        return 0

    def next_deadline(self) -> float | None:
        return None


async def test_the_expiry_task_stops_even_when_the_storage_swallows_the_cancellation() -> None:
    swallowing = _SwallowingTracker()
    expirer = Expirer(swallowing, lambda: 0.0, poll=0.01)  # type: ignore[arg-type]
    task = asyncio.ensure_future(expirer.run())
    await asyncio.wait_for(swallowing.entered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)  # a task that went on looping would time out here


@pytest.mark.parametrize(
    ("peername", "observed"),
    [
        (("192.0.2.7", 40000), ("192.0.2.7", 40000)),
        (("fe80::1%eth0", 40000, 0, 2), ("fe80::1", 40000)),
        (("2001:db8::5", 443, 0, 0), ("2001:db8::5", 443)),
    ],
)
def test_observed_address_has_no_ipv6_zone(
    peername: tuple[object, ...], observed: tuple[str, int]
) -> None:
    from types import SimpleNamespace

    from ppsp.tracker.net.server import _observed

    # The server keeps a connection's (ip, port) of whatever peer name its socket gives.
    request = SimpleNamespace(remote=(str(peername[0]), int(str(peername[1]))))
    assert _observed(request) == observed  # type: ignore[arg-type]
