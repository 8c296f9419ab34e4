"""Trackers that share one Redis: several processes on one port, and separate trackers.

Real ``ppsp tracker`` processes against the session's real redis-server (each test on a
database of its own), with real peers downloading through them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator
from collections.abc import Set as AbstractSet
from pathlib import Path

import aiohttp
import pytest

from e2e.swarm_helpers import LISTENING, Peer, Swarm, content, finish
from e2e.tls_helpers import make_tls_files
from ppsp.codecs import tracker_xml as xml_codec
from ppsp.wire.tracker import ConnectRequest, Encoding, ProtocolVersion

pytestmark = pytest.mark.e2e

SIZE = 1 << 20  # 16 chunks of 64 KiB


@pytest.fixture
async def swarm(tmp_path: Path) -> AsyncIterator[Swarm]:
    async with Swarm(tmp_path) as running:
        yield running


def database(redis_url: str, number: int) -> str:
    """The session's Redis URL pointed at database ``number`` (each test has its own)."""
    return redis_url.rsplit("/", 1)[0] + f"/{number}"


def write_source(directory: Path, seed: int) -> tuple[Path, bytes]:
    """A source file to seed, and its bytes."""
    data = content(SIZE, seed=seed)
    source = directory / "source.bin"
    source.write_bytes(data)
    return source, data


def stat_fields(pid: int) -> list[str] | None:
    """The /proc stat fields of ``pid`` after its command name (state first), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (read from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := stat_fields(int(entry))) and int(fields[1]) == pid:
            found.add(int(entry))
    return found


async def wait_for_children(
    pid: int, count: int, *, without: AbstractSet[int] = frozenset()
) -> set[int]:
    """Wait (bounded) until ``pid`` has ``count`` children, none of them in ``without``."""
    for _ in range(200):
        current = children(pid)
        if len(current) == count and not current & without:
            return current
        await asyncio.sleep(0.05)
    raise AssertionError(f"children of {pid}: {children(pid)}, wanted {count} new ones")


async def download(swarm: Swarm, tmp_path: Path, swarm_id: str, name: str, data: bytes) -> None:
    out = tmp_path / f"{name}.bin"
    getter = await swarm.get(swarm_id, out, "--timeout", "30", name=name)
    await finish(getter)
    assert out.read_bytes() == data


async def test_workers_serve_one_port_and_a_killed_worker_is_replaced(
    swarm: Swarm, tmp_path: Path, redis_url: str
) -> None:
    source, data = write_source(tmp_path, seed=3)
    tracker = await swarm.tracker("--workers", "2", "--storage", database(redis_url, 11))
    workers = await wait_for_children(tracker.pid, 2)
    _, swarm_id = await swarm.seed(source)
    await download(swarm, tmp_path, swarm_id, "first", data)

    killed = min(workers)
    os.kill(killed, signal.SIGKILL)
    await wait_for_children(tracker.pid, 2, without={killed})
    # The port kept listening and the state (the seeder's membership) lives on in Redis.
    await download(swarm, tmp_path, swarm_id, "second", data)
    status = await swarm.status()
    assert status["swarms"] == 1

    tracker.signal(signal.SIGTERM)
    assert await tracker.wait() == 0, tracker.output()
    assert "ppsp tracker stopped" in tracker.output()
    assert "exited with -9: starting it again" in tracker.output()
    assert not children(tracker.pid)


async def test_workers_stop_when_their_parent_is_killed(swarm: Swarm, redis_url: str) -> None:
    tracker = await swarm.tracker("--workers", "2", "--storage", database(redis_url, 13))
    workers = await wait_for_children(tracker.pid, 2)
    tracker.signal(signal.SIGKILL)
    for _ in range(200):
        alive = {pid for pid in workers if os.path.exists(f"/proc/{pid}")}
        if not alive or all(_zombie(pid) for pid in alive):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"workers {alive} outlived their parent")


def _zombie(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is None or fields[0] == "Z"


async def test_peers_of_two_trackers_on_one_redis_form_one_swarm(
    swarm: Swarm, tmp_path: Path, redis_url: str
) -> None:
    source, data = write_source(tmp_path, seed=4)
    storage = database(redis_url, 12)
    await swarm.tracker("--storage", storage)
    first_url = swarm.tracker_url
    await swarm.tracker("--storage", storage)
    assert swarm.tracker_url != first_url
    second_url = swarm.tracker_url

    swarm.tracker_url = first_url
    _, swarm_id = await swarm.seed(source)
    # The leecher asks the other tracker: it learns of the seeder through the shared storage.
    swarm.tracker_url = second_url
    await download(swarm, tmp_path, swarm_id, "leecher", data)


async def test_several_workers_need_a_shared_storage(swarm: Swarm) -> None:
    refused: Peer = await swarm.spawn("tracker", "tracker", "--port", "0", "--workers", "2")
    assert await refused.wait() == 2
    assert "share their state only through Redis" in refused.output()


def metrics_dirs(under: Path | None = None) -> set[Path]:
    """The directories where multi-process trackers keep their workers' counters (in the
    temporary directory, or ``under``)."""
    return set((under or Path(tempfile.gettempdir())).glob("ppsp-tracker-metrics-*"))


async def test_metrics_are_the_sums_over_the_workers(
    swarm: Swarm, redis_url: str, tmp_path: Path
) -> None:
    # A temporary directory of the tracker's own: other trackers on the machine make theirs.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    swarm.env["TMPDIR"] = str(scratch)
    tracker = await swarm.tracker("--workers", "2", "--storage", database(redis_url, 14))
    assert len(metrics_dirs(scratch)) == 1
    first, second = sorted(await wait_for_children(tracker.pid, 2))
    url = swarm.tracker_url
    ok = 'ppsp_tracker_requests_total{encoding="xml",method="CONNECT",outcome="ok"}'
    # A stopped worker accepts nothing: every new connection goes to the other one.
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def connect(count: int, prefix: str) -> None:
            for i in range(count):
                msg = ConnectRequest(
                    version=ProtocolVersion.V1_1, transaction_id="1", peer_id=f"{prefix}{i}"
                )
                body = xml_codec.encode_request(msg)
                headers = {"Content-Type": Encoding.XML.content_type}
                async with http.post(url, data=body, headers=headers) as resp:
                    assert resp.status == 200

        async def metrics() -> str:
            async with http.get(url + "/metrics") as resp:
                assert resp.status == 200
                return await resp.text()

        try:
            os.kill(first, signal.SIGSTOP)
            await connect(3, "b")
            assert sample(await metrics(), ok) == 3  # the second worker's own count
            os.kill(first, signal.SIGCONT)
            os.kill(second, signal.SIGSTOP)
            await connect(2, "a")
            text = await metrics()  # the first worker answers: its 2 and the second's 3
            assert sample(text, ok) == 5
            assert sample(text, 'ppsp_tracker_request_duration_seconds_count{encoding="xml"}') == 5
            assert sample(text, "ppsp_tracker_peers") == 5  # the shared count, not a sum
        finally:
            for pid in (first, second):
                os.kill(pid, signal.SIGCONT)
    tracker.signal(signal.SIGTERM)
    assert await tracker.wait() == 0, tracker.output()
    assert metrics_dirs(scratch) == set()  # removed by the parent


def sample(text: str, name: str) -> float:
    """The value of the sample ``name`` (with its labels) in a Prometheus exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in\n{text}")


