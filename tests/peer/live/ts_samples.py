"""Synthetic MPEG transport stream packets for the live tests: tables, video and audio PES."""

from __future__ import annotations

VIDEO_PID = 0x100
AUDIO_PID = 0x101
PMT_PID = 0x1000

AUD = b"\x00\x00\x00\x01\x09\xf0"
SPS = b"\x00\x00\x00\x01\x67\x42\x00\x1e"
PPS = b"\x00\x00\x00\x01\x68\xce\x38\x80"
IDR = b"\x00\x00\x00\x01\x65\x88\x84"
SLICE = b"\x00\x00\x00\x01\x41\x9a\x02"


def packet(
    pid: int, payload: bytes = b"", *, start: bool = False, cc: int = 0, rai: bool = False
) -> bytes:
    """One 188-byte packet; short payloads (and the random access indicator) use an
    adaptation field, as muxers do."""
    assert len(payload) <= (182 if rai else 184)
    if rai or len(payload) < 184:
        length = 183 - len(payload)
        field = bytes([length])
        if length:
            field += bytes([0x40 if rai else 0x00]) + b"\xff" * (length - 1)
        control = 0x30
    else:
        field = b""
        control = 0x10
    first = (0x40 if start else 0) | (pid >> 8) & 0x1F
    return bytes([0x47, first, pid & 0xFF, control | (cc & 0x0F)]) + field + payload


def _section(table_id: int, body: bytes) -> bytes:
    length = len(body) + 4  # the CRC (not checked by the scanner)
    return bytes([table_id, 0xB0 | (length >> 8), length & 0xFF]) + body + b"\xde\xad\xbe\xef"


def pat(cc: int = 0, pmt_pid: int = PMT_PID) -> bytes:
    """A PAT naming one program (1) with its PMT on ``pmt_pid``."""
    body = b"\x00\x01\xc1\x00\x00" + b"\x00\x01" + bytes([0xE0 | pmt_pid >> 8, pmt_pid & 0xFF])
    return packet(0, b"\x00" + _section(0x00, body), start=True, cc=cc)


def pmt(
    cc: int = 0, streams: tuple[tuple[int, int], ...] = ((0x1B, VIDEO_PID), (0x0F, AUDIO_PID))
) -> bytes:
    """A PMT of program 1 listing ``streams`` (stream type, PID)."""
    body = b"\x00\x01\xc1\x00\x00" + bytes([0xE0 | VIDEO_PID >> 8, VIDEO_PID & 0xFF]) + b"\xf0\x00"
    for stream_type, pid in streams:
        body += bytes([stream_type, 0xE0 | pid >> 8, pid & 0xFF]) + b"\xf0\x00"
    return packet(PMT_PID, b"\x00" + _section(0x02, body), start=True, cc=cc)


def pes(stream_id: int, es: bytes) -> bytes:
    """A PES header with a PTS, then ``es``."""
    return b"\x00\x00\x01" + bytes([stream_id]) + b"\x00\x00\x80\x80\x05\x21\x00\x01\x00\x01" + es


def video_frame(key: bool, cc: int, *, rai: bool | None = None, packets: int = 3) -> list[bytes]:
    """A video frame of ``packets`` packets: a key frame starts with AUD, SPS, PPS and an IDR
    slice (and the random access indicator unless ``rai`` is False)."""
    es = AUD + (SPS + PPS + IDR if key else SLICE)
    flag = key if rai is None else rai
    out = [packet(VIDEO_PID, pes(0xE0, es), start=True, cc=cc, rai=flag)]
    out += [packet(VIDEO_PID, b"\x11" * 184, cc=cc + k) for k in range(1, packets)]
    return out


def audio_frame(cc: int) -> bytes:
    """An audio frame in one packet."""
    return packet(AUDIO_PID, pes(0xC0, b"\xff\xf1" + b"\x22" * 40), start=True, cc=cc)


def pid_of(packet_bytes: bytes) -> int:
    """The PID of a packet."""
    return ((packet_bytes[1] & 0x1F) << 8) | packet_bytes[2]
