"""The dashboard over real loopback HTTP: its page, its JSON API on both storages, the token
rule, masking, hostile input, the tracker's limits, and the history the upkeep task samples."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from click.testing import CliRunner

from ppsp.app.cli.keys import token as token_command
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.dashboard import READ_AGAIN_AFTER, AddressDisplay, History
from ppsp.tracker.limits import Limits
from ppsp.tracker.net.auth import (
    OPERATOR_ROLE,
    generate_key_pair,
    issue_token,
    private_key_pem,
    verify_token,
)
from ppsp.tracker.net.dashboard import DASHBOARD_APP_KEY
from ppsp.tracker.net.handler import TRACKER_APP_KEY
from ppsp.tracker.net.redis_storage import RedisStorage
from ppsp.tracker.net.server import Expirer, ServerSettings, TrackerApp, create_app, serve_app
from ppsp.tracker.net.upkeep import HistorySampler
from ppsp.tracker.storage import MemoryStorage, Storage, SwarmView
from ppsp.wire.tracker import (
    AddressType,
    ConnectRequest,
    ContentMap,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    RepresentationMap,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
)
from tracker.storage.redis_server import redis_server

V11 = ProtocolVersion.V1_1
PRIVATE, PUBLIC = generate_key_pair()
STORED = "a" * 64
LIVE = "b" * 64


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Served:
    url: str
    tracker: Tracker
    app: TrackerApp
    http: aiohttp.ClientSession
    clock: Clock

    async def get(self, path: str, **headers: str) -> tuple[int, Any, dict[str, str]]:
        async with self.http.get(self.url + path, headers=headers) as resp:
            body = await resp.read()
            data = orjson.loads(body) if resp.content_type == "application/json" else body
            return resp.status, data, dict(resp.headers)

    async def api(self, path: str, **headers: str) -> Any:
        status, data, _ = await self.get(path, **headers)
        assert status == 200, data
        return data


@contextlib.asynccontextmanager
async def served(
    storage: Storage | None = None, settings: ServerSettings | None = None
) -> AsyncIterator[Served]:
    clock = Clock()
    tracker = Tracker(storage or MemoryStorage(seed=1), TrackerConfig())
    app = create_app(tracker, clock=clock, settings=settings, run_expiry=False)
    async with serve_app(app) as url, aiohttp.ClientSession() as http:
        yield Served(url, tracker, app, http, clock)


def live_map(swarm_id: str, held: bytes = b"\xff\xf0") -> ContentMap:
    return ContentMap(
        swarm_id=swarm_id,
        representations=(
            RepresentationMap(
                representation_id="live",
                segments=(
                    SegmentMap(start_index=100, end_index=111, chunkmap_size=12, bitmap=held),
                ),
            ),
        ),
    )


def stored_map(swarm_id: str, held: bytes) -> ContentMap:
    return ContentMap(
        swarm_id=swarm_id,
        representations=(
            RepresentationMap(
                representation_id="main",
                segments=(SegmentMap(start_index=0, end_index=7, chunkmap_size=8, bitmap=held),),
            ),
        ),
    )


async def join(
    tracker: Tracker, peer_id: str, swarm_id: str, mode: PeerMode, ip: str, now: float = 1000.0
) -> None:
    request = ConnectRequest(
        version=V11,
        transaction_id="1",
        peer_id=peer_id,
        peer_addresses=(PeerAddress(ip=ip, port=7000, type=AddressType.HOST),),
        swarm_actions=(
            SwarmAction(swarm_id=swarm_id, action=SwarmActionType.JOIN, peer_mode=mode),
        ),
    )
    await tracker.handle(request, observed=(ip, 40000), now=now)


async def report(
    tracker: Tracker,
    peer_id: str,
    ip: str,
    stats: StreamStatistics,
    content_map: ContentMap | None = None,
    now: float = 1000.0,
) -> None:
    request = StatReportRequest(
        version=V11,
        transaction_id="2",
        peer_id=peer_id,
        stream_stats=(stats,),
        content_maps=() if content_map is None else (content_map,),
    )
    await tracker.handle(request, observed=(ip, 40000), now=now)


QOE = (
    ("StartupDelay", "0.500"),
    ("ContinuityIndex", "0.9000"),
    ("ChunksSkipped", "1"),
    ("DelayBehindSource", "2.500"),
    ("ChunksPlayed", "9"),
    ("BytesFromSource", "1000"),
    ("BytesFromPeers", "3000"),
)


async def two_swarms(
    tracker: Tracker, now: float = 1000.0, traffic: int = 0, *, joining: bool = True
) -> None:
    """A stored swarm (a seeder and a leecher holding half) and a live one (a source and a
    viewer), each peer on its own address, and their reports (only those: ``joining`` off)."""
    if joining:
        await join(tracker, "seeder", STORED, PeerMode.SEED, "192.0.2.10", now)
        await join(tracker, "leecher", STORED, PeerMode.LEECH, "192.0.2.11", now)
        await join(tracker, "source", LIVE, PeerMode.SEED, "2001:db8:1:2::5", now)
        await join(tracker, "viewer", LIVE, PeerMode.LEECH, "198.51.100.20", now)
    await report(
        tracker,
        "seeder",
        "192.0.2.10",
        StreamStatistics(swarm_id=STORED, uploaded_bytes=4000 + traffic),
        stored_map(STORED, b"\xff"),
        now,
    )
    await report(
        tracker,
        "leecher",
        "192.0.2.11",
        StreamStatistics(swarm_id=STORED, downloaded_bytes=4000 + traffic, concurrent_links=1),
        stored_map(STORED, b"\xf0"),
        now,
    )
    await report(
        tracker,
        "source",
        "2001:db8:1:2::5",
        StreamStatistics(swarm_id=LIVE, uploaded_bytes=1000),
        live_map(LIVE),
        now,
    )
    await report(
        tracker,
        "viewer",
        "198.51.100.20",
        StreamStatistics(swarm_id=LIVE, downloaded_bytes=4000, extra=QOE),
        live_map(LIVE, b"\xff\x00"),
        now,
    )


# -- the API on both storages --------------------------------------------------------------------


async def test_the_list_shows_each_swarm_with_its_kind_counts_traffic_and_qoe(
    storage: Storage,
) -> None:
    async with served(storage) as fx:
        await two_swarms(fx.tracker)
        data = await fx.api("/api/swarms")
        assert (data["page"], data["pages"], data["total"]) == (1, 1, 2)
        assert data["totals"] == {
            "peers": 4,
            "swarms": 2,
            "memberships": 4,
            "reported": 0,
            "suspects": 0,
        }
        assert data["addresses"] == "masked" and data["tokens"] is False
        stored, live = data["swarms"]  # in swarm ID order
        assert stored["id"] == STORED and live["id"] == LIVE
        assert stored["kind"] == "stored" and live["kind"] == "live"
        assert (stored["members"], stored["seeders"], stored["leechers"]) == (2, 1, 1)
        assert (stored["uploaded_bytes"], stored["downloaded_bytes"]) == (4000, 4000)
        assert stored["qoe"] is None and stored["sampled"] is False
        assert (live["seeders"], live["leechers"]) == (1, 1)
        assert live["qoe"] == {
            "viewers": 1,
            "continuity_mean": 0.9,
            "continuity_min": 0.9,
            "startup_delay_mean": 0.5,
            "delay_mean": 2.5,
            "delay_max": 2.5,
            "chunks_skipped": 1,
            "bytes_from_source": 1000,
            "bytes_from_peers": 3000,
            "peer_share": 0.75,
        }


async def test_a_swarm_page_lists_its_peers_masked_with_their_coverage(storage: Storage) -> None:
    async with served(storage) as fx:
        await two_swarms(fx.tracker)
        data = await fx.api(f"/api/swarms/{STORED}")
        assert data["id"] == STORED and data["kind"] == "stored"
        seeder, leecher = data["peers"]
        assert (seeder["peer_id"], seeder["mode"], seeder["coverage"]) == ("seeder", "SEED", 1.0)
        assert (leecher["peer_id"], leecher["coverage"]) == ("leecher", 0.5)
        assert (leecher["held"], leecher["described"], leecher["links"]) == (4, 8, 1)
        # Advertised and REFLEXIVE addresses of one host: one network, no port.
        assert seeder["addresses"] == ["192.0.2.x"]
        live = await fx.api(f"/api/swarms/{LIVE}")
        source = next(p for p in live["peers"] if p["peer_id"] == "source")
        assert source["addresses"] == ["2001:db8:1::/48"]
        viewer = next(p for p in live["peers"] if p["peer_id"] == "viewer")
        assert viewer["coverage"] == round(8 / 12, 4)
        assert viewer["qoe"]["continuity"] == 0.9 and viewer["qoe"]["delay_behind_source"] == 2.5
        body = orjson.dumps(live).decode() + orjson.dumps(data).decode()
        for secret in ("192.0.2.10", "2001:db8:1:2", "198.51.100.20", "7000", "40000"):
            assert secret not in body


class CountingStorage(MemoryStorage):
    """A memory storage that counts the swarms the dashboard reads."""

    def __init__(self) -> None:
        super().__init__(seed=1)
        self.read: list[str] = []

    async def swarm_views(
        self, swarm_ids: Sequence[str], *, limit: int, maps: int = 0
    ) -> list[SwarmView]:
        self.read.extend(swarm_ids)
        return await super().swarm_views(swarm_ids, limit=limit, maps=maps)


async def test_a_swarm_is_read_at_most_once_per_interval_however_often_it_is_asked() -> None:
    storage = CountingStorage()
    async with served(storage) as fx:
        await two_swarms(fx.tracker)
        first = await fx.api(f"/api/swarms/{STORED}")
        for _ in range(20):
            assert (await fx.api(f"/api/swarms/{STORED}"))["peers"] == first["peers"]
        assert storage.read == [STORED]
        await fx.api("/api/swarms")
        await fx.api("/api/swarms")
        assert storage.read == [STORED, STORED, LIVE]
        # Read anew once the interval is over: what changed meanwhile is shown.
        await report(
            fx.tracker, "leecher", "192.0.2.11", StreamStatistics(swarm_id=STORED),
            stored_map(STORED, b"\xff"),
        )  # fmt: skip
        fx.clock.now += READ_AGAIN_AFTER
        again = await fx.api(f"/api/swarms/{STORED}")
        assert storage.read == [STORED, STORED, LIVE, STORED]
        assert [p["coverage"] for p in again["peers"]] == [1.0, 1.0]


async def test_full_addresses_are_shown_when_the_operator_asks() -> None:
    settings = ServerSettings(dashboard_addresses=AddressDisplay.FULL)
    async with served(settings=settings) as fx:
        await two_swarms(fx.tracker)
        data = await fx.api(f"/api/swarms/{LIVE}")
        assert data["addresses"] == "full"
        source = next(p for p in data["peers"] if p["peer_id"] == "source")
        assert source["addresses"] == ["[2001:db8:1:2::5]:7000", "[2001:db8:1:2::5]:40000"]
    assert ServerSettings(dashboard_addresses="full").dashboard_addresses is AddressDisplay.FULL  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ServerSettings(dashboard_addresses="some")  # type: ignore[arg-type]


async def test_pages_are_bounded_and_ordered(storage: Storage) -> None:
    async with served(storage) as fx:
        ids = [f"swarm-{i:02d}" for i in range(7)]
        for i, swarm_id in enumerate(ids):
            await join(fx.tracker, f"p{i}", swarm_id, PeerMode.SEED, f"192.0.2.{i + 1}")
        first = await fx.api("/api/swarms?per_page=3")
        assert [s["id"] for s in first["swarms"]] == ids[:3]
        assert (first["total"], first["pages"], first["per_page"]) == (7, 3, 3)
        last = await fx.api("/api/swarms?per_page=3&page=3")
        assert [s["id"] for s in last["swarms"]] == ids[6:]
        beyond = await fx.api("/api/swarms?per_page=3&page=1000000")
        assert beyond["swarms"] == [] and beyond["total"] == 7
        default = await fx.api("/api/swarms")
        assert len(default["swarms"]) == 7 and default["per_page"] == 20


async def test_the_history_is_sampled_by_the_upkeep_task_with_the_time_passed_in(
    storage: Storage,
) -> None:
    async with served(storage) as fx:
        sampler = fx.app[DASHBOARD_APP_KEY].sampler
        await two_swarms(fx.tracker)
        assert await sampler.tick() == 10.0  # the first sample at once, the next in 10 s
        fx.clock.now += 4.0
        assert await sampler.tick() == pytest.approx(6.0)  # not due: nothing read
        fx.clock.now += 6.0
        await two_swarms(fx.tracker, now=fx.clock.now, traffic=5000, joining=False)
        await sampler.tick()
        data = await fx.api("/api/swarms")
        history = data["history"]
        assert history["t"] == [-10.0, 0.0]
        assert history["peers"] == [4, 4] and history["swarms"] == [2, 2]
        assert history["followed"] == 2
        assert history["up_rate"] == [None, 500.0]  # the seeder reported 5000 more bytes
        stored = data["swarms"][0]
        assert (stored["up_rate"], stored["down_rate"]) == (500.0, 500.0)
        swarm = await fx.api(f"/api/swarms/{STORED}")
        assert swarm["history"]["seeders"] == [1, 1] and swarm["history"]["leechers"] == [1, 1]
        assert swarm["history"]["down_rate"] == [None, 500.0]
        live = await fx.api(f"/api/swarms/{LIVE}")
        assert live["history"]["continuity"] == [0.9, 0.9]


async def test_the_expiry_task_runs_the_sampler() -> None:
    tracker = Tracker(MemoryStorage(), TrackerConfig())
    clock = Clock()
    history = History()
    sampler = HistorySampler(tracker, clock, history)
    expirer = Expirer(tracker, clock, poll=0.01, sampler=sampler)
    task = asyncio.create_task(expirer.run())
    try:
        for _ in range(200):
            if history.totals_json(clock.now)["t"]:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert history.totals_json(clock.now)["t"] == [0.0]


async def test_a_storage_that_fails_gives_a_503_and_a_gap_in_the_history() -> None:
    with redis_server() as server:
        storage = RedisStorage(server.url, prefix="dash:")
        async with served(storage) as fx:
            await two_swarms(fx.tracker)
            sampler = fx.app[DASHBOARD_APP_KEY].sampler
            await sampler.tick()
            server.stop()
            status, data, _ = await fx.get("/api/swarms")
            assert status == 503 and data == {"error": "the tracker's storage does not answer"}
            status, data, _ = await fx.get(f"/api/swarms/{STORED}")
            assert status == 503
            fx.clock.now += 10.0
            assert await sampler.tick() == 10.0  # no sample, no error: try again later
            assert sampler.history.totals_json(fx.clock.now)["t"] == [-10.0]
            status, _, _ = await fx.get("/")  # the page holds no data: served all the same
            assert status == 200
        await storage.close()


# -- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-3",
        "page=99999999999999999999999999999",
        "page=" + "9" * 5000,
        "page=1e3",
        "page=%EF%BC%91",  # a full-width digit
        "per_page=51",
        "per_page=0",
        "per_page=",
    ],
)
async def test_bad_pages_are_a_clean_400(query: str) -> None:
    async with served() as fx:
        status, data, headers = await fx.get("/api/swarms?" + query)
        assert status == 400, data
        assert set(data) == {"error"} and "\n" not in data["error"]
        assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/swarms/ALL", 400),
        ("/api/swarms/nil", 400),
        ("/api/swarms/a%20b", 400),
        ("/api/swarms/a%00b", 400),
        ("/api/swarms/a%09b", 400),
        ("/api/swarms/" + "x" * 257, 400),
        ("/api/swarms/" + "x" * 256, 404),
        ("/api/swarms/unknown", 404),
        ("/api/swarms/a%2Fb", 404),  # a swarm ID may hold a slash
        ("/api/swarms/%E2%82%AC", 404),
    ],
)
async def test_bad_or_unknown_swarm_ids_are_a_clean_4xx(path: str, status: int) -> None:
    async with served() as fx:
        got, data, _ = await fx.get(path)
        assert got == status, data
        assert set(data) == {"error"} and "\n" not in data["error"]


async def test_a_swarm_id_with_a_slash_is_found() -> None:
    async with served() as fx:
        await join(fx.tracker, "p", "a/b?c", PeerMode.SEED, "192.0.2.1")
        data = await fx.api("/api/swarms/a%2Fb%3Fc")
        assert data["id"] == "a/b?c"


async def test_only_the_page_and_its_files_are_served() -> None:
    async with served() as fx:
        status, page, headers = await fx.get("/")
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert b"/dashboard/dashboard.js" in page and b"http" not in page.split(b"<body>")[0]
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
            status, body, headers = await fx.get("/dashboard/" + name)
            assert status == 200 and headers["Content-Type"].startswith(kind) and body
        for path in ("/dashboard/index.html", "/dashboard/..%2F__init__.py", "/dashboard/x.js"):
            status, _, _ = await fx.get(path)
            assert status == 404, path
        async with fx.http.put(fx.url + "/api/swarms") as resp:
            assert resp.status == 405
        async with fx.http.head(fx.url + "/") as resp:
            assert resp.status == 200


async def test_without_the_dashboard_nothing_is_served() -> None:
    async with served(settings=ServerSettings(dashboard=False)) as fx:
        for path in ("/", "/api/swarms", "/dashboard/dashboard.js"):
            status, _, _ = await fx.get(path)
            assert status == 404, path
        assert DASHBOARD_APP_KEY not in fx.app


async def test_dashboard_requests_pass_the_host_rate() -> None:
    limits = Limits(requests_per_second_per_host=0.5, request_burst_per_host=3)
    async with served(settings=ServerSettings(limits=limits)) as fx:
        statuses = [(await fx.get(path))[0] for path in ("/", "/api/swarms", "/status")]
        assert statuses == [200, 200, 200]
        status, data, headers = await fx.get("/api/swarms")
        assert status == 503 and int(headers["Retry-After"]) >= 1
        assert data == {"error": "too many requests from this address"}
        status, _, _ = await fx.get("/")
        assert status == 503


async def test_a_body_that_has_not_arrived_is_not_read() -> None:
    async with served() as fx:
        host, port = fx.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(b"GET /api/swarms HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            await writer.drain()
            # Answered without waiting for the body, and the connection is not kept.
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200")
            assert b"\r\nConnection: close\r\n" in head
            writer.write(b"defghij")  # the rest, so that the server has nothing left to wait for
            await writer.drain()
            assert (await asyncio.wait_for(reader.read(), 10)).endswith(b"}")
        finally:
            writer.close()


# -- the token rule -------------------------------------------------------------------------------


def _token(peer_id: str, **kwargs: Any) -> str:
    return issue_token(PRIVATE, peer_id, ttl=600, now=time.time(), **kwargs)


async def test_with_tokens_the_api_needs_an_operator_token() -> None:
    async with served(settings=ServerSettings(auth_key=PUBLIC)) as fx:
        await two_swarms(fx.tracker)  # the core is given no credentials: it asks for none
        # The page and its files hold no data: served without a token (it asks for one).
        for path in ("/", "/dashboard/dashboard.js"):
            status, _, _ = await fx.get(path)
            assert status == 200
        for path in ("/api/swarms", f"/api/swarms/{STORED}"):
            status, data, headers = await fx.get(path)
            assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="ppsp"'
            assert "authentication required" in data["error"]
            status, data, headers = await fx.get(path, Authorization="Bearer abc.def.ghi")
            assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
            expired = issue_token(PRIVATE, "op", ttl=60, now=time.time() - 999, role="operator")
            status, data, _ = await fx.get(path, Authorization="Bearer " + expired)
            assert status == 401 and "expired" in data["error"]
            other, _ = generate_key_pair()
            forged = issue_token(other, "op", ttl=60, now=time.time(), role="operator")
            status, _, _ = await fx.get(path, Authorization="Bearer " + forged)
            assert status == 401
            # A peer's token is valid, but not an operator's.
            status, data, headers = await fx.get(path, Authorization="Bearer " + _token("peer"))
            assert status == 403 and 'error="insufficient_scope"' in headers["WWW-Authenticate"]
            assert "operator" in data["error"]
            operator = _token("alice", role=OPERATOR_ROLE)
            status, data, _ = await fx.get(path, Authorization="Bearer " + operator)
            assert status == 200 and data["tokens"] is True
        # Refusals are counted as the tracker's other ones.
        refusals = fx.app[TRACKER_APP_KEY].metrics.refusals.unauthenticated
        assert refusals["missing"] >= 2 and refusals["expired"] >= 2


def test_ppsp_token_makes_operator_tokens(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(private_key_pem(PRIVATE))
    runner = CliRunner()
    result = runner.invoke(token_command, ["--key", str(key), "--peer-id", "alice", "--operator"])
    assert result.exit_code == 0, result.output
    text = result.stdout.strip()
    credentials = verify_token(text, PUBLIC, now=time.time())
    assert credentials.operator and credentials.subject == "alice"
    assert "operator token for PeerID alice" in result.stderr
    plain = runner.invoke(token_command, ["--key", str(key), "--peer-id", "p"])
    assert not verify_token(plain.stdout.strip(), PUBLIC, now=time.time()).operator


# -- the command line -----------------------------------------------------------------------------


async def test_the_tracker_command_takes_the_dashboard_options(tmp_path: Path) -> None:
    from e2e.swarm_helpers import Swarm

    async with Swarm(tmp_path) as swarm, aiohttp.ClientSession() as http:
        await swarm.tracker("--dashboard-addresses", "full")
        async with http.get(swarm.tracker_url + "/api/swarms") as resp:
            assert resp.status == 200 and (await resp.json())["addresses"] == "full"
        await swarm.tracker("--dashboard", "off")
        for path in ("/", "/api/swarms"):
            async with http.get(swarm.tracker_url + path) as resp:
                assert resp.status == 404
        usage = await swarm.spawn("bad", "tracker", "--dashboard-addresses", "some")
        assert await usage.wait() == 2
