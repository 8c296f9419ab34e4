"""MPEG transport streams, sans-I/O: where in a live stream a player can start decoding.

A player that joins a live stream in the middle can decode nothing before the video's next
random access point (a key frame: an H.264/HEVC IDR picture with its parameter sets, an MPEG-2
sequence header), and nothing at all before it has read the stream's program tables (the PAT on
PID 0, then the PMT it names).  :class:`TransportStreamScanner` reads a transport stream
(ISO/IEC 13818-1) one 188-byte packet at a time and tells, for each packet:

- whether it belongs to the *key stream*: the first video elementary stream of the first
  program (the first audio stream when the program has no video);
- whether a random access point of the key stream starts in it (:attr:`PacketInfo.key`): a
  packet that starts a PES packet (``payload_unit_start_indicator``) and either carries the
  adaptation field's ``random_access_indicator`` or, for H.264, HEVC and MPEG-1/2 video, whose
  elementary stream bytes hold an IDR picture or a parameter set (H.264 NAL types 5 and 7, HEVC
  types 16-21 and 32-33, the MPEG sequence header ``00 00 01 B3``).  Every PES start of an audio
  key stream is one (audio frames decode on their own);
- whether it is the PAT or a PMT.

It also keeps the latest PAT packet and the latest PMT packet of the key stream's program
(:meth:`~TransportStreamScanner.program_tables`) when each holds its whole section, so that the
live source can put copies in front of a random access point: a viewer that starts there reads
the tables first.  A copy repeats its original byte for byte, continuity counter included, which
the standard allows as a *duplicate packet* (ISO/IEC 13818-1 section 2.4.3.3); demultiplexers
drop or re-read it.

Hostile input is normal input: a malformed packet or table is ignored, never raised about.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "AUDIO_STREAM_TYPES",
    "PAT_PID",
    "TS_PACKET_SIZE",
    "TS_SYNC_BYTE",
    "VIDEO_STREAM_TYPES",
    "PacketInfo",
    "TransportStreamScanner",
]

TS_PACKET_SIZE: Final = 188
"""Size of an MPEG transport stream packet."""

TS_SYNC_BYTE: Final = 0x47
"""The byte every MPEG-TS packet starts with."""

PAT_PID: Final = 0
"""The PID of the program association table."""

H264: Final = "h264"
HEVC: Final = "hevc"
MPEG_VIDEO: Final = "mpeg-video"
OTHER_VIDEO: Final = "video"

VIDEO_STREAM_TYPES: Final[dict[int, str]] = {
    0x01: MPEG_VIDEO,  # MPEG-1 video
    0x02: MPEG_VIDEO,  # MPEG-2 video
    0x10: OTHER_VIDEO,  # MPEG-4 part 2
    0x1B: H264,
    0x20: H264,  # MVC sub-bitstream
    0x24: HEVC,
    0x33: OTHER_VIDEO,  # VVC
    0x42: OTHER_VIDEO,  # AVS
    0xD1: OTHER_VIDEO,  # Dirac
    0xEA: OTHER_VIDEO,  # VC-1
}
"""PMT stream types of video, and how their key frames are recognised."""

AUDIO_STREAM_TYPES: Final = frozenset(
    {0x03, 0x04, 0x0F, 0x11, 0x1C, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x8A}
)
"""PMT stream types of audio (MPEG audio, AAC, LATM, AC-3, DTS, TrueHD, E-AC-3, ...)."""

_NO_HEADER_STREAM_IDS: Final = frozenset({0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF})
"""PES stream IDs without the optional PES header (ISO/IEC 13818-1 table 2-21)."""


@dataclass(frozen=True, slots=True)
class PacketInfo:
    """What :meth:`TransportStreamScanner.scan` learnt from one packet."""

    pid: int
    """The packet's PID (-1 for a packet that is not a transport stream packet)."""
    key_stream: bool = False
    """The packet belongs to the key stream."""
    key: bool = False
    """A random access point of the key stream starts in this packet."""
    table: bool = False
    """The packet carries the PAT or a PMT."""


_NOT_TS: Final = PacketInfo(-1)


