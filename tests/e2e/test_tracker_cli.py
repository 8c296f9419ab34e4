"""The real ``ppsp`` command as a subprocess on loopback: tracker, fallback, demo."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from e2e.cli_runner import run_lines
from e2e.swarm_helpers import Swarm
from ppsp.codecs.tracker import codec_for
from ppsp.tracker.net.client import Exchange, TrackerClient
from ppsp.wire.tracker import ConnectRequest, Encoding, PeerMode, ProtocolVersion
from tracker.storage.redis_server import free_port, redis_server

pytestmark = pytest.mark.e2e

LISTENING = re.compile(r"listening on (http://\S+)")
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


@contextlib.asynccontextmanager
async def ppsp_tracker(*args: str) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """Start ``ppsp tracker --port 0 ARGS``; yield its URL; kill it unless the test stopped it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ppsp",
        "tracker",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--log-level",
        "warning",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        match = LISTENING.search(line.decode())
        assert match, line
        yield match.group(1), proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_tracker_serves_and_stops_cleanly(signum: signal.Signals) -> None:
    async with ppsp_tracker() as (url, proc):
        async with aiohttp.ClientSession() as session, session.get(url + "/status") as resp:
            assert resp.status == 200
            assert (await resp.json())["version"] == "1.1"
        async with TrackerClient(url, "e2e-peer") as me:
            await me.join("s", PeerMode.SEED)
        proc.send_signal(signum)
        rc = await asyncio.wait_for(proc.wait(), 20)
        assert proc.stderr is not None and proc.stdout is not None
        stderr = (await proc.stderr.read()).decode()
        stdout = (await proc.stdout.read()).decode()
    assert rc == 0, stderr
    assert "Traceback" not in stderr
    assert "stopped" in stdout


@pytest.mark.parametrize("encoding", [Encoding.XML, Encoding.JSON])
async def test_client_falls_back_against_10_tracker(encoding: Encoding) -> None:
    async with ppsp_tracker("--max-version", "1.0") as (url, proc):
        log: list[Exchange] = []
        async with (
            TrackerClient(url, "seeder", encoding=encoding) as seeder,
            TrackerClient(url, "leecher", encoding=encoding, trace=log.append) as leecher,
        ):
            await seeder.register()
            await seeder.join("movie", PeerMode.SEED)
            await leecher.register()
            peers = await leecher.join("movie", PeerMode.LEECH)
            assert [p.peer_id for p in peers] == ["seeder"]
            assert [p.peer_id for p in await leecher.find("movie")] == ["seeder"]
            await leecher.report()
            await leecher.disconnect(None)
            await seeder.disconnect(None)
            assert seeder.version is leecher.version is ProtocolVersion.V1_0
        # The first request went out in 1.1 and was refused; everything after it is 1.0.
        assert log[0].request.version is ProtocolVersion.V1_1
        assert log[0].status == 400
        if encoding is Encoding.XML:
            assert log[0].reason == "PPSP version 1.0"
        assert all(x.request.version is ProtocolVersion.V1_0 for x in log[1:])
        assert all(x.status == 200 for x in log[1:])
        assert isinstance(log[-1].request, ConnectRequest)  # DISCONNECT(nil) as CONNECT LEAVE
        async with aiohttp.ClientSession() as session, session.get(url + "/status") as resp:
            assert (await resp.json())["peers"] == 0
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_demo_runs_the_seed_session() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ppsp",
        "demo",
        "--session",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    text = stdout.decode()
    for step in (
        "CONNECT",
        "JOIN {swarm_a: SEED}",
        "JOIN {swarm_b: LEECH}",
        "chunk map of swarm_b",
        "FIND {swarm_b}",
        "DISCONNECT {swarm_b}",
        "DISCONNECT (nil)",
    ):
        assert text.count(step) >= 2, step  # once in XML, once in JSON
    assert "<Request>JOIN</Request>" in text
    assert '"request_type": "FIND"' in text
    assert "SUCCESSFUL" in text and '"response_type": 0' in text
    assert "\x1b[" not in text  # plain output when not on a terminal


async def test_bad_storage_is_refused() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ppsp",
        "tracker",
        "--storage",
        "ftp://nowhere",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=ENV,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"--storage" in stderr


# -- start-up and storage failures, the listening line -------------------------------------------


