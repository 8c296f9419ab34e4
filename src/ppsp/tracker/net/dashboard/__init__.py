"""The tracker's dashboard: a page at ``GET /`` and the JSON API it reads.

Layer: I/O (part of ``ppsp.tracker.net``).  The handlers read the storage and answer; what
is shown is computed by the sans-I/O :mod:`ppsp.tracker.dashboard`.

- ``GET /``: the page (``static/index.html``), with its script and style sheet under
  ``/dashboard/``: plain HTML, CSS and JavaScript shipped in the package, no build step, nothing
  fetched from elsewhere (a Content-Security-Policy allows this origin only).  The page holds
  no data, so it is served to anyone; it reads the API, and when the tracker requires tokens
  it asks for an operator token once and keeps it in the tab's ``sessionStorage``.
- ``GET /api/swarms?page=N&per_page=M``: one page of the swarms (at most
  :data:`~ppsp.tracker.dashboard.MAX_PER_PAGE`), each with its kind, seeders, leechers,
  traffic and QoE figures, and the tracker's counts and history of the last hour.
- ``GET /api/swarms/{id}``: one swarm with its peers (at most
  :data:`~ppsp.tracker.dashboard.MEMBERS_READ`), their addresses (masked unless
  ``--dashboard-addresses full``) and content-map coverage, and its history.

What is read of a swarm (its members, their statistics and content maps) is answered again
for :data:`~ppsp.tracker.dashboard.READ_AGAIN_AFTER` seconds
(:class:`~ppsp.tracker.dashboard.RecentReads`), so that a swarm is read at most once per
interval for each of the two answers, however often the API is asked.

Every request passes its host's request rate first (503 with ``Retry-After``), as every other
request to the tracker does.  With an auth key, the API needs ``Authorization: Bearer`` with an
operator's token (claim ``role`` = ``operator``, ``ppsp token --operator``): 401 without a
valid token, 403 (``insufficient_scope``) with a valid token that is not an operator's.  Bad
input is answered 400, a swarm without members 404, a storage that does not answer 503, each
with ``{"error": "<one line>"}``.  Request bodies are never read; a request whose body has
not all arrived is answered and its connection closed.
"""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

import orjson

import ppsp
from ppsp.errors import (
    BearerTokenError,
    DashboardNotFound,
    DashboardRequestError,
    ServiceUnavailable,
)
from ppsp.http.server import Request, Response
from ppsp.tracker.dashboard import (
    MAPS_READ_LISTED,
    MEMBERS_READ,
    AddressDisplay,
    History,
    RecentReads,
    SwarmFigures,
    figures_json,
    parse_page,
    parse_swarm_id,
    peer_json,
    peer_rows,
    swarm_figures,
)
from ppsp.tracker.net.auth import REALM, bearer_challenge
from ppsp.tracker.net.handler import AppKey, TrackerHandler, close_unless_read
from ppsp.tracker.net.upkeep import HistorySampler

__all__ = ["ASSETS", "DASHBOARD_APP_KEY", "Dashboard"]

ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""The files served under ``/dashboard/``, with their media types (nothing else is)."""

_PAGE = "index.html"

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
"""Headers of every dashboard answer: this origin's files only, never framed."""

_INSUFFICIENT_SCOPE = (
    f'Bearer realm="{REALM}", error="insufficient_scope", '
    'error_description="an operator token is needed (ppsp token --operator)"'
)
"""The challenge answering a valid token that is not an operator's (RFC 6750 section 3.1)."""

Answer = Callable[[Request], Awaitable[Response]]


