"""Refusals on ``/metrics``: connections over a bound, heads and idle connections timed out,
requests over their host's rate or without a usable bearer token, and their sums over the
processes that share a metrics directory.

The HTTP tests run a tracker on loopback with small bounds; what is refused comes from
127.0.0.2 and ``/metrics`` is read from 127.0.0.3, on connections of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson

from ppsp.codecs.tracker import codec_for
from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.limits import Limits
from ppsp.tracker.net.auth import REFUSAL_REASONS, generate_key_pair, issue_token, public_key_pem
from ppsp.tracker.net.metrics import RefusalCounts, TrackerMetrics
from ppsp.tracker.net.server import TRACKER_APP_KEY, ServerSettings, running_tracker
from ppsp.wire.tracker import ConnectRequest, Encoding, ProtocolVersion

ATTACKER = "127.0.0.2"
OTHER = "127.0.0.3"
PARTIAL_HEAD = b"POST / HTTP/1.1\r\nHost: tracker\r\nContent-Type: application/ppsp-tracker+xml\r\n"
PRIVATE, PUBLIC = generate_key_pair()
OTHER_PRIVATE, _ = generate_key_pair()

REFUSED = "ppsp_tracker_connections_refused_total"
CLOSED = "ppsp_tracker_connections_closed_total"
RATE_LIMITED = "ppsp_tracker_rate_limited_requests_total"
UNAUTHENTICATED = "ppsp_tracker_unauthenticated_requests_total"


@contextlib.asynccontextmanager
async def tracker(**settings: object) -> AsyncIterator[tuple[str, int, str]]:
    """A tracker on 127.0.0.1 with these server settings: (host, port, url)."""
    server = ServerSettings(**settings)  # type: ignore[arg-type]
    async with running_tracker(TrackerConfig(), settings=server) as running:
        host, port = running.url.removeprefix("http://").rsplit(":", 1)
        yield host, int(port), running.url


async def scrape(url: str, *, token: str | None = None) -> dict[str, float]:
    """``/metrics`` from 127.0.0.3 on a connection of its own: sample -> value."""
    connector = aiohttp.TCPConnector(local_addr=(OTHER, 0), force_close=True)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url + "/metrics", headers=headers) as resp,
    ):
        assert resp.status == 200
        text = await resp.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


async def open_partial(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection from 127.0.0.2 that sends the start of a head and nothing more."""
    reader, writer = await asyncio.open_connection(host, port, local_addr=(ATTACKER, 0))
    writer.write(PARTIAL_HEAD)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    return reader, writer


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within ``seconds``."""
    try:
        while await asyncio.wait_for(reader.read(65536), seconds):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


def connect_body(peer_id: str) -> bytes:
    return codec_for(Encoding.XML).encode_request(
        ConnectRequest(version=ProtocolVersion.V1_1, transaction_id="1", peer_id=peer_id)
    )


async def test_the_fresh_exposition_shows_every_refusal_counter_at_zero() -> None:
    async with tracker(limits=Limits()) as (_, _, url):
        samples = await scrape(url)
    assert samples[f'{REFUSED}{{bound="per_host"}}'] == 0
    assert samples[f'{REFUSED}{{bound="total"}}'] == 0
    assert samples[f'{CLOSED}{{reason="header_timeout"}}'] == 0
    assert samples[f'{CLOSED}{{reason="idle_timeout"}}'] == 0
    assert samples[RATE_LIMITED] == 0
    assert f'{REFUSED.removesuffix("_total")}_created{{bound="total"}}' in samples
    # Without an auth key nothing is refused for want of a token: no reasons listed.
    assert not any(name.startswith(UNAUTHENTICATED) for name in samples)


async def test_connections_refused_per_host_and_closed_for_their_head_are_counted() -> None:
    limits = Limits(connections_per_host=2, header_timeout=1.0)
    async with tracker(limits=limits) as (host, port, url):
        opened = [await open_partial(host, port) for _ in range(5)]
        try:
            # Three over the bound are closed at once, the two kept once their head is late.
            closed = await asyncio.gather(*(closed_within(r, 5.0) for r, _ in opened))
            assert all(closed)
        finally:
            for _, writer in opened:
                writer.close()
        samples = await scrape(url)
    assert samples[f'{REFUSED}{{bound="per_host"}}'] == 3
    assert samples[f'{REFUSED}{{bound="total"}}'] == 0
    assert samples[f'{CLOSED}{{reason="header_timeout"}}'] == 2


async def test_connections_refused_by_the_bound_in_all_are_counted() -> None:
    settings = ServerSettings(limits=Limits(per_host=False, connections_total=3))
    async with running_tracker(TrackerConfig(), settings=settings) as running:
        host, port = running.url.removeprefix("http://").rsplit(":", 1)
        opened = [await open_partial(host, int(port)) for _ in range(5)]
        try:
            closed = await asyncio.gather(*(closed_within(r, 0.5) for r, _ in opened))
            assert closed.count(True) == 2, closed
        finally:
            for _, writer in opened:
                writer.close()
        guard = running.app[TRACKER_APP_KEY].guard
        for _ in range(100):  # until the server has seen the closes: room for the scrape
            if not guard.open:
                break
            await asyncio.sleep(0.02)
        samples = await scrape(running.url)
    assert samples[f'{REFUSED}{{bound="total"}}'] == 2
    assert samples[f'{REFUSED}{{bound="per_host"}}'] == 0


async def test_idle_connections_closed_are_counted_once() -> None:
    async with tracker(limits=Limits(idle_timeout=1.0)) as (host, port, url):
        reader, writer = await asyncio.open_connection(host, port, local_addr=(ATTACKER, 0))
        try:
            body = connect_body("idle")
            writer.write(
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/ppsp-tracker+xml\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            assert await closed_within(reader, 5.0)
        finally:
            writer.close()
        await asyncio.sleep(0.3)  # the watchdog looks again: a closed connection is not counted
        samples = await scrape(url)
    assert samples[f'{CLOSED}{{reason="idle_timeout"}}'] == 1
    assert samples[f'{CLOSED}{{reason="header_timeout"}}'] == 0


async def test_requests_over_the_rate_are_counted_pages_included() -> None:
    limits = Limits(requests_per_second_per_host=0.5, request_burst_per_host=3)
    async with tracker(limits=limits) as (_, _, url):
        statuses = []
        connector = aiohttp.TCPConnector(local_addr=(ATTACKER, 0))
        async with aiohttp.ClientSession(connector=connector) as session:
            for i in range(8):
                async with session.post(
                    url,
                    data=connect_body(f"flood{i}"),
                    headers={"Content-Type": Encoding.XML.content_type},
                ) as resp:
                    statuses.append(resp.status)
            async with session.get(url + "/status") as resp:
                statuses.append(resp.status)
        samples = await scrape(url)
    refused = statuses.count(503)
    assert refused >= 5 and statuses[-1] == 503, statuses
    assert samples[RATE_LIMITED] == refused
    # The PPSP-TP requests among them are in the request counter too, as before.
    outcome = 'ppsp_tracker_requests_total{encoding="xml",method="unknown",outcome="rate_limited"}'
    assert samples[outcome] == refused - 1


async def test_unauthenticated_requests_are_counted_by_reason(tmp_path: Path) -> None:
    key_file = tmp_path / "auth.pub.pem"
    key_file.write_bytes(public_key_pem(PUBLIC))
    now = time.time()
    headers = {
        "missing": {},
        "another scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "malformed": {"Authorization": "Bearer not a token"},
        "garbage": {"Authorization": "Bearer abc.def.ghi"},
        "expired": {"Authorization": "Bearer " + issue_token(PRIVATE, "p", ttl=1, now=now - 999)},
        "other key": {"Authorization": "Bearer " + issue_token(OTHER_PRIVATE, "p", now=now)},
        "future": {"Authorization": "Bearer " + issue_token(PRIVATE, "p", now=now + 3600)},
    }
    async with (
        tracker(auth_key=key_file) as (_, _, url),
        aiohttp.ClientSession() as session,
    ):
        fresh = await scrape(url, token=issue_token(PRIVATE, "scraper", now=now))
        assert {name for name in fresh if name.startswith(UNAUTHENTICATED + "{")} == {
            f'{UNAUTHENTICATED}{{reason="{reason}"}}' for reason in REFUSAL_REASONS
        }
        for header in headers.values():
            async with session.post(
                url,
                data=connect_body("p"),
                headers={"Content-Type": Encoding.XML.content_type, **header},
            ) as resp:
                assert resp.status == 401
        async with session.get(url + "/status") as resp:  # a page without a token
            assert resp.status == 401
        samples = await scrape(url, token=issue_token(PRIVATE, "scraper", now=now))
    counted = {
        reason: samples[f'{UNAUTHENTICATED}{{reason="{reason}"}}'] for reason in REFUSAL_REASONS
    }
    assert counted == {
        "missing": 3,
        "malformed": 2,
        "bad_signature": 1,
        "expired": 1,
        "not_yet_valid": 1,
        "bad_claims": 0,
    }


def test_processes_sharing_a_directory_sum_their_refusals(tmp_path: Path) -> None:
    first = TrackerMetrics(tmp_path / "1.json")
    second = TrackerMetrics(tmp_path / "2.json")
    first.refusals.rate_limited += 2
    first.refusals.connections_closed["header_timeout"] += 1
    first.refusals.count_unauthenticated("expired")
    second.refusals.rate_limited += 3
    second.refusals.connections_refused["per_host"] += 4
    second.refusals.count_unauthenticated("expired")
    second.refusals.count_unauthenticated("missing")
    assert second.shared is not None
    second.shared.write_if_changed()
    # A file of an earlier release (no refusals in it) is summed for what it holds.
    (tmp_path / "3.json").write_bytes(
        orjson.dumps(
            {"requests": [["FIND", "xml", "ok", 1, 5.0]], "latency": {}, "expired": [0, 5]}
        )
    )
    text = first.exposition().decode()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line[:1] != "#")
    assert float(samples[RATE_LIMITED]) == 5
    assert float(samples[f'{REFUSED}{{bound="per_host"}}']) == 4
    assert float(samples[f'{CLOSED}{{reason="header_timeout"}}']) == 1
    assert float(samples[f'{UNAUTHENTICATED}{{reason="expired"}}']) == 2
    assert float(samples[f'{UNAUTHENTICATED}{{reason="missing"}}']) == 1
    assert float(samples["ppsp_tracker_rate_limited_requests_created"]) == 5.0  # the earliest
    # The process's own exposition is its own numbers again after the scrape.
    assert first.request_metrics.exposed()[3] is first.refusals


def test_refusal_counts_round_trip_through_a_snapshot() -> None:
    counts = RefusalCounts(7.0)
    counts.connections_refused["total"] += 1
    counts.count_unauthenticated("bad_claims")
    counts.rate_limited += 2
    again = RefusalCounts.from_snapshot(orjson.loads(orjson.dumps(counts.snapshot())))
    assert again.snapshot() == counts.snapshot()
    assert again.total() == 4
