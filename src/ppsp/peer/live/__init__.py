"""Live streaming, sans-I/O: the public face of the ``live_*`` modules.

- :mod:`ppsp.peer.live.identity`: the source's Ed25519 key (:func:`generate_key`,
  :func:`save_key`, :func:`load_key`), the live swarm ID (:func:`live_swarm_id`) and the signed
  :class:`LiveDescription` a viewer fetches and checks (:func:`verify_live_description`);
- :mod:`ppsp.peer.live.envelope`: every chunk signed by the source ("Sign All", RFC 7574
  section 6.1.1), the :class:`ChunkEnvelope` wire format and :func:`verify_envelope`, which
  also refuses replayed and future chunks;
- :mod:`ppsp.peer.live.source`: :class:`LiveSource` (signs and numbers) and
  :class:`LiveChunker` (cuts by time, size and key frame, at MPEG-TS packet boundaries, and
  flags the chunks a player can start with and the last one);
- :mod:`ppsp.peer.live.ts`: :class:`TransportStreamScanner`, which finds a transport stream's
  key frames and program tables;
- :mod:`ppsp.peer.live.window`: :class:`LiveWindow`, the last ``window_s`` seconds of chunks a
  peer keeps and serves, with its CHUNK map;
- :mod:`ppsp.peer.live.playback`: :class:`LivePlayback`, a viewer's playback clock and deadline
  scheduler, and :class:`QoE`, its quality-of-experience figures;
- :mod:`ppsp.peer.live.viewer`: ``LiveViewerPolicy``, every decision of a viewer (whom to ask,
  relay or source, a second relay near the deadline, giving up, bans, PUSH and PULL, what to
  play) as a session policy: events and ``now`` in, actions and the next deadline out.

A viewer's flow: fetch the description for the swarm ID and check it; build a
:class:`LiveWindow` and a :class:`LivePlayback`; for each envelope fetched, decode it, verify
it against the window, add it to the window and tell the playback with its flags
(:meth:`LivePlayback.on_chunk`, then :meth:`LivePlayback.set_floor` with the window's floor);
announce :meth:`LiveWindow.bitmap` as the CHUNK map; request what :meth:`LivePlayback.wanted`
orders first; call :meth:`LivePlayback.due` at :meth:`LivePlayback.next_timer` (and whenever a
chunk arrives) and play what it returns, until it says the stream ended.  All times are Unix
times in seconds, passed in as ``now``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# The names below are loaded on first use (PEP 562), each from its own module: a stored
# download needs the description and window types, not the chunker, the envelope code or the
# transport-stream scanner, and start-up is paid for every module imported.
if TYPE_CHECKING:
    from ppsp.peer.live.envelope import (
        DEFAULT_POLICY,
        ENVELOPE_HEADER_SIZE,
        FLAG_END,
        FLAG_START,
        MAX_CHUNK_PAYLOAD,
        ChunkEnvelope,
        LivePolicy,
        max_index_at,
        signing_message,
        verify_envelope,
    )
    from ppsp.peer.live.identity import (
        LIVE_FORMAT,
        LiveDescription,
        generate_key,
        is_live_description,
        live_swarm_id,
        load_key,
        public_key_bytes,
        save_key,
        verify_live_description,
    )
    from ppsp.peer.live.playback import (
        LivePlayback,
        PlaybackConfig,
        PlaybackState,
        Playout,
        QoE,
        availability_from_bitmaps,
    )
    from ppsp.peer.live.source import (
        DEFAULT_MAX_CHUNK_BYTES,
        TS_PACKET_SIZE,
        LiveChunk,
        LiveChunker,
        LiveSource,
        looks_like_transport_stream,
    )
    from ppsp.peer.live.ts import TransportStreamScanner
    from ppsp.peer.live.window import LiveWindow

_WHERE: dict[str, str] = {
    "ChunkEnvelope": "ppsp.peer.live.envelope",
    "DEFAULT_MAX_CHUNK_BYTES": "ppsp.peer.live.source",
    "DEFAULT_POLICY": "ppsp.peer.live.envelope",
    "ENVELOPE_HEADER_SIZE": "ppsp.peer.live.envelope",
    "FLAG_END": "ppsp.peer.live.envelope",
    "FLAG_START": "ppsp.peer.live.envelope",
    "LIVE_FORMAT": "ppsp.peer.live.identity",
    "LiveChunk": "ppsp.peer.live.source",
    "LiveChunker": "ppsp.peer.live.source",
    "LiveDescription": "ppsp.peer.live.identity",
    "LivePlayback": "ppsp.peer.live.playback",
    "LivePolicy": "ppsp.peer.live.envelope",
    "LiveSource": "ppsp.peer.live.source",
    "LiveWindow": "ppsp.peer.live.window",
    "MAX_CHUNK_PAYLOAD": "ppsp.peer.live.envelope",
    "PlaybackConfig": "ppsp.peer.live.playback",
    "PlaybackState": "ppsp.peer.live.playback",
    "Playout": "ppsp.peer.live.playback",
    "QoE": "ppsp.peer.live.playback",
    "TS_PACKET_SIZE": "ppsp.peer.live.source",
    "TransportStreamScanner": "ppsp.peer.live.ts",
    "availability_from_bitmaps": "ppsp.peer.live.playback",
    "generate_key": "ppsp.peer.live.identity",
    "is_live_description": "ppsp.peer.live.identity",
    "live_swarm_id": "ppsp.peer.live.identity",
    "load_key": "ppsp.peer.live.identity",
    "looks_like_transport_stream": "ppsp.peer.live.source",
    "max_index_at": "ppsp.peer.live.envelope",
    "public_key_bytes": "ppsp.peer.live.identity",
    "save_key": "ppsp.peer.live.identity",
    "signing_message": "ppsp.peer.live.envelope",
    "verify_envelope": "ppsp.peer.live.envelope",
    "verify_live_description": "ppsp.peer.live.identity",
}
"""The module each public name comes from."""


def __getattr__(name: str) -> Any:
    """Import the public name ``name`` from its module on first use, then keep it here."""
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(where), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_MAX_CHUNK_BYTES",
    "DEFAULT_POLICY",
    "ENVELOPE_HEADER_SIZE",
    "FLAG_END",
    "FLAG_START",
    "LIVE_FORMAT",
    "MAX_CHUNK_PAYLOAD",
    "TS_PACKET_SIZE",
    "ChunkEnvelope",
    "LiveChunk",
    "LiveChunker",
    "LiveDescription",
    "LivePlayback",
    "LivePolicy",
    "LiveSource",
    "LiveWindow",
    "PlaybackConfig",
    "PlaybackState",
    "Playout",
    "QoE",
    "TransportStreamScanner",
    "availability_from_bitmaps",
    "generate_key",
    "is_live_description",
    "live_swarm_id",
    "load_key",
    "looks_like_transport_stream",
    "max_index_at",
    "public_key_bytes",
    "save_key",
    "signing_message",
    "verify_envelope",
    "verify_live_description",
]