class TransportStreamScanner:
    """Reads transport stream packets in order and finds the key stream's random access points."""

    __slots__ = ("_key_pid", "_key_pmt_pid", "_key_type", "_pat", "_pmt_pids", "_pmts", "_streams")

    def __init__(self) -> None:
        self._pat: bytes | None = None
        self._pmt_pids: list[int] = []  # in the PAT's order
        self._pmts: dict[int, bytes] = {}  # PMT PID -> latest whole-section packet
        self._streams: dict[int, list[tuple[int, int]]] = {}  # PMT PID -> [(type, PID)]
        self._key_pid: int | None = None
        self._key_type: str | None = None
        self._key_pmt_pid: int | None = None

    @property
    def key_pid(self) -> int | None:
        """The PID of the key stream (None until a PMT naming a video or audio stream is read)."""
        return self._key_pid

    @property
    def tables_known(self) -> bool:
        """Whether a PAT and a PMT of one of its programs have been read."""
        return self._pat is not None and bool(self._streams)

    def program_tables(self) -> tuple[bytes, ...]:
        """The latest PAT packet and the key program's latest PMT packet, or () if not both.

        Only packets that hold their whole table section are kept, so that a copy of them is
        a complete table.
        """
        if self._pat is None or self._key_pmt_pid is None:
            return ()
        pmt = self._pmts.get(self._key_pmt_pid)
        return () if pmt is None else (self._pat, pmt)

    def scan(self, packet: bytes | bytearray | memoryview) -> PacketInfo:
        """Read one 188-byte packet (in stream order) and say what it is."""
        if len(packet) != TS_PACKET_SIZE or packet[0] != TS_SYNC_BYTE:
            return _NOT_TS
        pid = ((packet[1] & 0x1F) << 8) | packet[2]
        unit_start = bool(packet[1] & 0x40)
        control = (packet[3] >> 4) & 0x3
        offset = 4
        random_access = False
        if control & 0x2:  # adaptation field
            length = packet[4]
            if length > 0:
                random_access = bool(packet[5] & 0x40)
            offset = 5 + length
        if not control & 0x1 or offset >= TS_PACKET_SIZE:
            return PacketInfo(pid, key_stream=pid == self._key_pid)  # no payload
        if pid == PAT_PID:
            if unit_start:
                self._read_pat(bytes(packet), bytes(packet[offset:]))
            return PacketInfo(pid, table=True)
        if pid in self._pmt_pids:
            if unit_start:
                self._read_pmt(pid, bytes(packet), bytes(packet[offset:]))
            return PacketInfo(pid, table=True)
        if pid != self._key_pid:
            return PacketInfo(pid)
        key = unit_start and (random_access or self._starts_picture(bytes(packet[offset:])))
        return PacketInfo(pid, key_stream=True, key=key)

    # ------------------------------------------------------------------ tables

    @staticmethod
    def _section(payload: bytes, table_id: int) -> tuple[bytes, bool] | None:
        """The section that starts in this payload (after the pointer field), and whether it
        is whole; None when it is not a ``table_id`` section."""
        pointer = payload[0]
        start = 1 + pointer
        if start + 3 > len(payload) or payload[start] != table_id:
            return None
        length = ((payload[start + 1] & 0x0F) << 8) | payload[start + 2]
        end = start + 3 + length
        whole = end <= len(payload)
        return payload[start : min(end, len(payload))], whole

    def _read_pat(self, packet: bytes, payload: bytes) -> None:
        found = self._section(payload, 0x00)
        if found is None:
            return
        section, whole = found
        if not whole or len(section) < 12:
            return  # a PAT spread over several packets: not read (programs stay as they were)
        pmt_pids: list[int] = []
        for at in range(8, len(section) - 4 - 3, 4):
            number = (section[at] << 8) | section[at + 1]
            pmt_pid = ((section[at + 2] & 0x1F) << 8) | section[at + 3]
            if number != 0 and pmt_pid not in pmt_pids:  # program 0 names the network PID
                pmt_pids.append(pmt_pid)
        self._pat = packet
        if pmt_pids != self._pmt_pids:
            self._pmt_pids = pmt_pids
            self._pmts = {p: v for p, v in self._pmts.items() if p in pmt_pids}
            self._streams = {p: v for p, v in self._streams.items() if p in pmt_pids}
            self._choose_key_stream()

    def _read_pmt(self, pmt_pid: int, packet: bytes, payload: bytes) -> None:
        found = self._section(payload, 0x02)
        if found is None:
            return
        section, whole = found
        if not whole or len(section) < 16:
            return
        info_length = ((section[10] & 0x0F) << 8) | section[11]
        at = 12 + info_length
        end = len(section) - 4  # the CRC
        streams: list[tuple[int, int]] = []
        while at + 5 <= end:
            stream_type = section[at]
            es_pid = ((section[at + 1] & 0x1F) << 8) | section[at + 2]
            es_info = ((section[at + 3] & 0x0F) << 8) | section[at + 4]
            streams.append((stream_type, es_pid))
            at += 5 + es_info
        self._pmts[pmt_pid] = packet
        if streams != self._streams.get(pmt_pid):
            self._streams[pmt_pid] = streams
            self._choose_key_stream()

    def _choose_key_stream(self) -> None:
        """The first video stream of the first program with one, else the first audio stream."""
        streams = [
            (stream_type, es_pid, pmt_pid)
            for pmt_pid in self._pmt_pids
            for stream_type, es_pid in self._streams.get(pmt_pid, ())
        ]
        video = [
            (VIDEO_STREAM_TYPES[t], pid, pmt) for t, pid, pmt in streams if t in VIDEO_STREAM_TYPES
        ]
        audio = [("audio", pid, pmt) for t, pid, pmt in streams if t in AUDIO_STREAM_TYPES]
        candidates = video or audio
        if not candidates:
            self._key_pid = self._key_type = self._key_pmt_pid = None
        else:
            self._key_type, self._key_pid, self._key_pmt_pid = candidates[0]

    # ------------------------------------------------------------------ key frames

    def _starts_picture(self, payload: bytes) -> bool:
        """Whether the PES packet starting in ``payload`` begins a random access point."""
        kind = self._key_type
        if kind == "audio":
            return True
        if kind not in (H264, HEVC, MPEG_VIDEO):
            return False  # other codecs: the random access indicator only
        if len(payload) < 9 or payload[0:3] != b"\x00\x00\x01":
            return False
        stream_id = payload[3]
        data = payload[6:] if stream_id in _NO_HEADER_STREAM_IDS else payload[9 + payload[8] :]
        return _has_random_access_unit(data, kind)


def _has_random_access_unit(data: bytes, kind: str) -> bool:
    """Whether the elementary stream bytes hold a key frame's NAL unit or header (see above)."""
    at = data.find(b"\x00\x00\x01")
    while 0 <= at < len(data) - 3:
        header = data[at + 3]
        if kind == H264:
            if header & 0x1F in (5, 7):  # IDR slice, sequence parameter set
                return True
        elif kind == HEVC:
            if 16 <= (header >> 1) & 0x3F <= 21 or (header >> 1) & 0x3F in (32, 33):
                return True  # IRAP picture, VPS, SPS
        elif header == 0xB3:  # MPEG-1/2 sequence header
            return True
        at = data.find(b"\x00\x00\x01", at + 3)
    return False