async def run_tracker_until_exit(*args: str) -> tuple[int, str, str]:
    """``ppsp tracker --port 0 ARGS`` that is expected to exit by itself: code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ppsp", "tracker", "--host", "127.0.0.1", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV,
    )  # fmt: skip
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, stdout.decode(), stderr.decode()


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_an_unreachable_storage_is_a_one_line_error_before_listening(workers: str) -> None:
    closed = f"redis://:hidden@127.0.0.1:{free_port()}/0"
    code, stdout, stderr = await run_tracker_until_exit(
        "--storage", closed, "--workers", workers, "--log-level", "info"
    )
    assert code == 1, stderr
    assert "listening" not in stdout + stderr
    assert stderr.count("\n") == 1, stderr
    # click's "Error: " or the command's own prefix, then the message.
    assert ": cannot use the storage redis://:***@127.0.0.1:" in stderr, stderr
    assert "storage unavailable" in stderr and "hidden" not in stderr


BAD_OPTIONS = [
    (["--storage", "redis://127.0.0.1:port/0"], 2, "invalid storage URL"),
    (["--storage", "redis://127.0.0.1/0?socket_timeout=soon"], 2, "invalid storage URL"),
    (["--track-timeout", "nan"], 2, "finite number of seconds"),
    (["--init-timeout", "inf"], 2, "finite number of seconds"),
    (["--host", "256.0.0.1"], 1, "cannot serve on 256.0.0.1"),
]
"""Tracker options refused before it serves: the options, the exit status, the message."""


@pytest.fixture(scope="module")
def refused_trackers(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, str, str]]:
    """``ppsp tracker --host 127.0.0.1 --port 0 ARGS`` of each of :data:`BAD_OPTIONS`, run by
    one child process (:func:`~e2e.cli_runner.run_lines`): code, stdout, stderr."""
    workdir = tmp_path_factory.mktemp("refused")
    results = run_lines(
        [
            (["tracker", "--host", "127.0.0.1", "--port", "0", *args], workdir, {})
            for args, _, _ in BAD_OPTIONS
        ],
        env=ENV,
    )
    return [(result.returncode, result.stdout, result.stderr) for result in results]


@pytest.mark.parametrize(("args", "code", "message"), BAD_OPTIONS)
def test_bad_options_are_refused_without_a_traceback(
    args: list[str], code: int, message: str, refused_trackers: list[tuple[int, str, str]]
) -> None:
    got, stdout, stderr = refused_trackers[BAD_OPTIONS.index((args, code, message))]
    assert got == code, stderr
    assert message in stderr
    assert "Traceback" not in stderr and "listening" not in stdout


async def test_a_port_in_use_is_refused_by_every_kind_of_tracker(redis_url: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = str(busy.getsockname()[1])
        for extra in ([], ["--workers", "2", "--storage", redis_url]):
            code, _, stderr = await run_tracker_until_exit("--port", port, *extra)
            assert code == 1, stderr
            assert f": cannot serve on 127.0.0.1:{port}" in stderr, stderr
            assert stderr.count("\n") == 1, stderr


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_the_listening_line_is_printed_once(
    tmp_path: Path, redis_url: str, workers: str
) -> None:
    storage = redis_url.rsplit("/", 1)[0] + "/15"
    async with Swarm(tmp_path) as swarm:
        tracker = await swarm.spawn(
            "tracker", "tracker", "--host", "127.0.0.1", "--port", "0", "--log-level", "info",
            "--workers", workers, "--storage", storage,
        )  # fmt: skip
        url = (await tracker.wait_line(LISTENING, stream="stdout")).group(1)
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(force_close=True)  # new connections: any worker
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            for _ in range(4):
                async with session.get(url + "/status") as resp:
                    assert resp.status == 200
        tracker.signal(signal.SIGTERM)
        assert await tracker.wait() == 0, tracker.output()
    lines = tracker.stdout + tracker.stderr
    assert [line for line in lines if "listening" in line] == [
        f"ppsp tracker (PPSP-TP/1.1{', 2 workers' if workers == '2' else ''}) listening on {url}"
    ], tracker.output()
    assert [line for line in lines if "stop" in line or "shutting" in line] == [
        "ppsp tracker stopped"
    ], tracker.output()


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_redis_going_away_is_503_and_status_says_so_until_it_is_back(
    tmp_path: Path, workers: str
) -> None:
    xml = Encoding.XML.content_type
    json_type = Encoding.JSON.content_type

    def connect(encoding: Encoding, peer: str) -> bytes:
        msg = ConnectRequest(version=ProtocolVersion.V1_1, transaction_id="1", peer_id=peer)
        return codec_for(encoding).encode_request(msg)

    with redis_server() as server:
        async with ppsp_tracker("--storage", server.url, "--workers", workers) as (url, proc):
            timeout = aiohttp.ClientTimeout(total=20)
            async with aiohttp.ClientSession(timeout=timeout) as http:

                async def post(body: bytes, content_type: str) -> tuple[int, bytes]:
                    headers = {"Content-Type": content_type}
                    async with http.post(url, data=body, headers=headers) as resp:
                        return resp.status, await resp.read()

                async def status() -> tuple[int, dict[str, object]]:
                    async with http.get(url + "/status") as resp:
                        return resp.status, await resp.json()

                assert (await post(connect(Encoding.XML, "before"), xml))[0] == 200
                server.stop()
                assert (await post(connect(Encoding.XML, "during"), xml))[0] == 503
                code, answer = await post(connect(Encoding.JSON, "during"), json_type)
                assert code == 503
                assert orjson.loads(answer)["PPSPTrackerProtocol"]["error_code"] == 5
                code, down = await status()
                assert code == 503 and down["storage"] == "unreachable", down
                server.start()  # back on the same port (empty)
                assert (await post(connect(Encoding.JSON, "after"), json_type))[0] == 200
                code, up = await status()
                assert code == 200 and up["storage"] == "ok", up
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
            assert proc.stderr is not None and proc.stdout is not None
            stderr = (await proc.stderr.read()).decode()
            assert "stopped" in (await proc.stdout.read()).decode()
    assert "Traceback" not in stderr and " ERROR " not in stderr, stderr
    # Each process that saw it fail says so once (not once per request or per second).
    failures = [line for line in stderr.splitlines() if "failed: storage unavailable" in line]
    assert 1 <= len(failures) <= int(workers), stderr
