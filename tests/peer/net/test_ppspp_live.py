"""Live streams over PPSPP on real loopback UDP sockets, in one process.

The source's endpoint signs and serves, a viewer's fetches, verifies and serves again, a third
fetches from the viewer; a forging server's chunks fail the fetch as corrupt.
"""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.errors import ChunkTransferError, IntegrityError
from ppsp.peer.live.identity import public_key_bytes
from ppsp.peer.net.ppspp_live import LivePpsppEndpoint, parse_live_offer
from ppsp.peer.ppspp.live import LIVE_CHUNK_SIZE, live_ppspp_swarm_id
from ppsp.peer.ppspp.live_receiver import LiveReceiverConfig
from ppsp.peer.ppspp.live_server import LiveServer

KEY = Ed25519PrivateKey.generate()
SWARM = live_ppspp_swarm_id(public_key_bytes(KEY))
RECEIVING = LiveReceiverConfig(window_s=30.0, window_chunks=16, handshake_timeout=1.0)


async def viewer() -> LivePpsppEndpoint:
    return await LivePpsppEndpoint.open(
        "127.0.0.1", 0, LiveServer(SWARM, window_chunks=16), RECEIVING
    )


async def test_source_viewer_and_relay() -> None:
    source = await LivePpsppEndpoint.open(
        "127.0.0.1", 0, LiveServer(SWARM, window_chunks=16, signer=KEY.sign)
    )
    first, second = await viewer(), await viewer()
    try:
        chunks = [bytes([i]) * (3 * LIVE_CHUNK_SIZE + i) for i in range(4)]
        for index, data in enumerate(chunks):
            source.append(index, data)
        got = await asyncio.wait_for(
            asyncio.gather(*(first.fetch(source.address, i) for i in range(4))), 5
        )
        assert got == chunks
        first.serve(2)
        uploaded: list[int] = []
        first.server.on_data = lambda swarm, address, nbytes: uploaded.append(nbytes)
        assert await asyncio.wait_for(second.fetch(first.address, 2), 5) == chunks[2]
        assert sum(uploaded) == len(chunks[2])
        # A chunk the relay does not hold is not served by it: the fetch waits (given up).
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(second.fetch(first.address, 3), 0.8)
        assert first.server.stats["request_not_held"] >= 1
        assert first.forged == second.forged == 0
    finally:
        for endpoint in (source, first, second):
            endpoint.close()


async def test_forged_chunks_fail_the_fetch_as_corrupt() -> None:
    impostor = await LivePpsppEndpoint.open(
        "127.0.0.1",
        0,
        LiveServer(SWARM, window_chunks=16, signer=Ed25519PrivateKey.generate().sign),
    )
    me = await viewer()
    try:
        impostor.append(0, b"evil" * 1000)
        with pytest.raises(IntegrityError):
            await asyncio.wait_for(me.fetch(impostor.address, 0), 5)
        assert me.forged == 1
    finally:
        impostor.close()
        me.close()


async def test_nobody_answering_fails_the_fetch() -> None:
    me = await viewer()
    try:  # nobody on the discard port: the handshake goes unanswered (1 s here)
        with pytest.raises(ChunkTransferError, match="no answer"):
            await asyncio.wait_for(me.fetch(("127.0.0.1", 9), 0), 5)
    finally:
        me.close()


def test_offers_name_the_stream() -> None:
    uri = f"ppspp://127.0.0.1:4000/{SWARM.hex()}?chunk={LIVE_CHUNK_SIZE}"
    assert parse_live_offer(uri, SWARM) == ("127.0.0.1", 4000)
    for bad in (
        f"ppspp://127.0.0.1:4000/{bytes(33).hex()}?chunk={LIVE_CHUNK_SIZE}",
        f"ppspp://127.0.0.1:4000/{SWARM.hex()}?chunk=1024",
        f"http://127.0.0.1:4000/{SWARM.hex()}?chunk={LIVE_CHUNK_SIZE}",
        f"ppspp://127.0.0.1/{SWARM.hex()}?chunk={LIVE_CHUNK_SIZE}",
    ):
        with pytest.raises(ValueError):
            parse_live_offer(bad, SWARM)
