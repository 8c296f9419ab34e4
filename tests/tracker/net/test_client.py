"""TrackerClient against the real tracker server on loopback, and against scripted servers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import jwt
import pytest
import yarl
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from e2e.tls_helpers import TLSFiles, make_tls_files, server_context
from ppsp.codecs.tracker import codec_for, status_line
from ppsp.errors import (
    AuthenticationRequired,
    Forbidden,
    PPSPError,
    TrackerErrorCode,
    TrackerUnreachable,
)
from ppsp.http.client import HttpClient
from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.net.client import (
    Exchange,
    InvalidToken,
    InvalidTrackerURL,
    InvalidTrustAnchors,
    TrackerClient,
    TrackerTLSError,
    bearer_challenge,
    check_tracker_url,
    tls_context,
    token_subject,
)
from ppsp.tracker.net.server import RunningTracker, running_tracker
from ppsp.wire.tracker import (
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
    RepresentationScope,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmActionType,
    TrackerResponse,
)

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
async def scripted(
    handler: Handler, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A tiny server that records each body and answers through ``handler(request, attempt)``;
    with ``tls``, it serves HTTPS only."""
    bodies: list[bytes] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        bodies.append(await request.read())
        return await handler(request, len(bodies))

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    host, port = runner.addresses[0][:2]
    scheme = "http" if tls is None else "https"
    try:
        yield f"{scheme}://{host}:{port}/", bodies
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


async def _no_names(host: str, port: int) -> list[str]:
    """A resolver that knows no name (what a resolver says of a name that does not exist)."""
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


async def test_unknown_name_reads_as_a_sentence() -> None:
    async with HttpClient(resolver=_no_names) as http:
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
    async with HttpClient() as session:
        async with TrackerClient(tracker.url, "me", session=session) as me:
            await me.register()
        assert not session.closed


# -- TLS, trust anchors and bearer tokens --------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A certificate for 127.0.0.1 issued by a test CA (``ca`` is the CA's certificate)."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _where(url: str) -> str:
    return yarl.URL(url).host + ":" + str(yarl.URL(url).port)  # type: ignore[operator]


def _token(claims: dict[str, object]) -> str:
    key = Ed25519PrivateKey.generate()
    return jwt.encode(claims, key, algorithm="EdDSA")


