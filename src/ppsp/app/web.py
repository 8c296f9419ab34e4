"""The watch page ``ppsp watch`` serves at its player URL's root, and the figures beside it.

The page (``static/watch.html``, ``watch.js``, ``watch.css``) holds an HTML5 ``<video>``
player and this viewer's figures, which it reads every second from ``/stats.json``.  Stored
content plays from ``/stream`` (Range requests, so the player seeks); a live MPEG-TS stream
plays as HLS (``/live.m3u8``) through hls.js, which ships in ``static/`` (see its README), or
natively where the browser plays HLS itself.  Everything the page loads comes from this
package: no CDN, no build step.

:func:`stored_figures` and :func:`live_figures` are pure (a session in, a JSON-ready dict out);
:class:`WatchPage` adds the page's routes to a player application.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Final

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from ppsp.app.hls import LiveSegmenter
    from ppsp.peer.live import QoE
    from ppsp.peer.live.playback import PlaybackState
    from ppsp.peer.net.session import SwarmSession

STATIC_FILES: Final[dict[str, str]] = {
    "watch.js": "text/javascript; charset=utf-8",
    "watch.css": "text/css; charset=utf-8",
    "hls.min.js": "text/javascript; charset=utf-8",
}
"""The files under ``/static/`` and their media types; any other name is a 404."""

PAGE_SECURITY_POLICY: Final = (
    "default-src 'self'; media-src 'self' blob:; worker-src 'self' blob:; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'none'"
)
"""The page loads nothing but this package's files (hls.js runs its demuxer in a blob worker
and feeds the video element from a blob URL)."""

_COMMON_HEADERS: Final = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _static(name: str) -> bytes:
    return resources.files("ppsp.app").joinpath("static", name).read_bytes()


@functools.cache
def _template() -> str:
    return _static("watch.html").decode("utf-8")


def _connected(session: SwarmSession) -> int:
    return sum(1 for r in session.remotes.values() if r.offer is not None and not r.banned)


def stored_figures(session: SwarmSession | None) -> dict[str, object]:
    """What the page shows for stored content: peers, progress, bytes from seeders (peers that
    announced every chunk) and from other peers, bytes uploaded."""
    if session is None or session.description is None:
        return {"kind": "stored", "state": "joining", "peers": 0}
    description = session.description
    chunks = description.representation().chunk_count
    from_seeders = from_peers = 0
    for remote in session.remotes.values():
        bitmap = remote.bitmap
        if bitmap is not None and bitmap.size > 0 and bitmap.complete:
            from_seeders += remote.bytes_received
        else:
            from_peers += remote.bytes_received
    held = chunks if session.complete else len(session.bitmap())
    return {
        "kind": "stored",
        "swarm_id": session.swarm_id,
        "state": "complete" if session.complete else "downloading",
        "peers": _connected(session),
        "size": description.size,
        "media_type": description.media_type,
        "chunks": chunks,
        "chunks_held": held,
        "progress": held / chunks if chunks else 1.0,
        "bytes_from_seeders": from_seeders,
        "bytes_from_peers": from_peers,
        "uploaded_bytes": session.uploaded_bytes,
    }


def live_figures(
    session: SwarmSession,
    qoe: QoE,
    state: PlaybackState,
    segmenter: LiveSegmenter | None,
) -> dict[str, object]:
    """What the page shows for a live stream: peers, bytes from the source and from peers,
    continuity, delay behind the source, startup delay, chunks played and skipped, uploaded
    bytes, and the HLS playlist's position (``hls`` None when the stream is not offered as
    HLS)."""
    hls: dict[str, object] | None = None
    if segmenter is not None:
        listed = segmenter.listed()
        hls = {
            "segments": len(listed),
            "media_sequence": listed[0].sequence if listed else None,
            "target_duration": segmenter.target,
            "ended": segmenter.ended,
        }
    return {
        "kind": "live",
        "swarm_id": session.swarm_id,
        "state": state.value,
        "peers": _connected(session),
        "bytes_from_source": qoe.bytes_from_source,
        "bytes_from_peers": qoe.bytes_from_peers,
        "continuity": qoe.continuity_index,
        "delay_behind_source": qoe.delay_behind_source,
        "startup_delay": qoe.startup_delay,
        "chunks_played": qoe.chunks_played,
        "chunks_skipped": qoe.chunks_skipped,
        "uploaded_bytes": session.uploaded_bytes,
        "hls": hls,
    }


def render_page(*, kind: str, swarm_id: str, hls: bool) -> str:
    """The watch page for a ``"stored"`` or ``"live"`` swarm (``hls``: offer the stream as
    HLS rather than one continuous response)."""
    if kind not in ("stored", "live"):
        raise ValueError(f"unknown kind {kind!r}")
    template = _template()
    return (
        template.replace("{{KIND}}", kind)
        .replace("{{SWARM_ID}}", html.escape(swarm_id, quote=True))
        .replace("{{HLS}}", "1" if hls else "0")
    )


class WatchPage:
    """The page's routes on a player application: ``/``, ``/stats.json`` and ``/static/*``.

    ``swarm_id`` and ``figures`` are called for every page and every ``/stats.json``.
    """

    def __init__(
        self,
        *,
        kind: str,
        swarm_id: Callable[[], str],
        figures: Callable[[], dict[str, object]],
        hls: bool = False,
    ) -> None:
        render_page(kind=kind, swarm_id="", hls=hls)  # checks the arguments and the template
        self._kind = kind
        self._hls = hls
        self._swarm_id = swarm_id
        self._figures = figures
        self._files: dict[str, bytes] = {}

    def add_routes(self, app: web.Application) -> None:
        """Serve the page, its figures and its files on ``app`` (GET and HEAD)."""
        app.router.add_get("/", self.page)
        app.router.add_get("/stats.json", self.stats)
        app.router.add_get("/static/{name}", self.static)

    async def page(self, request: web.Request) -> web.Response:
        """The watch page."""
        page = render_page(kind=self._kind, swarm_id=self._swarm_id(), hls=self._hls)
        return web.Response(
            body=page.encode("utf-8"),
            content_type="text/html",
            charset="utf-8",
            headers={
                **_COMMON_HEADERS,
                "Cache-Control": "no-cache",
                "Content-Security-Policy": PAGE_SECURITY_POLICY,
            },
        )

    async def stats(self, request: web.Request) -> web.Response:
        """This viewer's figures as JSON."""
        return web.Response(
            body=orjson.dumps(self._figures()),
            content_type="application/json",
            headers={**_COMMON_HEADERS, "Cache-Control": "no-store"},
        )

    async def static(self, request: web.Request) -> web.Response:
        """One of the page's files (:data:`STATIC_FILES`); 404 for any other name."""
        name = request.match_info["name"]
        media_type = STATIC_FILES.get(name)
        if media_type is None:
            raise web.HTTPNotFound(text="no such file")
        body = self._files.get(name)
        if body is None:
            body = self._files[name] = _static(name)
        return web.Response(
            body=body,
            headers={
                **_COMMON_HEADERS,
                "Content-Type": media_type,
                "Cache-Control": "max-age=300",
            },
        )
