"""The tracker and the budget of request bodies being read (``http/budget.py``): a body it
cannot take is refused as a PPSP-TP error in the request's encoding, counted on ``/metrics``,
and behind a trusted proxy charged to the client the proxy names; slow bodies holding the
total are evicted for an honest body that arrives at its pace; ``--limits off`` lifts the
share per host, not the total.

A real tracker on loopback (the in-process server of ``running_tracker``) with request bodies
of up to 1 MiB, so that a host's 4 MiB share is four slow bodies; a misbehaving host
(127.0.0.2, or a client behind the proxy there; sixteen of them, 127.0.10.1 .., for the
total) holds them, sending each head and one byte of its body, and the rest never.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from ppsp.codecs.tracker import codec_for
from ppsp.errors import TrackerErrorCode
from ppsp.http.bounds import BODY_BUDGET, BODY_BUDGET_PER_HOST, BODY_BUSY_RETRY_AFTER
from ppsp.http.budget import BodyBudget, body_host
from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.limits import DEFAULT_LIMITS
from ppsp.tracker.net.handler import BODIES_BUSY_REASON, TrackerHandler
from ppsp.tracker.net.metrics import TrackerMetrics
from ppsp.tracker.net.proxy import X_FORWARDED_FOR
from ppsp.tracker.net.server import TRACKER_APP_KEY, ServerSettings, running_tracker
from ppsp.wire.tracker import (
    ConnectRequest,
    Encoding,
    ErrorResponse,
    ProtocolVersion,
    TrackerResponse,
)
from waits import until

ATTACKER = "127.0.0.2"
HONEST = "127.0.0.3"
SCRAPER = "127.0.0.4"
PROXY = "127.0.0.5"
BODY = 1 << 20
"""The declared length of each slow body (the tracker's bound is set to it)."""
SHARE = BODY_BUDGET_PER_HOST // BODY
"""Slow bodies that fill one host's share (4)."""
READ_TIMEOUT = 10.0
ATTACKERS = [f"127.0.10.{n}" for n in range(1, BODY_BUDGET // BODY_BUDGET_PER_HOST + 1)]
"""Hosts whose shares together spend the total (16)."""


def connect_body(encoding: Encoding, peer_id: str) -> bytes:
    version = ProtocolVersion.V1_1
    return codec_for(encoding).encode_request(
        ConnectRequest(version=version, transaction_id="7", peer_id=peer_id)
    )


@contextlib.asynccontextmanager
async def tracker(**settings: object) -> AsyncIterator[tuple[str, TrackerHandler]]:
    """A tracker on 127.0.0.1 taking bodies of up to 1 MiB: its URL and its handler."""
    server = ServerSettings(max_body=BODY, **settings)  # type: ignore[arg-type]
    async with running_tracker(TrackerConfig(), settings=server) as running:
        yield running.url, running.app[TRACKER_APP_KEY]


class Client:
    """One connection from ``local`` that sends a request head and part of its body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def begin(
        cls,
        url: str,
        local: str,
        encoding: Encoding,
        length: int,
        first: bytes,
        headers: dict[str, str] | None = None,
    ) -> Client:
        """Send a POST head declaring ``length`` bytes of body, and ``first`` of them."""
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(parts.hostname, parts.port, local_addr=(local, 0)),
            READ_TIMEOUT,
        )
        fields = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = (
            f"POST /announce HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: {encoding.content_type}\r\nContent-Length: {length}\r\n{fields}\r\n"
        )
        writer.write(head.encode("ascii") + first)
        await writer.drain()
        return cls(reader, writer)

    async def answer(self) -> tuple[int, str, dict[str, str], bytes]:
        """The answer as it came: status, reason, fields (lower-case names), body."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
        _, status, reason = [*status_line.split(" ", 2), ""][:3]
        fields = {}
        for line in lines:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        length = int(fields.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), READ_TIMEOUT)
        return int(status), reason, fields, body

    def close(self) -> None:
        self.writer.close()


@contextlib.contextmanager
def closing(clients: list[Client]) -> Iterator[list[Client]]:
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


async def hold(
    url: str,
    handler: TrackerHandler,
    local: str,
    clients: list[Client],
    headers: dict[str, str] | None = None,
) -> None:
    """Fill a share with slow bodies of 1 MiB from ``local`` (with these header fields)."""
    budget = handler.body_budget
    before = budget.in_use
    for _ in range(SHARE):
        clients.append(await Client.begin(url, local, Encoding.XML, BODY, b"<", headers=headers))
    await until(lambda: budget.in_use == before + SHARE * BODY)


async def scrape(url: str, page: str) -> bytes:
    connector = aiohttp.TCPConnector(local_addr=(SCRAPER, 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session, session.get(url + page) as r:
        assert r.status == 200
        return await r.read()


def samples(text: bytes) -> dict[str, float]:
    found = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


async def served_slowly(
    url: str,
    handler: TrackerHandler,
    local: str,
    encoding: Encoding,
    peer_id: str,
    client_ip: str | None = None,
) -> int:
    """A CONNECT (from ``client_ip`` behind the proxy at ``local``, when given) whose body
    comes in two parts, the first charged before the second is sent: the status it is
    answered with."""
    budget = handler.body_budget
    host = body_host(client_ip or local)
    refused = budget.refused
    body = connect_body(encoding, peer_id)
    headers = None if client_ip is None else {X_FORWARDED_FOR: client_ip}
    client = await Client.begin(url, local, encoding, len(body), body[:10], headers=headers)
    with closing([client]):
        # The server waits for the rest, its length charged (or it refused the body).
        await until(lambda: budget.held(host) > 0 or budget.refused > refused)
        with contextlib.suppress(ConnectionError):
            client.writer.write(body[10:])
            await client.writer.drain()
        status, _, _, data = await client.answer()
        if status == 200:
            assert isinstance(codec_for(encoding).decode_response(data, 200, ""), TrackerResponse)
        return status


@pytest.mark.parametrize("encoding", [Encoding.XML, Encoding.JSON])
async def test_a_host_over_its_share_gets_the_protocol_error_in_its_encoding(
    encoding: Encoding,
) -> None:
    async with tracker() as (url, handler):
        with closing([]) as held:
            await hold(url, handler, ATTACKER, held)
            refused = await Client.begin(url, ATTACKER, encoding, BODY, b"<")
            with closing([refused]):
                status, reason, fields, body = await refused.answer()
            assert status == 503
            assert reason == BODIES_BUSY_REASON
            assert fields["retry-after"] == str(BODY_BUSY_RETRY_AFTER)
            assert fields["content-type"] == encoding.content_type
            assert fields["connection"] == "close"
            answer = codec_for(encoding).decode_response(body, status, reason)
            assert isinstance(answer, ErrorResponse)
            assert answer.code is TrackerErrorCode.SERVICE_UNAVAILABLE
            # Another host is still served, its own body read slowly too.
            assert await served_slowly(url, handler, HONEST, encoding, "honest") == 200


async def test_the_refusal_and_the_bytes_being_read_show_on_metrics_and_status() -> None:
    async with tracker() as (url, handler):
        fresh = samples(await scrape(url, "/metrics"))
        assert fresh["ppsp_tracker_body_busy_requests_total"] == 0
        assert fresh["ppsp_tracker_request_body_bytes"] == 0
        assert fresh["ppsp_tracker_body_evictions_total"] == 0
        with closing([]) as held:
            await hold(url, handler, ATTACKER, held)
            refused = await Client.begin(url, ATTACKER, Encoding.JSON, BODY, b"{")
            with closing([refused]):
                assert (await refused.answer())[0] == 503
            found = samples(await scrape(url, "/metrics"))
            status = orjson.loads(await scrape(url, "/status"))
        assert found["ppsp_tracker_body_busy_requests_total"] == 1
        assert found["ppsp_tracker_request_body_bytes"] == SHARE * BODY
        key = 'ppsp_tracker_requests_total{encoding="json",method="unknown",outcome="body_busy"}'
        assert found[key] == 1
        assert status["request_bodies"] == {
            "bytes": SHARE * BODY,
            "hosts": 1,
            "bodies": SHARE,
            "evicted": 0,
            "bound": handler.body_budget.total,
            "bound_per_host": BODY_BUDGET_PER_HOST,
        }
        # The held bodies' bytes come back once their clients are gone.
        await until(lambda: handler.body_budget.in_use == 0)
        assert samples(await scrape(url, "/metrics"))["ppsp_tracker_request_body_bytes"] == 0


async def test_clients_behind_a_trusted_proxy_each_have_their_own_share() -> None:
    first, second = "198.51.100.1", "198.51.100.2"
    async with tracker(trusted_proxies=[f"{PROXY}/32"]) as (url, handler):
        with closing([]) as held:
            await hold(url, handler, PROXY, held, {X_FORWARDED_FOR: first})
            # The first client is over its share, through the proxy as from anywhere.
            refused = await Client.begin(
                url, PROXY, Encoding.XML, BODY, b"<", headers={X_FORWARDED_FOR: first}
            )
            with closing([refused]):
                assert (await refused.answer())[0] == 503
            # The second client, behind the same proxy, has a share of its own.
            for encoding in (Encoding.XML, Encoding.JSON):
                status = await served_slowly(url, handler, PROXY, encoding, encoding.value, second)
                assert status == 200
            assert handler.body_budget.held(body_host(first)) == SHARE * BODY
            assert handler.body_budget.held(body_host(PROXY)) == 0
            # A client's header from elsewhere than the proxy names nobody: its own host pays.
            await hold(url, handler, ATTACKER, held, {X_FORWARDED_FOR: second})
            assert handler.body_budget.held(body_host(second)) == 0


def test_workers_sum_their_bytes_being_read_and_not_a_gone_worker_s(tmp_path: Path) -> None:
    budget = BodyBudget()
    assert budget.take("198.51.100.1", 3000)
    metrics = TrackerMetrics(tmp_path / f"{os.getpid()}.json", budget)
    other = BodyBudget()
    assert other.take("198.51.100.2", 500)
    alive = TrackerMetrics(tmp_path / f"{os.getppid()}.json", other)
    assert alive.shared is not None
    alive.shared.write()
    gone = tmp_path / "999999999.json"  # no such process: its bodies are read by nobody
    gone.write_bytes((tmp_path / f"{os.getppid()}.json").read_bytes())
    text = metrics.exposition()
    assert samples(text)["ppsp_tracker_request_body_bytes"] == 3500


def evicting(evictions: int) -> BodyBudget:
    """A budget that evicted ``evictions`` slow bodies (each for the next one)."""
    budget = BodyBudget(per_host=None, total=100, grace=0.0)
    for n in range(evictions + 1):
        assert budget.take(f"198.51.100.{n + 1}", 100, now=float(n), within=10.0)
    assert budget.evicted == evictions
    return budget


def test_workers_sum_their_evictions_a_gone_or_earlier_worker_s_included(tmp_path: Path) -> None:
    metrics = TrackerMetrics(tmp_path / f"{os.getpid()}.json", evicting(2))
    other = TrackerMetrics(tmp_path / f"{os.getppid()}.json", evicting(3))
    assert other.shared is not None
    other.shared.write_if_changed()
    written = orjson.loads((tmp_path / f"{os.getppid()}.json").read_bytes())
    assert written["refusals"]["body_evictions"] == 3
    # A gone worker's evictions still count (a counter never goes down); an earlier
    # release's file, without the field, counts none.
    (tmp_path / "999999999.json").write_bytes(orjson.dumps(written))
    del written["refusals"]["body_evictions"]
    (tmp_path / "999999998.json").write_bytes(orjson.dumps(written))
    assert samples(metrics.exposition())["ppsp_tracker_body_evictions_total"] == 2 + 3 + 3
    # A single process shows its own budget's.
    alone = TrackerMetrics(body_budget=evicting(1))
    assert samples(alone.exposition())["ppsp_tracker_body_evictions_total"] == 1


async def answered_or_closed(client: Client) -> tuple[int, str, bytes] | None:
    """The status, reason and body of the client's answer; None when closed without one."""
    try:
        status, reason, _, body = await client.answer()
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return status, reason, body


async def test_slow_bodies_holding_the_total_are_evicted_for_a_body_at_its_pace() -> None:
    async with tracker() as (url, handler):
        budget = handler.body_budget
        loop = asyncio.get_running_loop()
        with closing([]) as held:
            for host in ATTACKERS:
                await hold(url, handler, host, held)
            assert budget.in_use == budget.total
            # A second later every held body lags its pace (1 MiB within the 10 s body
            # timeout) by more than the grace.
            await until(lambda: budget.slow(loop.time()) == len(held))
            # An honest host's CONNECT, its body following its head at once, is answered.
            assert await served_slowly(url, handler, HONEST, Encoding.XML, "honest") == 200
            assert budget.evicted == 1
            # One attacker's connection was answered the busy error (or closed), the others
            # still wait.
            waits = {asyncio.ensure_future(answered_or_closed(c)): c for c in held}
            done, pending = await asyncio.wait(
                waits, timeout=READ_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            assert len(done) == 1
            evicted = done.pop().result()
            if evicted is not None:
                status, reason, body = evicted
                assert (status, reason) == (503, BODIES_BUSY_REASON)
                answer = codec_for(Encoding.XML).decode_response(body, status, reason)
                assert isinstance(answer, ErrorResponse)
                assert answer.code is TrackerErrorCode.SERVICE_UNAVAILABLE
            assert budget.in_use == budget.total - BODY
            # The eviction shows on /status (the answering process's budget) and /metrics.
            status = orjson.loads(await scrape(url, "/status"))
            assert status["request_bodies"]["evicted"] == budget.evicted >= 1
            assert status["request_bodies"]["bodies"] == budget.bodies == len(held) - 1
            found = samples(await scrape(url, "/metrics"))
            assert found["ppsp_tracker_body_evictions_total"] >= 1
        await until(lambda: budget.in_use == 0 and budget.bodies == 0)


async def test_limits_off_lift_the_share_per_host_and_keep_the_total() -> None:
    async with tracker(limits=DEFAULT_LIMITS.off()) as (url, handler):
        budget = handler.body_budget
        assert (budget.per_host, budget.total) == (None, BODY_BUDGET)
        with closing([]) as held:
            # One host past what its share was: every body is read.
            for _ in range(SHARE + 2):
                held.append(await Client.begin(url, ATTACKER, Encoding.XML, BODY, b"<"))
            await until(lambda: budget.held(ATTACKER) == (SHARE + 2) * BODY)
            assert budget.refused == 0
            status = orjson.loads(await scrape(url, "/status"))
            assert status["request_bodies"]["bound_per_host"] is None
    async with tracker() as (url, handler):
        assert handler.body_budget.per_host == BODY_BUDGET_PER_HOST


async def test_processes_serving_one_port_share_the_bounds_out() -> None:
    # Four worker processes: each holds a quarter of the total and of a host's share, so that
    # together they hold the bounds one process holds (as their connection bounds do).
    async with tracker(processes=4) as (url, handler):
        budget = handler.body_budget
        assert (budget.per_host, budget.total) == (BODY_BUDGET_PER_HOST // 4, BODY_BUDGET // 4)
        with closing([]) as held:
            # A quarter of a share is one body of 1 MiB: the host's second one is refused.
            held.append(await Client.begin(url, ATTACKER, Encoding.XML, BODY, b"<"))
            await until(lambda: budget.held(ATTACKER) == BODY)
            refused = await Client.begin(url, ATTACKER, Encoding.XML, BODY, b"<")
            with closing([refused]):
                assert (await refused.answer())[0] == 503
            # Another host's body is still read.
            honest = await Client.begin(url, HONEST, Encoding.XML, BODY, b"<")
            held.append(honest)
            await until(lambda: budget.held(HONEST) == BODY)
            status = orjson.loads(await scrape(url, "/status"))
            assert status["request_bodies"]["bound"] == BODY_BUDGET // 4
            assert status["request_bodies"]["bound_per_host"] == BODY_BUDGET_PER_HOST // 4
    async with tracker(processes=4, limits=DEFAULT_LIMITS.off()) as (url, handler):
        assert (handler.body_budget.per_host, handler.body_budget.total) == (None, BODY_BUDGET // 4)