class _Sleeps:
    """A ``sleep`` that records the backoff pauses instead of waiting: one per retry."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def test_https_tracker_is_trusted_through_the_ca_file(tls_files: TLSFiles) -> None:
    headers: list[str | None] = []

    async def handler(request: web.Request, attempt: int) -> web.StreamResponse:
        headers.append(request.headers.get("Authorization"))
        if attempt == 1:
            return await _drop(request)  # the retry goes through TLS and with the token too
        return _answer(Encoding.XML, await request.read())

    token = _token({"sub": "me"})
    async with scripted(handler, server_context(tls_files)) as (url, bodies):
        assert url.startswith("https://")
        me = TrackerClient(url, "me", tls=tls_context(tls_files.ca), token=token, backoff=0.0)
        async with me:
            await me.register()
            await me.find("a")
    assert len(bodies) == 3
    assert headers == [f"Bearer {token}"] * 3


@pytest.mark.parametrize("self_signed", [False, True])
async def test_untrusted_certificate_is_one_sentence_and_not_retried(
    tmp_path: Path, self_signed: bool
) -> None:
    files = make_tls_files(tmp_path, self_signed=self_signed)
    sleeps = _Sleeps()
    async with scripted(_drop_handler, server_context(files)) as (url, bodies):
        me = TrackerClient(url, "me", retries=3, sleep=sleeps)  # the system's trust store only
        async with me:
            with pytest.raises(TrackerTLSError) as info:
                await me.register()
    problem = "self-signed certificate" if self_signed else "unable to get local issuer"
    message = str(info.value)
    assert message.startswith(f"tracker {_where(url)}: certificate verify failed: {problem}")
    assert "--ca-file" in message and "\n" not in message
    assert isinstance(info.value, TrackerUnreachable)  # callers that handle that still do
    assert sleeps.delays == [] and bodies == []  # tried once: a retry would not mend it


async def test_certificate_for_another_host_is_refused(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path, hosts=("127.0.0.2",))
    async with (
        scripted(_drop_handler, server_context(files)) as (url, bodies),
        TrackerClient(url, "me", tls=tls_context(files.ca)) as me,
    ):
        with pytest.raises(TrackerTLSError) as info:
            await me.register()
    assert str(info.value) == (
        f"tracker {_where(url)}: certificate verify failed: IP address mismatch, certificate"
        " is not valid for '127.0.0.1'."
    )
    assert bodies == []


async def test_https_to_a_plain_http_tracker_says_so() -> None:
    sleeps = _Sleeps()
    async with scripted(_drop_handler) as (url, _bodies):
        https = url.replace("http://", "https://")
        async with TrackerClient(https, "me", sleep=sleeps) as me:
            with pytest.raises(TrackerTLSError) as info:
                await me.register()
    assert str(info.value) == (
        f"tracker {_where(url)}: TLS handshake failed: it does not speak TLS"
        " (write its URL with http://?)"
    )
    assert sleeps.delays == []


def _unauthorized(challenge: str | None, body: bytes = b"") -> web.Response:
    headers = {} if challenge is None else {"WWW-Authenticate": challenge}
    return web.Response(status=401, body=body, headers=headers)


@pytest.mark.parametrize(
    ("token", "challenge", "words"),
    [
        (None, 'Bearer realm="ppsp"', "requires a token: give --token or set PPSP_TOKEN"),
        (None, None, "requires a token: give --token or set PPSP_TOKEN"),
        (
            {"sub": "me"},
            'Bearer realm="ppsp", error="invalid_token", error_description="expired"',
            "refused the token: expired",
        ),
        (
            {"sub": "me"},
            'Basic realm="proxy", Bearer error="invalid_token",error_description="bad \\"sig\\""',
            'refused the token: bad "sig"',
        ),
        ({"sub": "me"}, 'Bearer error="invalid_token"', "refused the token: invalid_token"),
        ({"sub": "me"}, "Bearer", "refused the token: invalid token"),
        (
            {"sub": "me"},
            'Bearer error_description="' + "x\\n" * 2000 + '"',
            "refused the token: x",  # hostile: bounded and on one line
        ),
    ],
)
async def test_401_is_one_sentence_and_not_retried(
    token: dict[str, object] | None, challenge: str | None, words: str
) -> None:
    async def handler(request: web.Request, attempt: int) -> web.StreamResponse:
        return _unauthorized(challenge)

    sleeps = _Sleeps()
    async with scripted(handler) as (url, bodies):
        jwt_text = None if token is None else _token(token)
        async with TrackerClient(url, "me", token=jwt_text, sleep=sleeps) as me:
            with pytest.raises(AuthenticationRequired) as info:
                await me.join("a", PeerMode.SEED)
    message = str(info.value)
    assert message.startswith(f"tracker {_where(url)} {words}"), message
    assert "\n" not in message and len(message) < 300
    assert len(bodies) == 1 and sleeps.delays == []


def _error_answer(
    encoding: Encoding, body: bytes, code: TrackerErrorCode, headers: dict[str, str] | None = None
) -> web.Response:
    """The tracker's error answer ``code`` to the request ``body``, in its encoding."""
    codec = codec_for(encoding)
    sent = codec.decode_request(body)
    error = ErrorResponse(version=sent.version, transaction_id=sent.transaction_id, code=code)
    status, reason = status_line(error)
    return web.Response(
        status=status,
        reason=reason,
        body=codec.encode_response(error),
        content_type=encoding.content_type,
        headers=headers,
    )


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_401_with_the_trackers_error_body_reads_the_same(encoding: Encoding) -> None:
    async def handler(request: web.Request, attempt: int) -> web.StreamResponse:
        return _error_answer(
            encoding,
            await request.read(),
            TrackerErrorCode.AUTHENTICATION_REQUIRED,
            {"WWW-Authenticate": 'Bearer realm="ppsp"'},
        )

    log: list[Exchange] = []
    async with scripted(handler) as (url, _bodies), client(url, "me", encoding, log) as me:
        with pytest.raises(AuthenticationRequired) as info:
            await me.register()
    assert str(info.value) == (
        f"tracker {_where(url)} requires a token: give --token or set PPSP_TOKEN"
    )
    assert info.value.transaction_id == log[0].request.transaction_id
    assert isinstance(log[0].answer, ErrorResponse)


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_fallback_to_10_through_tls_and_token(
    tracker10: RunningTracker, tls_files: TLSFiles, encoding: Encoding
) -> None:
    """A TLS front that checks the token on every request, before a 1.0 tracker."""
    token = _token({"sub": "me"})
    seen: list[str | None] = []

    async def front(request: web.Request, attempt: int) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != f"Bearer {token}":
            return _unauthorized('Bearer error="invalid_token"')
        async with (
            aiohttp.ClientSession() as http,
            http.post(tracker10.url, data=await request.read(), headers=request.headers) as back,
        ):
            return web.Response(status=back.status, body=await back.read(), headers=back.headers)

    async with (
        scripted(front, server_context(tls_files)) as (url, _bodies),
        client(url, "me", encoding, tls=tls_context(tls_files.ca), token=token) as me,
    ):
        await me.register()
        await me.join("a", PeerMode.SEED)
        await me.report()
        assert me.version is V10
        await me.disconnect(None)
    assert len(seen) >= 4 and all(h == f"Bearer {token}" for h in seen)
    assert (await tracker10.tracker.stats()).memberships == 0