class Dashboard:
    """The dashboard's handlers over one tracker application's handler state.

    ``history`` is the ring its charts are drawn from, filled by :attr:`sampler` (which the
    application's upkeep task runs); ``addresses`` says how peers' addresses are shown.
    ``listed`` and ``pages`` keep what was read of each swarm lately, for the list and for
    a swarm's own page.
    """

    def __init__(
        self,
        state: TrackerHandler,
        history: History | None = None,
        addresses: AddressDisplay = AddressDisplay.MASKED,
    ) -> None:
        self.state = state
        self.history = history if history is not None else History()
        self.addresses = AddressDisplay(addresses)
        self.sampler = HistorySampler(state.tracker, state.clock, self.history, health=state.health)
        self.listed: RecentReads[SwarmFigures] = RecentReads()
        self.pages: RecentReads[tuple[SwarmFigures, list[dict[str, Any]]]] = RecentReads()
        static = importlib.resources.files(__name__).joinpath("static")
        self._files = {name: static.joinpath(name).read_bytes() for name in (_PAGE, *ASSETS)}

    def route(self, request: Request) -> Answer | None:
        """The handler of a ``GET`` (or ``HEAD``) of one of the dashboard's paths, else None.

        ``/``, ``/dashboard/{name}`` (one segment), ``/api/swarms`` and ``/api/swarms/{id}``
        (the rest of the path, percent-decoded, whatever ``/`` it holds); the names are in
        the request's ``match_info``.
        """
        path = request.path
        if path == "/":
            return self.page
        if path == "/api/swarms":
            return self.swarms
        if path.startswith("/api/swarms/") and len(path) > 12:
            request.match_info = {"swarm_id": unquote(path[12:])}
            return self.swarm
        segments = request.segments
        if len(segments) == 2 and segments[0] == "dashboard" and segments[1]:
            request.match_info = {"name": segments[1]}
            return self.asset
        return None

    # -- the handlers --------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        """``GET /``: the dashboard's page."""
        return await self._serve(request, self._page, api=False)

    async def asset(self, request: Request) -> Response:
        """``GET /dashboard/{name}``: the page's script, style sheet and icon."""
        return await self._serve(request, self._asset, api=False)

    async def swarms(self, request: Request) -> Response:
        """``GET /api/swarms``: a page of swarms, the tracker's counts and history."""
        return await self._serve(request, self._swarms, api=True)

    async def swarm(self, request: Request) -> Response:
        """``GET /api/swarms/{id}``: one swarm, its peers and its history."""
        return await self._serve(request, self._swarm, api=True)

    # -- what every request passes -------------------------------------------------------------

    async def _serve(self, request: Request, answer: Answer, *, api: bool) -> Response:
        response = await self._checked(request, answer, api)
        # A body that is still arriving is not read: closing costs less than draining it.
        close_unless_read(request)
        return response

    async def _checked(self, request: Request, answer: Answer, api: bool) -> Response:
        state = self.state
        # The host's request rate, as for every request (the handler's own bucket).
        wait = state._over_rate(state._observe(request)[0])
        if wait:
            return _error(503, "too many requests from this address", Retry_After=wait)
        if api and state.verifier is not None:
            credentials = state._credentials(request)
            if isinstance(credentials, BearerTokenError):
                return _error(
                    401,
                    f"authentication required: {credentials}",
                    WWW_Authenticate=bearer_challenge(credentials),
                )
            if credentials is not None and not credentials.operator:
                return _error(
                    403,
                    "this token is not an operator's: the dashboard needs ppsp token --operator",
                    WWW_Authenticate=_INSUFFICIENT_SCOPE,
                )
        try:
            return await answer(request)
        except DashboardRequestError as exc:
            return _error(exc.status, str(exc))
        except ServiceUnavailable as exc:
            state.health.failed(exc, "answering the dashboard")
            return _error(503, "the tracker's storage does not answer")

    # -- the answers ---------------------------------------------------------------------------

    async def _page(self, request: Request) -> Response:
        return self._file(_PAGE, "text/html; charset=utf-8")

    async def _asset(self, request: Request) -> Response:
        name = request.match_info["name"]
        media_type = ASSETS.get(name)
        if media_type is None:
            return Response(
                404,
                b"no such file\n",
                content_type="text/plain; charset=utf-8",
                headers=_SECURITY_HEADERS,
            )
        return self._file(name, media_type)

    def _file(self, name: str, media_type: str) -> Response:
        return Response(
            200,
            self._files[name],
            content_type=media_type,
            headers={**_SECURITY_HEADERS, "Cache-Control": "no-cache"},
        )

    async def _swarms(self, request: Request) -> Response:
        page, per_page = parse_page(request.query)
        storage = self.state.tracker.storage
        counts = await storage.counts()
        listed = await storage.swarm_page((page - 1) * per_page, per_page)
        now = self.state.clock()
        figures = {s: self.listed.get(s, now) for s in listed.swarm_ids}
        unread = [swarm_id for swarm_id, known in figures.items() if known is None]
        if unread:
            views = await storage.swarm_views(unread, limit=MEMBERS_READ, maps=MAPS_READ_LISTED)
            for view in views:
                figures[view.swarm_id] = read = swarm_figures(view)
                self.listed.put(view.swarm_id, now, read)
        self.state.health.answered()
        history = self.history
        return _json(
            {
                "page": page,
                "per_page": per_page,
                "total": listed.total,
                "pages": max(1, math.ceil(listed.total / per_page)),
                "swarms": [
                    figures_json(read, history.latest(read.swarm_id))
                    for read in figures.values()
                    if read is not None and read.members  # a swarm that ended meanwhile: left out
                ],
                "totals": {
                    "peers": counts.peers,
                    "swarms": counts.swarms,
                    "memberships": counts.memberships,
                    "reported": counts.reported,
                    "suspects": counts.suspects,
                },
                "history": history.totals_json(self.state.clock()),
                **self._about(),
            }
        )

    async def _swarm(self, request: Request) -> Response:
        swarm_id = parse_swarm_id(request.match_info["swarm_id"])
        now = self.state.clock()
        read = self.pages.get(swarm_id, now)
        if read is None:
            storage = self.state.tracker.storage
            (view,) = await storage.swarm_views([swarm_id], limit=MEMBERS_READ, maps=MEMBERS_READ)
            self.state.health.answered()
            if view.members == 0:
                raise DashboardNotFound("no such swarm: the tracker has no member of it")
            read = (swarm_figures(view), [peer_json(r) for r in peer_rows(view, self.addresses)])
            self.pages.put(swarm_id, now, read)
        figures, peers = read
        history = self.history
        return _json(
            {
                **figures_json(figures, history.latest(swarm_id)),
                "peers": peers,
                "history": history.swarm_json(swarm_id, self.state.clock()),
                **self._about(),
            }
        )

    def _about(self) -> dict[str, Any]:
        return {
            "addresses": self.addresses.value,
            "tokens": self.state.verifier is not None,
            "software": f"ppsp/{ppsp.__version__}",
        }


DASHBOARD_APP_KEY: AppKey[Dashboard] = AppKey("ppsp_dashboard")
"""Where the application keeps its dashboard (tests drive its sampler through it)."""


def _json(payload: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return Response(
        status,
        orjson.dumps(payload),
        content_type="application/json",
        headers={
            **_SECURITY_HEADERS,
            "Cache-Control": "no-store",
            **{name.replace("_", "-"): value for name, value in headers.items()},
        },
    )


def _error(status: int, message: str, **headers: Any) -> Response:
    """A refusal: ``{"error": message}`` (one line) with ``status`` and ``headers``."""
    if "Retry_After" in headers:
        headers["Retry_After"] = str(max(1, math.ceil(headers["Retry_After"])))
    line = " ".join(message.split())[:300]
    return _json({"error": line}, status, **{k: str(v) for k, v in headers.items()})
