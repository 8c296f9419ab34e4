"""TrackerClient against the real tracker server on loopback, and against scripted servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from ppsp.errors import Forbidden, PPSPError, TrackerUnreachable
from ppsp.tracker.client import Exchange, InvalidTrackerURL, TrackerClient, check_tracker_url
from ppsp.tracker.codec import codec_for
from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.messages import (
    ConnectRequest,
    ContentMap,
    DisconnectRequest,
    DisconnectScope,
    Encoding,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    RepresentationScope,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmActionType,
    TrackerResponse,
)
from ppsp.tracker.server import RunningTracker, running_tracker

ENCODINGS = [Encoding.XML, Encoding.JSON]
V10 = ProtocolVersion.V1_0
V11 = ProtocolVersion.V1_1

CHUNK_MAP = ContentMap(
    swarm_id="b",
    representations=(
        RepresentationMap(
            representation_id="tag0",
            segments=(SegmentMap(start_index=0, end_index=7, chunkmap_size=8, bitmap=b"\xf0"),),
        ),
    ),
)
SCOPE = (RepresentationScope(representation_id="tag0", start_index=0, end_index=3),)


@pytest.fixture
async def tracker() -> AsyncIterator[RunningTracker]:
    async with running_tracker(TrackerConfig()) as running:
        yield running


@pytest.fixture
async def tracker10() -> AsyncIterator[RunningTracker]:
    async with running_tracker(TrackerConfig(max_version=V10)) as running:
        yield running


def client(
    url: str, peer_id: str, encoding: Encoding, log: list[Exchange] | None = None, **kwargs: object
) -> TrackerClient:
    return TrackerClient(
        url,
        peer_id,
        encoding=encoding,
        addresses=(PeerAddress(ip="127.0.0.1", port=9000),),
        trace=None if log is None else log.append,
        backoff=0.0,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_session_in_11(tracker: RunningTracker, encoding: Encoding) -> None:
    log: list[Exchange] = []
    async with (
        client(tracker.url, "me", encoding, log) as me,
        client(tracker.url, "other", encoding) as other,
    ):
        await other.join("b", PeerMode.SEED)  # registers first, by itself
        assert other.registered
        await me.register()
        assert await me.join("a", PeerMode.SEED) == []
        peers = await me.join("b", PeerMode.LEECH, content_group=SCOPE)
        assert [p.peer_id for p in peers] == ["other"]
        assert me.joined == {"a": PeerMode.SEED, "b": PeerMode.LEECH}
        assert me.requester is not None and me.requester.addresses[0].ip == "127.0.0.1"
        await me.report([StreamStatistics(swarm_id="b", uploaded_bytes=1)], [CHUNK_MAP])
        found = await me.find("b", content_group=SCOPE)
        assert [p.peer_id for p in found] == ["other"]  # never ourselves
        await me.disconnect(["a", "b"])
        assert me.joined == {}
        await me.join("a", PeerMode.SEED)
        await me.disconnect("ALL")
        assert me.registered
        await me.disconnect(None)
        assert not me.registered
        assert me.version is V11

    methods = [type(x.request).__name__ for x in log]
    assert methods == [
        "ConnectRequest",
        "JoinRequest",
        "JoinRequest",
        "StatReportRequest",
        "FindRequest",
        "DisconnectRequest",
        "JoinRequest",
        "DisconnectRequest",
        "DisconnectRequest",
    ]
    assert all(x.status == 200 for x in log)
    tids = [x.request.transaction_id for x in log]
    assert len(set(tids)) == len(tids)
    # Two swarms in one request: hierarchical IDs N.0 for the root, N.1 and N.2 for the actions.
    leave = log[5].request
    assert isinstance(leave, DisconnectRequest) and leave.scope is DisconnectScope.SWARMS
    root = leave.transaction_id.split(".")[0]
    assert leave.transaction_id == f"{root}.0"
    assert [s.transaction_id for s in leave.swarms] == [f"{root}.1", f"{root}.2"]
    assert isinstance(log[7].request, DisconnectRequest)
    assert log[7].request.scope is DisconnectScope.ALL_SWARMS
    assert isinstance(log[8].request, DisconnectRequest)
    assert log[8].request.scope is DisconnectScope.SYSTEM
    assert (await tracker.tracker.stats()).peers == 1  # "other" stays


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_fallback_to_10(tracker10: RunningTracker, encoding: Encoding) -> None:
    log: list[Exchange] = []
    async with (
        client(tracker10.url, "me", encoding, log) as me,
        client(tracker10.url, "other", encoding) as other,
    ):
        await other.join("b", PeerMode.SEED)
        assert other.version is V10
        await me.register()  # refused as 1.1; the 1.0 registration waits for the first join
        assert me.version is V10
        assert len(log) == 1 and log[0].status == 400
        peers = await me.join("b", PeerMode.LEECH, content_group=SCOPE)
        assert [p.peer_id for p in peers] == ["other"]
        await me.join("a", PeerMode.SEED)
        await me.report([StreamStatistics(swarm_id="b", downloaded_bytes=5)], [CHUNK_MAP])
        assert [p.peer_id for p in await me.find("b", content_group=SCOPE)] == ["other"]
        await me.disconnect(["b"])
        assert me.joined == {"a": PeerMode.SEED}
        await me.disconnect(None)
        assert me.joined == {}
        assert not me.registered
        await me.disconnect(None)  # nothing joined: nothing to send in 1.0

    sent = [x.request for x in log[1:]]
    assert all(r.version is V10 for r in sent)
    join_b, leave_for_a, join_a, report, find, leave_b, leave_all = sent
    assert isinstance(join_b, ConnectRequest)
    assert [(s.swarm_id, s.action, s.peer_mode) for s in join_b.swarm_actions] == [
        ("b", SwarmActionType.JOIN, PeerMode.LEECH)
    ]
    # One more swarm in 1.0: leave what is joined, then join everything in one CONNECT.
    assert isinstance(leave_for_a, ConnectRequest)
    assert [(s.swarm_id, s.action) for s in leave_for_a.swarm_actions] == [
        ("b", SwarmActionType.LEAVE)
    ]
    assert isinstance(join_a, ConnectRequest)
    assert [(s.swarm_id, s.action, s.peer_mode) for s in join_a.swarm_actions] == [
        ("b", SwarmActionType.JOIN, PeerMode.LEECH),
        ("a", SwarmActionType.JOIN, PeerMode.SEED),
    ]
    root = join_a.transaction_id.removesuffix(".0")
    assert [s.transaction_id for s in join_a.swarm_actions] == [f"{root}.1", f"{root}.2"]
    assert isinstance(report, StatReportRequest) and report.content_maps == ()
    assert report.stream_stats  # statistics are 1.0 too
    assert isinstance(find, FindRequest) and find.content_group == ()
    assert isinstance(leave_b, ConnectRequest)
    assert [(s.swarm_id, s.action) for s in leave_b.swarm_actions] == [("b", SwarmActionType.LEAVE)]
    assert isinstance(leave_all, ConnectRequest)
    assert [(s.swarm_id, s.action) for s in leave_all.swarm_actions] == [
        ("a", SwarmActionType.LEAVE)
    ]
    assert all(x.status == 200 for x in log[1:])
    assert (await tracker10.tracker.stats()).memberships == 1  # only "other" is left


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_fallback_rejoins_swarms_joined_in_11(encoding: Encoding) -> None:
    """A tracker restarted as 1.0: the client re-joins what it had joined, in 1.0 form."""
    async with running_tracker(TrackerConfig()) as t11:
        me = client(t11.url, "me", encoding)
        await me.join("a", PeerMode.SEED)
    async with running_tracker(TrackerConfig(max_version=V10)) as t10:
        me.url = t10.url
        await me.find("a")
        assert me.version is V10
        assert (await t10.tracker.stats()).memberships == 1
    await me.close()


async def test_forbidden_is_raised_not_retried(tracker: RunningTracker) -> None:
    log: list[Exchange] = []
    async with client(tracker.url, "stranger", Encoding.XML, log) as me:
        with pytest.raises(Forbidden) as info:
            await me.find("nowhere")
    assert len(log) == 1
    assert info.value.transaction_id == log[0].request.transaction_id


Handler = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def scripted(handler: Handler) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A tiny server that records each body and answers through ``handler(request, attempt)``."""
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        bodies.append(await request.read())
        return await handler(request, len(bodies))

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/", bodies
    finally:
        await runner.cleanup()


