"""The live pieces together: source -> wire -> verified window -> playback, on a fake clock."""

from __future__ import annotations

from peer.live.ts_samples import PMT_PID, SPS, VIDEO_PID, audio_frame, pat, pid_of, pmt, video_frame
from ppsp.errors import StaleChunk
from ppsp.peer.live import (
    TS_PACKET_SIZE,
    ChunkEnvelope,
    LiveChunker,
    LivePlayback,
    LiveSource,
    LiveWindow,
    PlaybackConfig,
    PlaybackState,
    generate_key,
    verify_envelope,
    verify_live_description,
)

T0 = 1_700_000_000.0


def frame(f: int) -> bytes:
    """Frame ``f`` of a 25 fps stream with a key frame a second and tables every 0.2 s."""
    tables = pat(f) + pmt(f) if f % 5 == 0 else b""
    return tables + b"".join(video_frame(f % 25 == 0, 3 * f)) + audio_frame(f)


def test_source_to_viewer() -> None:
    source = LiveSource.start(generate_key(), now=T0, name="cam", chunk_ms=500, window_s=5)
    chunker = LiveChunker(source)

    # The viewer fetched the description for the swarm ID and checked it; it joins 2.1 s in.
    desc = verify_live_description(source.description.to_bytes(), source.swarm_id)
    window = LiveWindow.for_description(desc)
    player = LivePlayback(desc, now=T0 + 2.1, config=PlaybackConfig(buffer_s=1.0))

    played: list[int] = []
    wire: list[bytes] = []
    ended = False
    frames = 20 * 25  # 20 s, then the input ends
    for tick in range(frames + 50):  # 40 ms ticks
        now = T0 + tick / 25
        if tick < frames:
            chunks = chunker.poll(now) + chunker.feed(frame(tick), now)
        else:
            chunks = chunker.flush(now)
        wire += [chunk.envelope.encode() for chunk in chunks]
        if now < T0 + 2.1:
            continue  # the viewer is not there yet
        for data in wire:
            envelope = ChunkEnvelope.decode(data)
            try:
                verify_envelope(desc, envelope, now + 0.05, window)
            except StaleChunk:
                continue
            if window.add(envelope):
                player.on_chunk(
                    envelope.index,
                    envelope.timestamp_ms,
                    now + 0.05,
                    nbytes=len(data),
                    start=envelope.start,
                    end=envelope.end,
                )
        wire.clear()
        player.set_floor(window.floor, now + 0.05)
        out = player.due(now + 0.05)
        if played == [] and out.played:
            # The first chunk played is a start point: tables, then a key frame.
            first = window.get(out.played[0])
            assert first.start
            pids = [pid_of(first.payload[k : k + 188]) for k in range(0, 3 * 188, 188)]
            assert pids == [0, PMT_PID, VIDEO_PID]
            assert SPS in first.payload[2 * TS_PACKET_SIZE : 3 * TS_PACKET_SIZE]
        played.extend(out.played)
        ended = ended or out.ended

    qoe = player.qoe()
    assert ended and player.state is PlaybackState.ENDED
    assert chunker.transport_stream is True
    assert played == list(range(played[0], played[-1] + 1))
    assert played[-1] == player.end
    # Every chunk played, none skipped, the wait after the end not counted.
    assert qoe.chunks_skipped == 0
    assert qoe.continuity_index == 1.0
    assert qoe.startup_delay is not None and qoe.startup_delay < 1.0
    assert qoe.delay_behind_source is not None and 0.5 <= qoe.delay_behind_source <= 2.0
    assert len(window) <= window.max_chunks
    assert window.floor > 0  # old chunks were evicted
    bitmap = window.bitmap()
    assert bitmap.start == window.floor and bitmap.end == window.newest
