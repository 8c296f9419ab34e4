"""The real ``ppsp`` command as a subprocess on loopback: tracker, fallback, demo."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from ppsp.tracker.client import Exchange, TrackerClient
from ppsp.tracker.messages import ConnectRequest, Encoding, PeerMode, ProtocolVersion

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
