"""Who ranks live chunk requests by first copies: the source does, a relay does not.

A real peer endpoint on a real socket serves a live chunk, as the source of the stream and as
a viewer relaying it; the fair-serving policy is asked with ``spread`` only at the source.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ppsp.http.server import serve
from ppsp.peer.live import LiveSource, LiveWindow, generate_key
from ppsp.peer.net.node import PeerNode
from ppsp.peer.net.session import LIVE_REPRESENTATION, LiveState, SwarmSession
from ppsp.peer.upload.fair import FairUploads
from ppsp.wire.tracker import PeerMode


@pytest.mark.parametrize("is_source", [True, False])
async def test_only_the_source_ranks_live_requests_by_first_copies(
    is_source: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    now = time.time()
    source = LiveSource.start(generate_key(), now=now - 5, name="cam", chunk_ms=500, window_s=30)
    envelope = source.sign(b"\x47" * 188, round((now - 1) * 1000))
    description = source.description
    window = LiveWindow.for_description(description)
    assert window.add(envelope)
    node = PeerNode(tracker_url="http://127.0.0.1:9/")
    session = SwarmSession(
        swarm_id=description.swarm_id,
        description=None,
        store=None,
        mode=PeerMode.SEED if is_source else PeerMode.LEECH,
        live=LiveState(description=description, window=window, is_source=is_source),
    )
    node.sessions[session.swarm_id] = session
    asked: list[dict[str, Any]] = []
    request = FairUploads.request

    def recording(self: FairUploads, *args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs)
        return request(self, *args, **kwargs)

    monkeypatch.setattr(FairUploads, "request", recording)
    server = await serve(node.endpoint.router(), "127.0.0.2", 0)
    port = server.addresses[0][1]
    path = f"/swarm/{session.swarm_id}/chunk/{LIVE_REPRESENTATION}/{envelope.index}"
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.2:{port}{path}") as answer,
        ):
            assert answer.status == 200
            assert await answer.read() == envelope.encode()
    finally:
        await server.close()
    assert [kwargs.get("spread") for kwargs in asked] == [is_source]
    key = (session.swarm_id, envelope.index)
    assert node.endpoint.uploads.copies(key) == (1 if is_source else 0)