async def test_a_join_refused_outside_the_tokens_swarms_says_why() -> None:
    async def handler(request: web.Request, attempt: int) -> web.StreamResponse:
        body = await request.read()
        if isinstance(codec_for(Encoding.XML).decode_request(body), JoinRequest):
            return _error_answer(Encoding.XML, body, TrackerErrorCode.FORBIDDEN)
        return _answer(Encoding.XML, body)

    token = _token({"sub": "me", "swarms": ["a"]})
    async with scripted(handler) as (url, _bodies), TrackerClient(url, "me", token=token) as me:
        with pytest.raises(Forbidden) as outside:
            await me.join("b", PeerMode.LEECH)
        with pytest.raises(Forbidden) as inside:  # listed: the tracker had its own reason
            await me.join("a", PeerMode.LEECH)
    assert str(outside.value) == (
        f"tracker {_where(url)} refused JOIN: the token does not allow swarm b"
    )
    assert outside.value.reason == "the token does not allow swarm b"
    assert "token" not in str(inside.value)


def test_token_subject_is_read_without_a_key() -> None:
    assert token_subject(_token({"sub": "peer-1", "swarms": ["a"]})) == "peer-1"
    # Expired or not: the peer only reads it, the tracker judges it.
    assert token_subject(_token({"sub": "p", "exp": 1})) == "p"


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("", "empty"),
        ("not a token", "characters"),
        ("abc.def", "not a JWT"),
        ("aGVsbG8", "not a JWT"),
        (None, "no 'sub' claim"),
    ],
)
def test_unusable_tokens_are_one_line_errors(token: str | None, words: str) -> None:
    text = _token({"exp": 10**10}) if token is None else token
    with pytest.raises(InvalidToken) as info:
        token_subject(text)
    assert words in str(info.value) and "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("subject", [7, "two words", "", "x" * 257])
def test_a_subject_that_is_no_peer_id_is_refused(subject: object) -> None:
    with pytest.raises(InvalidToken, match="not a PeerID"):
        token_subject(_token({"sub": subject}))


def test_a_token_with_bad_characters_is_refused_before_any_network() -> None:
    with pytest.raises(InvalidToken):
        TrackerClient("http://127.0.0.1:1/", "me", token="abc\r\nX-Injected: 1")


