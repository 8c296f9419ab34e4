"""The tracker's guard over real loopback sockets: connections, heads, idle time, request rates.

Each attack comes from a loopback address of its own (127.0.0.2), and a legitimate host
(127.0.0.3) checks that it is still served meanwhile.  Every bound is set small for the test,
and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from ppsp.codecs.tracker import codec_for
from ppsp.errors import TrackerErrorCode
from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.limits import Limits
from ppsp.tracker.net.guard import ConnectionGuard, HostRates, RateWarnings, SharedRates, host_of
from ppsp.tracker.net.server import ServerSettings, running_tracker
from ppsp.wire.tracker import (
    ConnectRequest,
    Encoding,
    ErrorResponse,
    ProtocolVersion,
    TrackerResponse,
)

V11 = ProtocolVersion.V1_1
ATTACKER = "127.0.0.2"
OTHER = "127.0.0.3"
PARTIAL_HEAD = b"POST / HTTP/1.1\r\nHost: tracker\r\nContent-Type: application/ppsp-tracker+xml\r\n"


@contextlib.asynccontextmanager
async def tracker(limits: Limits, **settings: object) -> AsyncIterator[tuple[str, int, str]]:
    """A tracker on 127.0.0.1 with ``limits``: (host, port, url)."""
    server = ServerSettings(limits=limits, **settings)  # type: ignore[arg-type]
    async with running_tracker(TrackerConfig(), settings=server) as running:
        host, port = running.url.removeprefix("http://").rsplit(":", 1)
        yield host, int(port), running.url


def connect_body(encoding: Encoding, peer_id: str, tid: str = "1") -> bytes:
    msg = ConnectRequest(version=V11, transaction_id=tid, peer_id=peer_id)
    return codec_for(encoding).encode_request(msg)


async def post(
    url: str, encoding: Encoding, peer_id: str, *, source: str = OTHER
) -> tuple[int, dict[str, str], TrackerResponse | ErrorResponse]:
    """One CONNECT from ``source``, on a connection of its own."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    timeout = aiohttp.ClientTimeout(total=5)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.post(
            url,
            data=connect_body(encoding, peer_id),
            headers={"Content-Type": encoding.content_type},
        ) as resp,
    ):
        body = await resp.read()
        answer = codec_for(encoding).decode_response(body, resp.status, resp.reason or "")
        return resp.status, dict(resp.headers), answer