def _answer(encoding: Encoding, body: bytes) -> web.Response:
    codec = codec_for(encoding)
    request = codec.decode_request(body)
    answer = TrackerResponse(version=request.version, transaction_id=request.transaction_id)
    return web.Response(body=codec.encode_response(answer), content_type=encoding.content_type)


async def _drop(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()  # the connection dies without an answer
    return web.Response()


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_retry_resends_identical_bytes(encoding: Encoding) -> None:
    async def handler(request: web.Request, attempt: int) -> web.StreamResponse:
        if attempt == 1:
            return await _drop(request)
        if attempt == 2:
            return web.Response(body=b"garbage", content_type=encoding.content_type)
        return _answer(encoding, await request.read())

    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    async with scripted(handler) as (url, bodies):
        me = TrackerClient(url, "me", encoding=encoding, sleep=sleep, backoff=0.5, retries=3)
        async with me:
            await me.register()
    assert len(bodies) == 3
    assert bodies[0] == bodies[1] == bodies[2]
    tid = codec_for(encoding).decode_request(bodies[0]).transaction_id
    assert all(codec_for(encoding).decode_request(b).transaction_id == tid for b in bodies)
    assert delays == [0.5, 1.0]  # exponential backoff between attempts


async def test_retries_exhausted_raise_unreachable() -> None:
    async def handler(request: web.Request, attempt: int) -> web.StreamResponse:
        return await _drop(request)

    async with scripted(handler) as (url, bodies):
        me = TrackerClient(url, "me", retries=2, backoff=0.0)
        async with me:
            with pytest.raises(TrackerUnreachable) as info:
                await me.register()
    assert len(bodies) == 3
    assert len(set(bodies)) == 1
    where = url.removeprefix("http://").rstrip("/")
    assert str(info.value) == f"tracker {where} closed the connection without answering"


async def test_timeout_is_retried() -> None:
    release = asyncio.Event()

    async def handler(request: web.Request, attempt: int) -> web.StreamResponse:
        if attempt == 1:
            await release.wait()  # never answers in time
        return _answer(Encoding.XML, await request.read())

    async with scripted(handler) as (url, bodies):
        me = TrackerClient(url, "me", timeout=0.3, backoff=0.0)
        async with me:
            await me.register()
        release.set()
    assert len(bodies) == 2 and bodies[0] == bodies[1]


async def test_timeout_reads_as_a_sentence() -> None:
    release = asyncio.Event()

    async def handler(request: web.Request, attempt: int) -> web.StreamResponse:
        await release.wait()
        return web.Response()

    async with scripted(handler) as (url, _):
        async with TrackerClient(url, "me", timeout=0.2, retries=0) as me:
            with pytest.raises(TrackerUnreachable) as info:
                await me.register()
        release.set()
    where = url.removeprefix("http://").rstrip("/")
    assert str(info.value) == f"tracker {where} did not answer within 0.2 s"


async def test_connection_refused_raises_unreachable() -> None:
    async with scripted(_drop_handler) as (url, _):
        pass  # the port is closed again
    async with TrackerClient(url, "me", retries=1, backoff=0.0) as me:
        with pytest.raises(TrackerUnreachable) as info:
            await me.register()
    where = url.removeprefix("http://").rstrip("/")
    assert str(info.value) == f"tracker {where} refused the connection"
    assert "Client" not in str(info.value) and "Error" not in str(info.value)


class _NoNames(aiohttp.abc.AbstractResolver):
    """A resolver that knows no name (what a resolver says of a name that does not exist)."""

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def close(self) -> None:
        pass


async def test_unknown_name_reads_as_a_sentence() -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=_NoNames())) as http:
        me = TrackerClient("http://tracker.invalid:7000/", "me", session=http, retries=0)
        with pytest.raises(TrackerUnreachable) as info:
            await me.register()
    assert str(info.value) == "tracker tracker.invalid: name not found"


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_status_the_protocol_does_not_use_is_a_failed_attempt(encoding: Encoding) -> None:
    """A proxy's 502 is not the tracker's answer: retried, then reported as such."""

    async def handler(request: web.Request, attempt: int) -> web.StreamResponse:
        if attempt == 1:
            return web.Response(status=502, text="<html>bad gateway</html>")
        return _answer(encoding, await request.read())

    async with scripted(handler) as (url, bodies):
        async with TrackerClient(url, "me", encoding=encoding, backoff=0.0) as me:
            await me.register()  # the second attempt gets the tracker's answer
        assert len(bodies) == 2

    async def gateway(request: web.Request, attempt: int) -> web.StreamResponse:
        return web.Response(status=502, text="<html>bad gateway</html>")

    async with (
        scripted(gateway) as (url, bodies),
        TrackerClient(url, "me", encoding=encoding, retries=1, backoff=0.0) as me,
    ):
        with pytest.raises(TrackerUnreachable) as info:
            await me.register()
    assert str(info.value) == "tracker answered HTTP 502 Bad Gateway"
    assert len(bodies) == 2


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("localhost:7000", "has no scheme: write it as http://localhost:7000"),
        ("http://", "names no host"),
        ("ftp://x", "only http:// and https:// work"),
        ("", "is empty"),
        ("http://h:0", "port 0"),
        ("http://h:99999", "is not a valid URL"),
        ("http://a b/", "spaces"),
    ],
)
def test_bad_tracker_urls_are_refused_before_any_network(url: str, words: str) -> None:
    with pytest.raises(InvalidTrackerURL) as info:
        check_tracker_url(url)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, PPSPError)
    with pytest.raises(InvalidTrackerURL):
        TrackerClient(url, "me")


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("http://127.0.0.1:7000", "http://127.0.0.1:7000"),
        (" HTTP://Tracker.Example.ORG:7000/video_1 ", "http://tracker.example.org:7000/video_1"),
        ("https://[2001:db8::1]/", "https://[2001:db8::1]/"),
        ("http://x/#fragment", "http://x/"),
    ],
)
def test_good_tracker_urls_are_normalised(url: str, normalised: str) -> None:
    assert check_tracker_url(url) == normalised
    assert TrackerClient(url, "me").url == normalised