def test_trust_anchors_are_checked(tmp_path: Path, tls_files: TLSFiles) -> None:
    assert isinstance(tls_context(tls_files.ca), ssl.SSLContext)
    assert tls_context().minimum_version >= ssl.TLSVersion.TLSv1_2
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("hello")
    for path, words in [
        (tmp_path / "missing.pem", "No such file"),
        (tmp_path, "is a directory"),
        (not_pem, "holds no usable PEM certificate"),
    ]:
        with pytest.raises(InvalidTrustAnchors) as info:
            tls_context(path)
        assert words in str(info.value) and str(path) in str(info.value)
        assert "\n" not in str(info.value)


def test_a_token_over_clear_text_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ppsp.tracker.net.client"):
        TrackerClient("http://127.0.0.1:1/", "me", token=_token({"sub": "me"}))
        TrackerClient("https://127.0.0.1:1/", "me", token=_token({"sub": "me"}))
    assert [r.getMessage() for r in caplog.records] == [
        "sending a bearer token to 127.0.0.1:1 in clear text: use https:// (RFC 6750)"
    ]


def test_bearer_challenges_are_read() -> None:
    assert bearer_challenge(None) == {}
    assert bearer_challenge('Basic realm="x"') == {}
    assert bearer_challenge('Bearer realm="ppsp", error="invalid_token"') == {
        "realm": "ppsp",
        "error": "invalid_token",
    }
    assert bearer_challenge('bearer ERROR=insufficient_scope,scope="a b"') == {
        "error": "insufficient_scope",
        "scope": "a b",
    }


@given(st.text(max_size=300))
def test_any_challenge_is_read_without_error(header: str) -> None:
    params = bearer_challenge(header)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())


# -- the thin I/O layer ----------------------------------------------------------------------------


async def test_an_http_tracker_costs_no_tls_context(
    tracker: RunningTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole session with an http:// tracker makes no TLS context (aiohttp's own, made when
    it is imported, are not the client's)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a TLS context was made for an http:// tracker")

    monkeypatch.setattr(ssl, "create_default_context", refuse)
    monkeypatch.setattr(ssl, "SSLContext", refuse)
    async with client(tracker.url, "me", Encoding.XML) as me:
        await me.join("a", PeerMode.SEED)
        await me.report()
        await me.find("a")
        await me.disconnect(None)


def test_the_client_imports_only_what_it_uses() -> None:
    """Importing the client loads neither tracker codec nor the JWT library; a client loads
    the codec of its encoding when it first sends."""
    import subprocess
    import sys

    code = """
import asyncio, sys
import ppsp.tracker.net.client as c
loaded = lambda: sorted(m for m in ("ppsp.codecs.tracker_xml", "ppsp.codecs.tracker_json", "jwt")
                        if m in sys.modules)
print(loaded())
me = c.TrackerClient("http://127.0.0.1:1/", "me", retries=0, timeout=0.5)
async def main():
    try:
        await me.register()
    except c.TrackerUnreachable:
        pass
    await me.close()
asyncio.run(main())
print(loaded())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout.splitlines()
    assert out == ["[]", "['ppsp.codecs.tracker_xml']"]


async def test_leaving_no_swarm_sends_nothing(tracker: RunningTracker) -> None:
    log: list[Exchange] = []
    async with client(tracker.url, "me", Encoding.XML, log) as me:
        await me.join("a", PeerMode.SEED)
        await me.disconnect([])
        assert me.joined == {"a": PeerMode.SEED}
    assert [type(x.request).__name__ for x in log] == ["ConnectRequest", "JoinRequest"]


async def test_the_report_task_waits_for_the_sessions_deadline(tracker: RunningTracker) -> None:
    """The periodic task sleeps exactly until the session's next deadline and no more often."""
    fake = FakeTime()
    reported = asyncio.Event()
    me = TrackerClient(tracker.url, "me", clock=fake.clock, sleep=fake.sleep)
    async with me:
        await me.join("a", PeerMode.SEED)

        def provider() -> tuple[list[StreamStatistics], list[ContentMap]]:
            reported.set()
            return [], []

        me.start_reporting(provider, interval=30.0)
        assert me.state.next_deadline() == fake.now + 30.0
        await asyncio.wait_for(reported.wait(), 10)
        me.stop_reporting()
        assert me.state.next_deadline() is None
    assert fake.sleeps[0] == 30.0