async def open_partial(host: str, port: int, source: str) -> tuple[asyncio.StreamReader, object]:
    """A connection from ``source`` that sends the start of a head and nothing more."""
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    writer.write(PARTIAL_HEAD)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    return reader, writer


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within ``seconds``."""
    try:
        data = await asyncio.wait_for(reader.read(65536), seconds)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    # The server may answer before closing (it never should here): read to the end.
    while data:
        try:
            data = await asyncio.wait_for(reader.read(65536), seconds)
        except (TimeoutError, ConnectionError):
            return True
    return True


def close_all(writers: list[object]) -> None:
    for writer in writers:
        writer.close()  # type: ignore[attr-defined]


# -- connections and heads --------------------------------------------------------------------


async def test_slow_heads_are_bounded_per_host_and_timed_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """60 slow-header connections from one host: 20 kept, 40 closed at once, the 20 closed
    after the header timeout; another host is served all along, and the log has one warning
    line per kind of refusal, no traceback."""
    caplog.set_level(logging.WARNING)
    limits = Limits(connections_per_host=20, header_timeout=2.0)
    async with tracker(limits) as (host, port, url):
        opened = [await open_partial(host, port, ATTACKER) for _ in range(60)]
        writers = [writer for _, writer in opened]
        try:
            started = time.monotonic()
            status, _, answer = await post(url, Encoding.XML, "legit")
            assert status == 200, answer
            assert time.monotonic() - started < 1.0  # served at once, not after the flood
            closed = await asyncio.gather(*(closed_within(r, 1.0) for r, _ in opened))
            assert closed.count(True) == 40, closed
            # The 20 kept are closed once their head is 2 s late (the watchdog looks 4x/s).
            still_open = [r for (r, _), done in zip(opened, closed, strict=True) if not done]
            late = await asyncio.gather(*(closed_within(r, 5.0) for r in still_open))
            assert all(late)
            status, _, answer = await post(url, Encoding.JSON, "legit-2")
            assert status == 200, answer
        finally:
            close_all(writers)
    warnings = [r for r in caplog.records if ATTACKER in r.getMessage()]
    assert 1 <= len(warnings) <= 2, [r.getMessage() for r in warnings]
    assert "Traceback" not in caplog.text
    assert all(r.exc_info is None for r in caplog.records)


async def test_a_head_sent_a_byte_at_a_time_is_still_timed_out() -> None:
    """Trickling bytes does not keep a head alive: the deadline runs from its first byte."""
    async with tracker(Limits(header_timeout=1.0)) as (host, port, _):
        reader, writer = await asyncio.open_connection(host, port, local_addr=(ATTACKER, 0))
        try:
            deadline = time.monotonic() + 6.0
            closed = False
            for byte in PARTIAL_HEAD * 4:
                writer.write(bytes([byte]))
                try:
                    await writer.drain()
                    data = await asyncio.wait_for(reader.read(1), 0.2)
                except TimeoutError:
                    data = None
                except ConnectionError:
                    data = b""
                if data == b"":
                    closed = True
                    break
                assert time.monotonic() < deadline, "never closed"
            assert closed
        finally:
            writer.close()


async def test_idle_keep_alive_connections_are_closed() -> None:
    async with tracker(Limits(idle_timeout=1.0)) as (host, port, _):
        reader, writer = await asyncio.open_connection(host, port, local_addr=(OTHER, 0))
        try:
            body = connect_body(Encoding.XML, "idle")
            writer.write(
                b"POST / HTTP/1.1\r\nHost: t\r\nContent-Type: application/ppsp-tracker+xml\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await asyncio.wait_for(reader.readexactly(length), 5)
            # Kept alive after the answer, then closed once idle for a second.
            assert not await closed_within(reader, 0.3)
            assert await closed_within(reader, 5.0)
        finally:
            writer.close()


async def test_connections_in_all_are_bounded_even_without_per_host_bounds() -> None:
    limits = Limits(per_host=False, connections_total=10, connections_per_host=2)
    async with tracker(limits) as (host, port, url):
        opened = [await open_partial(host, port, ATTACKER) for _ in range(25)]
        try:
            closed = await asyncio.gather(*(closed_within(r, 1.0) for r, _ in opened))
            # per_host off: one host may hold more than 2, but never more than 10 in all.
            assert closed.count(False) == 10, closed
        finally:
            close_all([w for _, w in opened])
        # Once they are gone, anyone is served again.
        for _ in range(50):
            try:
                status, _, _ = await post(url, Encoding.XML, "after")
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
                continue
            assert status == 200
            break
        else:
            raise AssertionError("never served after the flood")


async def test_limits_off_lets_one_host_open_many_connections_and_send_fast() -> None:
    limits = Limits(
        connections_per_host=2, requests_per_second_per_host=1.0, request_burst_per_host=1
    ).off()
    async with tracker(limits) as (host, port, url):
        opened = [await open_partial(host, port, ATTACKER) for _ in range(10)]
        try:
            closed = await asyncio.gather(*(closed_within(r, 0.5) for r, _ in opened))
            assert not any(closed)
        finally:
            close_all([w for _, w in opened])
        for i in range(20):
            status, _, answer = await post(url, Encoding.JSON, f"p{i}", source=ATTACKER)
            assert status == 200, answer


# -- request rates ----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", [Encoding.XML, Encoding.JSON])
async def test_requests_over_the_rate_are_503_in_their_encoding(
    encoding: Encoding, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    limits = Limits(requests_per_second_per_host=1.0, request_burst_per_host=5)
    async with tracker(limits) as (_, _, url):
        connector = aiohttp.TCPConnector(local_addr=(ATTACKER, 0))
        statuses = []
        async with aiohttp.ClientSession(connector=connector) as session:
            for i in range(15):
                async with session.post(
                    url,
                    data=connect_body(encoding, f"flood{i}"),
                    headers={"Content-Type": encoding.content_type},
                ) as resp:
                    body = await resp.read()
                    statuses.append(resp.status)
                    if resp.status == 503:
                        assert int(resp.headers["Retry-After"]) >= 1
                        # Closed after a refusal: a connection sending requests over its
                        # rate is not answered for as long as it keeps sending.
                        assert resp.headers["Connection"] == "close"
                        assert resp.headers["Content-Type"] == encoding.content_type
                        answer = codec_for(encoding).decode_response(
                            body, resp.status, resp.reason or ""
                        )
                        assert isinstance(answer, ErrorResponse)
                        assert answer.code is TrackerErrorCode.SERVICE_UNAVAILABLE
                        if encoding is Encoding.JSON:
                            assert b'"error_code":5' in body.replace(b" ", b"")
        # The burst goes through (one more may have been refilled), the rest is refused.
        assert statuses[:5] == [200] * 5
        assert statuses.count(503) >= 9, statuses
        # Another host is not affected.
        status, _, answer = await post(url, encoding, "other-host")
        assert status == 200, answer
        # The status page is a request too.
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(local_addr=(ATTACKER, 0))
            ) as session,
            session.get(url + "/status") as resp,
        ):
            assert resp.status == 503
    warnings = [r for r in caplog.records if ATTACKER in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "requests" in warnings[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)


async def test_other_methods_and_pages() -> None:
    async with (
        tracker(Limits()) as (_, _, url),
        aiohttp.ClientSession() as session,
    ):
        async with session.get(url + "/nothing") as resp:
            assert resp.status == 404
        async with session.put(url + "/status", data=b"x") as resp:
            assert resp.status == 405
            assert "POST" in resp.headers["Allow"]
        async with session.get(url + "/status") as resp:
            assert resp.status == 200


def test_host_of() -> None:
    assert host_of("192.0.2.7") == "192.0.2.7"
    assert host_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert host_of("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert host_of("2001:db8:1:2::9") == host_of("2001:db8:1:2:ffff::1")
    assert host_of("fe80::1%eth0") == "fe80::/64"
    assert host_of("not an address") == "not an address"


def test_host_rates_refuse_without_debt_and_refill() -> None:
    rates = HostRates(2.0, 3)
    assert [rates.admit("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rates.admit("a", 0.0) == pytest.approx(0.5)
    assert rates.admit("a", 0.0) == pytest.approx(0.5)  # a refusal costs nothing
    assert rates.admit("b", 0.0) == 0.0  # hosts are independent
    assert rates.admit("a", 0.5) == 0.0  # one token refilled
    assert rates.admit("a", 0.5) > 0
    rates.prune(100.0)
    assert rates.buckets == {}


def test_host_rates_keep_a_bounded_number_of_hosts() -> None:
    rates = HostRates(1.0, 1, max_hosts=100)
    for i in range(1000):
        rates.admit(f"h{i}", 0.0)  # each bucket is left empty: none can be forgotten as full
        assert len(rates.buckets) <= 100


def test_warnings_are_one_per_subject_and_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    warnings = RateWarnings(lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for _ in range(100):
            warnings.warn("h", "refusing %s", "h")
        warnings.warn("g", "refusing %s", "g")
        now[0] = 61.0
        warnings.warn("h", "refusing %s", "h")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "refusing h",
        "refusing g",
        "refusing h (99 more refusals in the last minute)",
    ]


def test_warnings_about_many_hosts_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    warnings = RateWarnings(lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for i in range(10_000):
            warnings.warn(f"h{i}", "refusing %s", i)
        assert len(caplog.records) == 101
        assert "held back" in caplog.records[-1].getMessage()
        now[0] = 60.0
        warnings.warn("later", "refusing %s", "later")
    assert caplog.records[-1].getMessage() == "refusing later"


# -- several processes on one Redis -----------------------------------------------------------


async def test_processes_on_one_redis_share_a_hosts_rate(redis_url: str) -> None:
    """Two processes' buckets for one host draw on one shared bucket: what one admitted, the
    other no longer can (alone, each would admit a whole burst)."""
    url = redis_url.rsplit("/", 1)[0] + "/9"
    first, second = HostRates(0.01, 10), HostRates(0.01, 10)
    shares = [
        SharedRates(rates, url, prefix="test:rate:", clock=lambda: 0.0) for rates in (first, second)
    ]
    try:
        host = f"198.51.100.{time.monotonic_ns() % 250}"
        assert all(first.admit(host, 0.0) == 0.0 for _ in range(10))
        await shares[0].sync()
        # The second process has not heard of the host: one request goes through locally...
        assert second.admit(host, 0.0) == 0.0
        await shares[1].sync()
        # ... and then it knows the shared bucket is empty (even overdrawn by that one).
        assert second.admit(host, 0.0) > 0
        assert second.buckets[host].tokens < 0
        await shares[0].sync()  # nothing admitted since: nothing sent, nothing learnt
        assert first.admit(host, 0.0) > 0
        # Without sharing, a process would admit a whole burst of its own.
        alone = HostRates(0.01, 10)
        assert all(alone.admit(host, 0.0) == 0.0 for _ in range(10))
    finally:
        for share in shares:
            await share.close()


async def test_rates_go_on_locally_when_redis_is_away(caplog: pytest.LogCaptureFixture) -> None:
    from tracker.storage.redis_server import free_port

    rates = HostRates(1.0, 2)
    share = SharedRates(rates, f"redis://127.0.0.1:{free_port()}/0")
    try:
        rates.admit("h", 0.0)
        with caplog.at_level(logging.WARNING):
            await share.sync()
            rates.admit("h", 0.0)
            await share.sync()
        assert len([r for r in caplog.records if "not shared" in r.getMessage()]) == 1
        assert rates.admit("h", 0.0) > 0  # the local bucket still counts
    finally:
        await share.close()


def test_connections_in_all_stay_within_the_descriptor_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 4096))
    assert ConnectionGuard(Limits()).total_bound == 1024 - 128
    assert ConnectionGuard(Limits(connections_total=100)).total_bound == 100
    assert ConnectionGuard(Limits(connections_total=100), processes=3).total_bound == 34
    assert ConnectionGuard(Limits(connections_per_host=64), processes=3).host_bound == 22