# -- the guard's bounds across workers ----------------------------------------------------------

WORKERS_WITH_LIMITS = """
import sys
from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.limits import Limits
from ppsp.tracker.net.server import ServerSettings
from ppsp.tracker.net.workers import run_tracker_workers

limits = Limits(
    requests_per_second_per_host=10.0,
    request_burst_per_host=10,
    connections_per_host=10,
    header_timeout=30.0,
)
run_tracker_workers(
    "127.0.0.1", 0, TrackerConfig(), sys.argv[1], workers=2,
    settings=ServerSettings(limits=limits),
    on_ready=lambda url: print(f"listening on {url}", flush=True),
)
"""


async def workers_with_limits(swarm: Swarm, storage: str) -> Peer:
    """Two tracker workers on ``storage`` with small per-host bounds (see the script)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKERS_WITH_LIMITS, storage,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=swarm.env,
        cwd=swarm.workdir,
    )  # fmt: skip
    tracker = Peer("tracker", process)
    swarm.peers.append(tracker)
    swarm.tracker_url = (await tracker.wait_line(LISTENING, stream="stdout")).group(1)
    await wait_for_children(tracker.pid, 2)
    return tracker


async def test_a_hosts_request_rate_holds_across_workers(swarm: Swarm, redis_url: str) -> None:
    """One host sends as fast as it can, on new connections that the kernel spreads over two
    workers: what it gets through stays near one rate and one burst (10/s, 10), not two."""
    tracker = await workers_with_limits(swarm, database(redis_url, 15))
    url = swarm.tracker_url
    body = xml_codec.encode_request(
        ConnectRequest(version=ProtocolVersion.V1_1, transaction_id="1", peer_id="x")
    )
    headers = {"Content-Type": Encoding.XML.content_type}
    statuses: list[int] = []
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), force_close=True)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        loop = asyncio.get_running_loop()
        started = loop.time()
        end = started + 3.0

        async def flood() -> None:
            while loop.time() < end:
                try:
                    async with http.post(url, data=body, headers=headers) as resp:
                        await resp.read()
                        statuses.append(resp.status)
                except aiohttp.ClientOSError:
                    statuses.append(0)  # a connection over the bound, closed at once

        # Four at a time: under the connection bound, even were they all on one worker.
        await asyncio.gather(*(flood() for _ in range(4)))
        elapsed = loop.time() - started
    admitted = statuses.count(200) + statuses.count(403)  # 403: the same PeerID, admitted
    assert statuses.count(503) > 50, statuses  # the flood was refused for the most part
    # One bucket's worth: 10 at once, 10 a second after, plus what each worker may admit
    # from the balance it last saw (one exchange interval, 0.2 s): far below two buckets.
    allowed = 10 + 10 * elapsed
    assert admitted <= allowed + 15, (admitted, allowed, len(statuses))
    # Another host is still served meanwhile.
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(url + "/status") as resp,
    ):
        assert resp.status == 200
    tracker.signal(signal.SIGTERM)
    assert await tracker.wait() == 0, tracker.output()
    assert "Traceback" not in tracker.output()


async def test_a_hosts_connections_are_bounded_across_workers(swarm: Swarm, redis_url: str) -> None:
    tracker = await workers_with_limits(swarm, database(redis_url, 15))
    host, port = swarm.tracker_url.removeprefix("http://").rsplit(":", 1)
    opened = []
    try:
        for _ in range(30):
            reader, writer = await asyncio.open_connection(
                host, int(port), local_addr=("127.0.0.2", 0)
            )
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\n")
            opened.append((reader, writer))

        async def closed(reader: asyncio.StreamReader) -> bool:
            try:
                return await asyncio.wait_for(reader.read(1), 2.0) == b""
            except TimeoutError:
                return False
            except ConnectionError:
                return True

        kept = [not done for done in await asyncio.gather(*(closed(r) for r, _ in opened))]
        # Each worker keeps at most ceil(10 / 2) = 5: at most 10 in all.
        assert 1 <= kept.count(True) <= 10, kept
    finally:
        for _, writer in opened:
            writer.close()
    tracker.signal(signal.SIGTERM)
    assert await tracker.wait() == 0, tracker.output()
    assert "Traceback" not in tracker.output()


async def test_workers_serve_https_only(swarm: Swarm, tmp_path: Path, redis_url: str) -> None:
    files = make_tls_files(tmp_path / "tls")
    tracker = await swarm.spawn(
        "tracker", "tracker", "--host", "127.0.0.1", "--port", "0",
        "--workers", "2", "--storage", database(redis_url, 15),
        "--tls-cert", str(files.cert), "--tls-key", str(files.key),
    )  # fmt: skip
    url = (await tracker.wait_line(r"listening on (https://\S+)", stream="stdout")).group(1)
    await wait_for_children(tracker.pid, 2)
    context = ssl.create_default_context(cafile=str(files.ca))
    # Fresh connections, so that both workers answer some.
    connector = aiohttp.TCPConnector(ssl=context, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        for _ in range(6):
            async with http.get(url + "/status") as resp:
                assert resp.status == 200
    host, port = url.removeprefix("https://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"GET /status HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        try:
            answer = await asyncio.wait_for(reader.read(65536), 10)
        except ConnectionError:
            answer = b""
        assert not answer.startswith(b"HTTP/")  # no clear text on this port
    finally:
        writer.close()
    tracker.signal(signal.SIGTERM)
    assert await tracker.wait() == 0, tracker.output()
    assert "Traceback" not in tracker.output()


async def test_a_worker_that_does_not_stop_is_killed_after_the_grace(
    swarm: Swarm, redis_url: str
) -> None:
    tracker = await swarm.tracker(
        "--workers", "2", "--stop-grace", "1", "--storage", database(redis_url, 14)
    )
    workers = await wait_for_children(tracker.pid, 2)
    # Serving, i.e. asleep in their event loops (a worker still starting dies of SIGTERM).
    for _ in range(200):
        if all((stat_fields(pid) or ("?",))[0] == "S" for pid in workers):
            break
        await asyncio.sleep(0.05)
    hung = min(workers)
    os.kill(hung, signal.SIGSTOP)  # a worker that cannot finish its connections
    try:
        tracker.signal(signal.SIGTERM)
        assert await tracker.wait() == 0, tracker.output()
        assert "still running 1 s after the stop: killing it" in tracker.output()
        assert not children(tracker.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGKILL)