async def _drop_handler(request: web.Request, attempt: int) -> web.StreamResponse:
    return await _drop(request)


async def test_wrong_transaction_id_is_invalid() -> None:
    async def handler(request: web.Request, attempt: int) -> web.StreamResponse:
        answer = TrackerResponse(version=V11, transaction_id=f"other-{attempt}")
        return web.Response(body=codec_for(Encoding.XML).encode_response(answer))

    async with (
        scripted(handler) as (url, bodies),
        TrackerClient(url, "me", retries=1, backoff=0) as me,
    ):
        with pytest.raises(TrackerUnreachable):
            await me.register()
    assert len(bodies) == 2


class FakeTime:
    """A clock and a sleep that advances it: periodic behaviour without real waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        await asyncio.sleep(0)


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_periodic_reports(tracker: RunningTracker, encoding: Encoding) -> None:
    fake = FakeTime()
    log: list[Exchange] = []
    done = asyncio.Event()
    calls = 0

    def provider() -> tuple[list[StreamStatistics], list[ContentMap]]:
        nonlocal calls
        calls += 1
        return [StreamStatistics(swarm_id="b", uploaded_bytes=calls)], [CHUNK_MAP]

    def trace(exchange: Exchange) -> None:
        log.append(exchange)
        reports = [x for x in log if isinstance(x.request, StatReportRequest)]
        if len(reports) >= 3:
            done.set()

    me = TrackerClient(
        tracker.url, "me", encoding=encoding, clock=fake.clock, sleep=fake.sleep, trace=trace
    )
    async with me:
        await me.join("b", PeerMode.SEED)
        me.start_reporting(provider, interval=45.0)
        await asyncio.wait_for(done.wait(), 10)
        me.stop_reporting()
    reports = [x.request for x in log if isinstance(x.request, StatReportRequest)]
    assert [r.stream_stats[0].uploaded_bytes for r in reports[:3]] == [1, 2, 3]
    assert all(r.content_maps == (CHUNK_MAP,) for r in reports[:3])
    assert fake.sleeps[:3] == [45.0, 45.0, 45.0]
    assert all(x.status == 200 for x in log)


async def test_manual_report_postpones_periodic_one(tracker: RunningTracker) -> None:
    fake = FakeTime()
    reported = asyncio.Event()
    me = TrackerClient(tracker.url, "me", clock=fake.clock, sleep=fake.sleep)

    async def sleep(delay: float) -> None:
        fake.sleeps.append(delay)
        if len(fake.sleeps) == 1:
            fake.now += 20.0
            await me.report()  # a report in between moves the next periodic one
        else:
            fake.now += delay
        await asyncio.sleep(0)

    me._sleep = sleep  # the test drives time by hand
    reported_at: list[float] = []
    async with me:
        await me.join("a", PeerMode.SEED)

        def provider() -> tuple[list[StreamStatistics], list[ContentMap]]:
            reported_at.append(fake.now)
            reported.set()
            return [], []

        me.start_reporting(provider, interval=60.0)
        await asyncio.wait_for(reported.wait(), 10)
    # Started at 1000; the manual report at 1020 moved the periodic one from 1060 to 1080.
    assert fake.sleeps[:2] == [60.0, 60.0]
    assert reported_at[0] == 1080.0


async def test_reporting_rejoins_after_tracker_forgot(tracker: RunningTracker) -> None:
    fake = FakeTime()
    log: list[Exchange] = []
    rejoined = asyncio.Event()

    def trace(exchange: Exchange) -> None:
        log.append(exchange)
        if isinstance(exchange.request, JoinRequest) and len(log) > 2:
            rejoined.set()

    me = TrackerClient(tracker.url, "me", clock=fake.clock, sleep=fake.sleep, trace=trace)
    async with me:
        await me.join("a", PeerMode.SEED)
        await tracker.tracker.expire(float("inf"))  # the tracker forgets everybody
        assert (await tracker.tracker.stats()).peers == 0
        me.start_reporting(lambda: ([], []), interval=10.0)
        await asyncio.wait_for(rejoined.wait(), 10)
    assert [type(x.request).__name__ for x in log[:5]] == [
        "ConnectRequest",
        "JoinRequest",
        "StatReportRequest",
        "ConnectRequest",
        "JoinRequest",
    ]
    assert log[2].status == 403
    assert (await tracker.tracker.stats()).memberships == 1


async def test_start_reporting_rejects_bad_interval(tracker: RunningTracker) -> None:
    async with TrackerClient(tracker.url, "me") as me:
        with pytest.raises(ValueError):
            me.start_reporting(lambda: ([], []), interval=0)


async def test_shared_session_is_not_closed(tracker: RunningTracker) -> None:
    async with aiohttp.ClientSession() as session:
        async with TrackerClient(tracker.url, "me", session=session) as me:
            await me.register()
        assert not session.closed
