"""The transport stream scanner: key stream, key frames and program tables."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from peer.live.ts_samples import (
    AUDIO_PID,
    PMT_PID,
    VIDEO_PID,
    audio_frame,
    packet,
    pat,
    pes,
    pmt,
    video_frame,
)
from ppsp.peer.live import TransportStreamScanner


def scanner_with_tables() -> TransportStreamScanner:
    scanner = TransportStreamScanner()
    assert scanner.scan(pat()).table
    assert scanner.scan(pmt()).table
    return scanner


def test_tables_name_the_video_as_key_stream() -> None:
    scanner = TransportStreamScanner()
    assert scanner.key_pid is None and not scanner.tables_known
    assert scanner.program_tables() == ()
    # A PMT before its PAT is not recognised as one.
    assert not scanner.scan(pmt()).table
    scanner.scan(pat(cc=3))
    assert scanner.key_pid is None
    scanner.scan(pmt(cc=4))
    assert scanner.tables_known
    assert scanner.key_pid == VIDEO_PID
    assert scanner.program_tables() == (pat(cc=3), pmt(cc=4))
    scanner.scan(pat(cc=5))  # the latest copy is kept
    assert scanner.program_tables()[0] == pat(cc=5)


def test_key_frames_by_idr_or_random_access_indicator() -> None:
    scanner = scanner_with_tables()
    key = video_frame(True, 0, rai=False)
    infos = [scanner.scan(p) for p in key]
    assert [i.key for i in infos] == [True, False, False]  # the IDR in the first packet
    assert all(i.key_stream for i in infos)
    flagged = video_frame(False, 3, rai=True)  # no IDR, but flagged
    assert scanner.scan(flagged[0]).key
    plain = video_frame(False, 6)
    assert not any(scanner.scan(p).key for p in plain)
    audio = scanner.scan(audio_frame(0))
    assert audio.pid == AUDIO_PID and not audio.key_stream and not audio.key


def test_audio_only_program_keys_on_every_audio_frame() -> None:
    scanner = TransportStreamScanner()
    scanner.scan(pat())
    scanner.scan(pmt(streams=((0x0F, AUDIO_PID),)))
    assert scanner.key_pid == AUDIO_PID
    assert scanner.scan(audio_frame(0)).key
    continuation = packet(AUDIO_PID, b"\x22" * 184, cc=1)
    assert not scanner.scan(continuation).key


def test_hevc_and_mpeg2_key_frames() -> None:
    for stream_type, es, key in (
        (0x24, b"\x00\x00\x01\x40\x01", True),  # VPS
        (0x24, b"\x00\x00\x01\x26\x01", True),  # IDR_W_RADL (type 19)
        (0x24, b"\x00\x00\x01\x02\x01", False),  # trailing picture
        (0x02, b"\x00\x00\x01\xb3\x14", True),  # sequence header
        (0x02, b"\x00\x00\x01\x00\x00", False),  # picture start only
        (0xEA, b"\x00\x00\x01\x0f\x00", False),  # VC-1: the indicator only
    ):
        scanner = TransportStreamScanner()
        scanner.scan(pat())
        scanner.scan(pmt(streams=((stream_type, VIDEO_PID),)))
        info = scanner.scan(packet(VIDEO_PID, pes(0xE0, es), start=True))
        assert info.key is key, (stream_type, es)


def test_no_video_or_audio_means_no_key_stream() -> None:
    scanner = TransportStreamScanner()
    scanner.scan(pat())
    scanner.scan(pmt(streams=((0x06, 0x200),)))
    assert scanner.tables_known and scanner.key_pid is None


def test_a_new_pat_drops_programs_it_no_longer_names() -> None:
    scanner = scanner_with_tables()
    scanner.scan(pat(pmt_pid=0x1001))
    assert scanner.key_pid is None and scanner.program_tables() == ()
    assert not scanner.scan(pmt()).table  # PID 0x1000 is no PMT now


def test_a_table_spread_over_packets_is_not_kept() -> None:
    scanner = TransportStreamScanner()
    long_pat = bytearray(pat())
    long_pat[7] = 0xB0 | 0x01  # section_length 256+: does not fit one packet
    scanner.scan(bytes(long_pat))
    assert scanner.program_tables() == () and not scanner.tables_known


def test_not_a_packet() -> None:
    scanner = scanner_with_tables()
    assert scanner.scan(b"\x00" * 188).pid == -1
    assert scanner.scan(b"\x47" * 100).pid == -1
    assert scanner.scan(pmt()).pid == PMT_PID


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=187, max_size=187), max_size=20), st.booleans())
def test_hostile_packets_never_raise(bodies: list[bytes], with_tables: bool) -> None:
    scanner = scanner_with_tables() if with_tables else TransportStreamScanner()
    for body in bodies:
        scanner.scan(b"\x47" + body)
    scanner.program_tables()
