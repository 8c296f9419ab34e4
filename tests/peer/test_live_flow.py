"""The live pieces together: source -> wire -> verified window -> playback, on a fake clock."""

from __future__ import annotations

from ppsp.errors import StaleChunk
from ppsp.peer.live import (
    ChunkEnvelope,
    LiveChunker,
    LivePlayback,
    LiveSource,
    LiveWindow,
    PlaybackConfig,
    generate_key,
    verify_envelope,
    verify_live_description,
)

T0 = 1_700_000_000.0


def test_source_to_viewer() -> None:
    source = LiveSource.start(generate_key(), now=T0, name="cam", chunk_ms=500, window_s=5)
    chunker = LiveChunker(source)
    packets = b"".join(b"\x47" + bytes([k % 256]) * 187 for k in range(1000))

    # The viewer fetched the description for the swarm ID and checked it.
    desc = verify_live_description(source.description.to_bytes(), source.swarm_id)
    window = LiveWindow.for_description(desc)
    player = LivePlayback(desc, now=T0 + 2.0, config=PlaybackConfig(buffer_s=1.0))

    played: list[int] = []
    wire: list[bytes] = []
    pos = 0
    for tick in range(200):  # 20 s of 100 ms ticks, 5 packets per tick
        now = T0 + tick / 10
        for chunk in chunker.feed(packets[pos : pos + 940], now):
            wire.append(chunk.envelope.encode())
        pos = (pos + 940) % len(packets)
        if now < T0 + 2.0:
            continue  # the viewer is not there yet
        for data in wire:
            envelope = ChunkEnvelope.decode(data)
            try:
                verify_envelope(desc, envelope, now + 0.05, window)
            except StaleChunk:
                continue
            if window.add(envelope):
                player.on_chunk(envelope.index, envelope.timestamp_ms, now + 0.05, nbytes=len(data))
        wire.clear()
        player.set_floor(window.floor, now + 0.05)
        played.extend(player.due(now + 0.05).played)

    qoe = player.qoe()
    assert chunker.transport_stream is True
    assert played == list(range(played[0], played[-1] + 1))
    assert qoe.chunks_skipped == 0
    assert qoe.continuity_index == 1.0
    assert qoe.startup_delay is not None and qoe.startup_delay < 1.0
    # Joined one chunk behind the newest (stamped 1.0 s after T0) at T0 + 2.05: 1.05 s behind.
    assert qoe.delay_behind_source is not None and 1.0 <= qoe.delay_behind_source <= 1.1
    assert len(window) <= window.max_chunks
    assert window.floor > 0  # old chunks were evicted
    bitmap = window.bitmap()
    assert bitmap.start == window.floor and bitmap.end == window.newest
