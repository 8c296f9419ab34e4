"""Tracker client library: a peer's side of PPSP-TP over HTTP.

:class:`TrackerClient` speaks PPSP-TP/1.1 (XML, or JSON ``"version": 2``) and falls back to
PPSP-TP/1.0 for good when the tracker refuses 1.1 as an unsupported version (huang-01 section
3.4; PROFILE.md).  In 1.0 form

- registration without swarms does not exist: :meth:`TrackerClient.register` is remembered and
  the registration travels with the first :meth:`~TrackerClient.join`, as a CONNECT with a JOIN
  action;
- JOIN becomes CONNECT with a JOIN action, DISCONNECT of swarms becomes CONNECT with LEAVE actions,
  and DISCONNECT of the system leaves every joined swarm;
- FIND is swarm-wide and STAT_REPORT carries no content maps.

The client remembers which swarms it joined and in which mode, for LEAVE and for re-joining after
a fallback or after the tracker forgot it (:meth:`TrackerClient.rejoin`).

Every request is retried on a timeout, a connection error or an answer that cannot be decoded:
the identical bytes with the same transaction ID (RFC 7846 section 4.3), with exponential backoff,
and :class:`~ppsp.errors.TrackerUnreachable` once the retries are spent, whose message is one
sentence saying what went wrong the last time (``tracker 127.0.0.1:7999 refused the connection``,
``tracker 10.0.0.1:7000 did not answer within 5 s``, ``tracker example.org: name not found``,
``tracker answered HTTP 502 Bad Gateway``).  An HTTP status the tracker protocol does not use
(a proxy's 502, for example) is such a failure.  A valid error answer is raised as the
:class:`~ppsp.errors.TrackerProtocolError` subclass of its code.

The tracker URL is checked when the client is built (:func:`check_tracker_url`): a URL without
``http://`` or ``https://`` or without a host is refused at once with
:class:`InvalidTrackerURL`, before any network.

Trust (RFC 7846 section 6.1, docs/PROTOCOL.md "Tracker client"):

- An ``https://`` tracker is verified against the system's trust store plus the extra trust
  anchors of a CA file (:func:`tls_context`).  A certificate that fails verification, or a
  handshake that fails, is not retried (it will not get better): it raises
  :class:`TrackerTLSError` at once, one sentence naming the problem (``tracker
  127.0.0.1:7443: certificate verify failed: self-signed certificate``).
- A bearer token (RFC 6750), given as ``token``, goes with every request as
  ``Authorization: Bearer <token>``.  A 401 answer raises
  :class:`~ppsp.errors.AuthenticationRequired` at once, one sentence saying that a token is
  needed or why the one sent was refused (the ``error_description`` of the answer's
  ``WWW-Authenticate`` challenge).  :func:`token_subject` reads the PeerID a token was issued
  for, without verifying it (only the tracker can).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Literal

import aiohttp
import yarl

from ppsp.codecs.tracker import codec_for
from ppsp.errors import (
    AuthenticationRequired,
    BadRequest,
    Forbidden,
    InternalError,
    NotFound,
    PayloadTooLarge,
    PPSPError,
    RemoteTrackerError,
    ServiceUnavailable,
    TrackerErrorCode,
    TrackerProtocolError,
    TrackerUnreachable,
    UnsupportedVersion,
)
from ppsp.wire.fields import is_token
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    ContentMap,
    DisconnectRequest,
    DisconnectScope,
    Encoding,
    ErrorResponse,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerInfo,
    PeerMode,
    PeerNum,
    ProtocolVersion,
    RepresentationScope,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

__all__ = [
    "DEFAULT_REPORT_INTERVAL",
    "Exchange",
    "InvalidToken",
    "InvalidTrackerURL",
    "InvalidTrustAnchors",
    "StatsProvider",
    "Trace",
    "TrackerClient",
    "TrackerTLSError",
    "bearer_challenge",
    "check_token",
    "check_tracker_url",
    "tls_context",
    "token_subject",
]

log = logging.getLogger(__name__)

DEFAULT_REPORT_INTERVAL = 60.0
"""Seconds between periodic STAT_REPORTs: well inside the default 180 s track timer."""

MAX_ANSWER_BYTES = 4 << 20
"""An answer larger than this is treated as invalid (a peer list is a few kilobytes)."""

StatsProvider = Callable[[], tuple[Sequence[StreamStatistics], Sequence[ContentMap]]]
"""Returns the statistics and content maps to put in the next periodic STAT_REPORT."""

Sleep = Callable[[float], Awaitable[None]]
"""``asyncio.sleep`` or a test's replacement."""

_ERROR_CLASSES: dict[TrackerErrorCode, type[TrackerProtocolError]] = {
    TrackerErrorCode.BAD_REQUEST: BadRequest,
    TrackerErrorCode.UNSUPPORTED_VERSION: UnsupportedVersion,
    TrackerErrorCode.FORBIDDEN: Forbidden,
    TrackerErrorCode.INTERNAL_ERROR: InternalError,
    TrackerErrorCode.SERVICE_UNAVAILABLE: ServiceUnavailable,
    TrackerErrorCode.AUTHENTICATION_REQUIRED: AuthenticationRequired,
    TrackerErrorCode.NOT_FOUND: NotFound,
    TrackerErrorCode.PAYLOAD_TOO_LARGE: PayloadTooLarge,
}

_STATUS_CODES: dict[int, TrackerErrorCode] = {
    404: TrackerErrorCode.NOT_FOUND,
    413: TrackerErrorCode.PAYLOAD_TOO_LARGE,
}

_PROTOCOL_STATUSES = frozenset({200, 400, 401, 403, 404, 413, 500, 503})
"""HTTP statuses a PPSP tracker answers with (docs/PROTOCOL.md); any other is not the tracker's
answer (a proxy's 502, a redirect, ...) and counts as a failed attempt."""

_SCHEMES = ("http", "https")

TOKEN_HINT = "give --token or set PPSP_TOKEN"
"""What a user without a token is told to do when the tracker asks for one."""

_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""RFC 6750 section 2.1 ``b64token``: what may follow ``Bearer`` in the header (a JWT fits)."""

_AUTH_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_\-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)')
"""One ``name=value`` or ``name="quoted value"`` of a ``WWW-Authenticate`` challenge."""

_GENERIC_401_PHRASES = frozenset({"unauthorized", "authentication required", ""})
"""Reason phrases of a 401 that say nothing about the token."""

MAX_CHALLENGE_CHARS = 2048
"""How much of a ``WWW-Authenticate`` header is read; the rest is ignored."""


class InvalidTrackerURL(PPSPError, ValueError):
    """A tracker URL the client cannot use: no ``http://`` or ``https://``, no host, a bad port.

    Both a :class:`~ppsp.errors.PPSPError` and a ValueError; its message is one line.
    """


def check_tracker_url(url: str) -> str:
    """``url`` checked and normalised for use as a tracker URL; raises :class:`InvalidTrackerURL`
    (a ValueError) with a one-line message otherwise.

    The URL needs the scheme ``http`` or ``https`` and a host; a port, if given, is 1-65535.
    Surrounding whitespace is dropped, and the scheme and host are written in lower case.  No
    name is resolved and nothing is sent.
    """
    if not isinstance(url, str):
        raise InvalidTrackerURL(f"the tracker URL must be text, not {type(url).__name__}")
    text = url.strip()
    shown = repr(text[:80])
    if not text:
        raise InvalidTrackerURL("the tracker URL is empty")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise InvalidTrackerURL(f"tracker URL {shown} contains spaces or control characters")
    try:
        parsed = yarl.URL(text)
        port = parsed.explicit_port
    except (ValueError, TypeError) as exc:
        raise InvalidTrackerURL(f"tracker URL {shown} is not a valid URL ({exc})") from None
    scheme = parsed.scheme.lower()
    if scheme not in _SCHEMES:
        if "://" not in text:  # "localhost:7000" reads as the scheme "localhost"
            raise InvalidTrackerURL(
                f"tracker URL {shown} has no scheme: write it as http://{text.lstrip('/')}"
                " (or https://)"
            )
        raise InvalidTrackerURL(
            f"tracker URL {shown} uses the scheme {scheme}: only http:// and https:// work"
        )
    if not parsed.host:
        raise InvalidTrackerURL(f"tracker URL {shown} names no host")
    if port is not None and not 1 <= port <= 65535:
        raise InvalidTrackerURL(f"tracker URL {shown} has port {port}, not 1-65535")
    return str(parsed.with_fragment(None))


class InvalidTrustAnchors(PPSPError, ValueError):
    """A CA file that cannot be used as trust anchors (missing, unreadable, no certificate)."""


class InvalidToken(PPSPError, ValueError):
    """A bearer token the client cannot send or read: not a JWT, no subject, bad characters."""


class TrackerTLSError(TrackerUnreachable):
    """The TLS connection to the tracker failed in a way no retry mends: an untrusted, expired
    or mismatched certificate, or a server that does not speak TLS on the port.  Its message is
    one sentence naming the problem."""


def tls_context(ca_file: str | Path | None = None) -> ssl.SSLContext:
    """The TLS settings for ``https://`` trackers: the system's trust store, TLS 1.2 or later,
    and, with ``ca_file``, the certificates of that PEM file as extra trust anchors.

    Raises :class:`InvalidTrustAnchors` (a ValueError) with a one-line message when the file
    cannot be read or holds no certificate.
    """
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is None:
        return context
    path = Path(ca_file)
    if path.is_dir():
        raise InvalidTrustAnchors(f"CA file {path} is a directory: give a PEM file")
    try:
        context.load_verify_locations(cafile=str(path))
    except (ssl.SSLError, ValueError) as exc:  # an SSLError is an OSError: first
        raise InvalidTrustAnchors(
            f"CA file {path} holds no usable PEM certificate ({_ssl_words(exc)})"
        ) from None
    except OSError as exc:
        raise InvalidTrustAnchors(f"CA file {path}: {_os_reason(exc)}") from None
    return context


def check_token(token: str) -> str:
    """``token`` if it can be sent as a bearer token (RFC 6750 ``b64token``, which every JWT is);
    raises :class:`InvalidToken` (a ValueError) with a one-line message otherwise."""
    text = token.strip()
    if not text:
        raise InvalidToken("the token is empty")
    if not _B64TOKEN.fullmatch(text):
        raise InvalidToken(
            "the token contains characters a bearer token cannot (spaces, quotes, controls)"
        )
    return text


def token_subject(token: str) -> str:
    """The PeerID ``token`` was issued for: its ``sub`` claim, read without verifying it.

    A peer cannot verify its own token (it has no key for that) and does not need to: the
    tracker does.  Raises :class:`InvalidToken` (a ValueError) with a one-line message when the
    token is not a JWT, names no subject, or names one that is not a PeerID.
    """
    import jwt  # PyJWT: imported here, only peers with a token pay for it

    text = check_token(token)
    try:
        claims = jwt.decode(text, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"the token is not a JWT ({_one_line(str(exc))})") from None
    subject = claims.get("sub")
    if subject is None:
        raise InvalidToken("the token names no PeerID (it has no 'sub' claim)")
    if not isinstance(subject, str) or not is_token(subject):
        raise InvalidToken(
            "the token's subject is not a PeerID (1 to 256 characters, no spaces or controls)"
        )
    return subject


def _token_swarms(token: str) -> frozenset[str] | None:
    """The swarms a JWT's ``swarms`` claim lists (read without verifying, only to explain a
    refusal); None when it has no such list or is no JWT (an opaque token)."""
    import jwt

    try:
        listed = jwt.decode(token, options={"verify_signature": False}).get("swarms")
    except jwt.PyJWTError:
        return None
    if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
        return None
    return frozenset(listed)


def _one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line of printable characters, at most ``limit`` of them."""
    words = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return words[:limit]


def _ssl_words(exc: BaseException) -> str:
    """What an ssl error says, without OpenSSL's bracketed prefix and source location."""
    text = (
        exc.strerror
        if isinstance(exc, OSError) and isinstance(exc.strerror, str) and exc.strerror
        else str(exc)
    )
    text = re.sub(r"^\[[A-Z0-9_: ]+\]\s*", "", text)
    text = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", text)
    return _one_line(text, 160) or type(exc).__name__


def bearer_challenge(header: str | None) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate: Bearer ...`` challenge (RFC 6750 section 3).

    Names in lower case, quoted values unquoted; an empty dict when the header is missing or
    holds no Bearer challenge.  Hostile input is normal: only the first
    :data:`MAX_CHALLENGE_CHARS` characters are read.
    """
    if not header:
        return {}
    text = header[:MAX_CHALLENGE_CHARS]
    match = re.search(r"(?i)(?:^|,)\s*bearer(?:\s+|$)", text)
    if match is None:
        return {}
    params: dict[str, str] = {}
    for param in _AUTH_PARAM.finditer(text, match.end()):
        name, value = param.group(1).lower(), param.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(name, value)
    return params


def _tracker_name(url: str, *, with_port: bool = True) -> str:
    """How messages name the tracker of ``url``: its host, and the port the URL gives."""
    parsed = yarl.URL(url)
    host = parsed.host or url
    if ":" in host:
        host = f"[{host}]"
    port = parsed.explicit_port
    return f"{host}:{port}" if with_port and port is not None else host


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """One HTTP round trip, as seen by the client: what went out and what came back.

    ``answer`` is the decoded answer, or ``None`` when it could not be decoded.
    """

    request: AnyRequest
    request_body: bytes
    status: int
    reason: str
    answer_body: bytes
    answer: TrackerResponse | ErrorResponse | None


Trace = Callable[[Exchange], None]
"""Called after every round trip (the demo prints them; tests inspect them)."""


class _InvalidAnswer(Exception):
    """The tracker's answer could not be used (retried like a lost answer)."""


class TrackerClient:
    """An asynchronous PPSP-TP client for one peer and one tracker.

    ``url`` is the tracker's URL (any path); ``peer_id`` the peer's identifier; ``addresses`` the
    addresses the peer advertises (each gets ``peer_protocol`` unless it names one).  ``session``
    is an aiohttp session to share (the client makes and closes its own otherwise).  ``clock`` and
    ``sleep`` drive the periodic reports; ``retries`` is the number of re-sends after the first
    attempt, ``timeout`` the time allowed for each attempt and ``backoff`` the first pause between
    attempts (doubled each time).  ``trace``, if given, sees every round trip.

    ``tls`` is the TLS settings for an ``https://`` tracker (:func:`tls_context`; the system's
    trust store when None); ``token`` a bearer token sent with every request (checked with
    :func:`check_token`).  ``local_address``, an IP address of this host, is where the client's
    connections leave from (a peer serving on one address of a host with several talks to the
    tracker from that address too, so that the tracker sees the host it will list).
    """

    def __init__(
        self,
        url: str,
        peer_id: str,
        *,
        encoding: Encoding = Encoding.XML,
        version: ProtocolVersion = ProtocolVersion.V1_1,
        addresses: Sequence[PeerAddress] = (),
        peer_protocol: str = "PPSP-PP/0.1",
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
        retries: int = 3,
        timeout: float = 5.0,
        backoff: float = 0.25,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        trace: Trace | None = None,
        tls: ssl.SSLContext | None = None,
        token: str | None = None,
        local_address: str | None = None,
    ) -> None:
        self.url = check_tracker_url(url)
        self._local_address = local_address
        self.peer_id = peer_id
        self.encoding = encoding
        self.peer_protocol = peer_protocol
        self._version = version
        self._addresses = tuple(
            a if a.peer_protocol else replace(a, peer_protocol=peer_protocol) for a in addresses
        )
        self._session = session
        self._own_session = session is None
        self._clock = clock
        self._sleep = sleep
        self._retries = max(0, retries)
        self._timeout = timeout
        self._backoff = backoff
        rng = rng or random.SystemRandom()
        self._tid_base = rng.randrange(1, 1 << 30)
        self._tid_count = 0
        self._registered = False
        self._joined: dict[str, PeerMode] = {}
        self._requester: PeerInfo | None = None
        self._last_report: float | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._trace = trace
        self._tls: ssl.SSLContext | bool = tls if tls is not None else True
        self._token = None if token is None else check_token(token)
        self._token_swarms = None if self._token is None else _token_swarms(self._token)
        self._headers = {"Content-Type": encoding.content_type, "Accept": encoding.content_type}
        if self._token is not None:
            self._headers["Authorization"] = f"Bearer {self._token}"
            if yarl.URL(self.url).scheme == "http":
                log.warning(
                    "sending a bearer token to %s in clear text: use https:// (RFC 6750)",
                    _tracker_name(self.url),
                )

    # -- state -------------------------------------------------------------------------------

    @property
    def version(self) -> ProtocolVersion:
        """The protocol version in use (1.0 after a fallback)."""
        return self._version

    @property
    def registered(self) -> bool:
        """Whether the tracker has (or, in 1.0 form, will have at the first join) registered us."""
        return self._registered

    @property
    def joined(self) -> Mapping[str, PeerMode]:
        """Swarms joined, with the mode each was joined in."""
        return dict(self._joined)

    @property
    def requester(self) -> PeerInfo | None:
        """How the tracker last saw this peer (its REFLEXIVE address), when it said so."""
        return self._requester

    # -- operations --------------------------------------------------------------------------

    async def register(self) -> None:
        """Register: a 1.1 CONNECT without swarms (in 1.0 form, deferred to the first join)."""

        def build(version: ProtocolVersion) -> AnyRequest | None:
            if version is ProtocolVersion.V1_0:
                return None
            return ConnectRequest(
                version=version,
                transaction_id=self._new_tid(),
                peer_id=self.peer_id,
                peer_addresses=self._addresses,
            )

        await self._call(build)
        self._registered = True

    async def join(
        self,
        swarm_id: str,
        mode: PeerMode,
        *,
        peer_num: PeerNum | None = None,
        content_group: Sequence[RepresentationScope] = (),
    ) -> list[PeerInfo]:
        """Join ``swarm_id`` as SEED or LEECH; returns the peer list the tracker gave (without us).

        ``content_group`` is the 1.1 joining point; it is dropped in 1.0 form.  A 1.1 client that
        has not registered yet registers first.

        In 1.0 form a peer names its swarms when it connects: a CONNECT with JOIN actions is
        accepted only from a peer the tracker does not track yet.  Joining one more swarm is
        therefore a CONNECT that leaves every joined swarm followed by a CONNECT that joins them
        all again together with the new one.

        A refusal (403) of a swarm that the token's ``swarms`` claim does not list says so.
        """
        try:
            return await self._join(swarm_id, mode, peer_num, content_group)
        except Forbidden as exc:
            swarms = self._token_swarms
            if swarms is None or swarm_id in swarms:
                raise
            reason = f"the token does not allow swarm {swarm_id}"
            raise Forbidden(
                f"tracker {_tracker_name(self.url)} refused JOIN: {reason}",
                transaction_id=exc.transaction_id,
                reason=reason,
            ) from exc

    async def _join(
        self,
        swarm_id: str,
        mode: PeerMode,
        peer_num: PeerNum | None,
        content_group: Sequence[RepresentationScope],
    ) -> list[PeerInfo]:
        if self._version is ProtocolVersion.V1_1 and not self._registered:
            await self.register()
        if self._version is ProtocolVersion.V1_1:
            try:
                response = await self._exchange(
                    self._join_request(
                        ProtocolVersion.V1_1, [(swarm_id, mode)], peer_num, tuple(content_group)
                    )
                )
            except UnsupportedVersion:
                self._fall_back()
            else:
                self._joined[swarm_id] = mode
                return self._peers(response, swarm_id)

        wanted = dict(self._joined)
        wanted[swarm_id] = mode
        if self._registered and self._joined:
            leave = self._leave_request_10(list(self._joined))
            if leave is not None:
                await self._exchange(leave)
            self._registered = False
        response = await self._exchange(
            self._join_request(ProtocolVersion.V1_0, list(wanted.items()), peer_num, ())
        )
        self._registered = True
        self._joined = wanted
        return self._peers(response, swarm_id)

    async def find(
        self,
        swarm_id: str,
        *,
        peer_num: PeerNum | None = None,
        content_group: Sequence[RepresentationScope] = (),
    ) -> list[PeerInfo]:
        """Peers of ``swarm_id`` (holding chunks of ``content_group`` in 1.1), without us."""

        def build(version: ProtocolVersion) -> AnyRequest:
            scope = tuple(content_group) if version is ProtocolVersion.V1_1 else ()
            return FindRequest(
                version=version,
                transaction_id=self._new_tid(),
                peer_id=self.peer_id,
                swarm_id=swarm_id,
                peer_num=peer_num,
                content_group=scope,
            )

        return self._peers(await self._call(build))

    async def report(
        self,
        stream_stats: Sequence[StreamStatistics] = (),
        content_maps: Sequence[ContentMap] = (),
    ) -> None:
        """Send a STAT_REPORT (content maps are dropped in 1.0 form); empty, it is a keep-alive."""
        self._last_report = self._clock()

        def build(version: ProtocolVersion) -> AnyRequest:
            maps = tuple(content_maps) if version is ProtocolVersion.V1_1 else ()
            return StatReportRequest(
                version=version,
                transaction_id=self._new_tid(),
                peer_id=self.peer_id,
                stream_stats=tuple(stream_stats),
                content_maps=maps,
            )

        await self._call(build)

    async def disconnect(self, swarm_ids: Sequence[str] | Literal["ALL"] | None = None) -> None:
        """Leave the named swarms, every swarm (``"ALL"``), or the system (``None``).

        In 1.0 form this is a CONNECT with a LEAVE action for each swarm left; leaving the system
        leaves every joined swarm (and sends nothing when none is joined).
        """
        leave_system = swarm_ids is None
        if swarm_ids is None or swarm_ids == "ALL":
            leaving = list(self._joined)
        else:
            leaving = list(dict.fromkeys(swarm_ids))

        def build(version: ProtocolVersion) -> AnyRequest | None:
            if version is ProtocolVersion.V1_0:
                return self._leave_request_10(leaving)
            if swarm_ids is None:
                return DisconnectRequest(
                    version=version,
                    transaction_id=self._new_tid(),
                    peer_id=self.peer_id,
                    scope=DisconnectScope.SYSTEM,
                )
            if swarm_ids == "ALL":
                return DisconnectRequest(
                    version=version,
                    transaction_id=self._new_tid(),
                    peer_id=self.peer_id,
                    scope=DisconnectScope.ALL_SWARMS,
                )
            tids = self._action_tids(len(leaving))
            return DisconnectRequest(
                version=version,
                transaction_id=tids[0],
                peer_id=self.peer_id,
                scope=DisconnectScope.SWARMS,
                swarms=tuple(
                    SwarmAction(swarm_id=swarm, transaction_id=tid)
                    for swarm, tid in zip(leaving, tids[1:], strict=True)
                ),
            )

        await self._call(build)
        for swarm in leaving:
            self._joined.pop(swarm, None)
        if leave_system or (self._version is ProtocolVersion.V1_0 and not self._joined):
            # A 1.0 tracker deletes the registration with the last swarm left.
            self._registered = False

    async def rejoin(self) -> list[PeerInfo]:
        """Register again and re-join every swarm joined so far (after the tracker forgot us)."""
        self._registered = False
        if self._version is ProtocolVersion.V1_1:
            await self.register()
            if self.version is ProtocolVersion.V1_0 and self._registered:
                return []  # the fallback has re-joined every swarm already
        if not self._joined:
            return []
        actions = list(self._joined.items())

        def build(version: ProtocolVersion) -> AnyRequest:
            return self._join_request(version, actions, None, ())

        response = await self._call(build)
        self._registered = True
        return self._peers(response)

    # -- periodic reports --------------------------------------------------------------------

    def start_reporting(
        self, stats_provider: StatsProvider, interval: float | None = None
    ) -> asyncio.Task[None]:
        """Send a STAT_REPORT every ``interval`` seconds (default 60 s) until stopped or closed.

        Each report carries what ``stats_provider`` returns at that moment.  A report that finds
        the tracker has forgotten this peer (403/404) triggers :meth:`rejoin`; an unreachable
        tracker is logged and tried again at the next interval.
        """
        self.stop_reporting()
        period = DEFAULT_REPORT_INTERVAL if interval is None else interval
        if period <= 0:
            raise ValueError("the report interval must be positive")
        self._reporter = asyncio.create_task(
            self._report_loop(stats_provider, period), name=f"ppsp-report-{self.peer_id}"
        )
        return self._reporter

    def stop_reporting(self) -> None:
        """Stop the periodic reports, if running."""
        if self._reporter is not None:
            self._reporter.cancel()
            self._reporter = None

    async def _report_loop(self, provider: StatsProvider, interval: float) -> None:
        if self._last_report is None:
            self._last_report = self._clock()
        while True:
            delay = self._last_report + interval - self._clock()
            if delay > 0:
                await self._sleep(delay)
                continue
            self._last_report = self._clock()
            stream_stats, content_maps = provider()
            try:
                await self.report(stream_stats, content_maps)
            except (Forbidden, NotFound) as exc:
                log.info("tracker forgot peer %s (%s); joining again", self.peer_id, exc)
                with contextlib.suppress(TrackerProtocolError, TrackerUnreachable):
                    await self.rejoin()
            except TrackerUnreachable as exc:
                log.warning("periodic report failed: %s", exc)
            except TrackerProtocolError as exc:
                log.warning("tracker refused a periodic report: %s", exc)

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop reporting and close the HTTP session if this client made it."""
        task = self._reporter
        self.stop_reporting()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> TrackerClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- machinery ---------------------------------------------------------------------------

    def _new_tid(self) -> str:
        """A transaction ID unique to this client (random base, then counting)."""
        self._tid_count += 1
        return str(self._tid_base + self._tid_count)

    def _action_tids(self, count: int) -> list[str]:
        """Root and per-action IDs: ``[N, N]`` for one action, ``[N.0, N.1, ..., N.k]`` for more."""
        base = self._new_tid()
        if count <= 1:
            return [base, base]
        return [f"{base}.{k}" for k in range(count + 1)]

    def _join_request(
        self,
        version: ProtocolVersion,
        actions: Sequence[tuple[str, PeerMode]],
        peer_num: PeerNum | None,
        content_group: tuple[RepresentationScope, ...],
    ) -> AnyRequest:
        tids = self._action_tids(len(actions))
        hierarchical = len(actions) > 1
        if version is ProtocolVersion.V1_0:
            return ConnectRequest(
                version=version,
                transaction_id=tids[0],
                peer_id=self.peer_id,
                peer_addresses=self._addresses,
                swarm_actions=tuple(
                    SwarmAction(
                        swarm_id=swarm,
                        action=SwarmActionType.JOIN,
                        peer_mode=mode,
                        transaction_id=tid if hierarchical else None,
                    )
                    for (swarm, mode), tid in zip(actions, tids[1:], strict=True)
                ),
                peer_num=peer_num,
            )
        return JoinRequest(
            version=version,
            transaction_id=tids[0],
            peer_id=self.peer_id,
            swarms=tuple(
                SwarmAction(
                    swarm_id=swarm,
                    peer_mode=mode,
                    transaction_id=tid if hierarchical else None,
                )
                for (swarm, mode), tid in zip(actions, tids[1:], strict=True)
            ),
            peer_num=peer_num,
            content_group=content_group,
        )

    def _leave_request_10(self, swarms: Sequence[str]) -> ConnectRequest | None:
        """A 1.0 CONNECT leaving ``swarms`` (None when there is nothing the tracker knows)."""
        if not swarms or not self._registered:
            return None
        tids = self._action_tids(len(swarms))
        hierarchical = len(swarms) > 1
        return ConnectRequest(
            version=ProtocolVersion.V1_0,
            transaction_id=tids[0],
            peer_id=self.peer_id,
            peer_addresses=self._addresses,
            swarm_actions=tuple(
                SwarmAction(
                    swarm_id=swarm,
                    action=SwarmActionType.LEAVE,
                    peer_mode=self._joined.get(swarm, PeerMode.LEECH),
                    transaction_id=tid if hierarchical else None,
                )
                for swarm, tid in zip(swarms, tids[1:], strict=True)
            ),
        )

    def _peers(
        self, response: TrackerResponse | None, swarm_id: str | None = None
    ) -> list[PeerInfo]:
        """The peer list of ``response`` without this peer (and only ``swarm_id``'s, if given)."""
        if response is None:
            return []
        return [
            peer
            for peer in response.peers
            if peer.peer_id != self.peer_id
            and (swarm_id is None or peer.swarm_id in (None, swarm_id))
        ]

    def _fall_back(self) -> None:
        """Switch to PPSP-TP/1.0 for good; the 1.0 tracker knows nothing of us yet."""
        log.info("tracker %s refused PPSP-TP/1.1; falling back to 1.0", self.url)
        self._version = ProtocolVersion.V1_0
        self._registered = False

    async def _call(
        self, build: Callable[[ProtocolVersion], AnyRequest | None]
    ) -> TrackerResponse | None:
        """Send what ``build`` makes for the current version, falling back to 1.0 if refused."""
        request = build(self._version)
        if request is None:
            return None
        try:
            return await self._exchange(request)
        except UnsupportedVersion:
            if self._version is ProtocolVersion.V1_0:
                raise
        self._fall_back()
        if self._joined:
            # Whatever we joined in 1.1 the tracker does not know: join it again in 1.0 form.
            await self._exchange(
                self._join_request(ProtocolVersion.V1_0, list(self._joined.items()), None, ())
            )
            self._registered = True
        request = build(self._version)
        if request is None:
            return None
        return await self._exchange(request)

    async def _exchange(self, request: AnyRequest) -> TrackerResponse:
        """Send ``request`` (re-sending the identical bytes on failure) and return its answer."""
        codec = codec_for(self.encoding)
        body = codec.encode_request(request)
        last: BaseException | None = None
        for attempt in range(self._retries + 1):
            if attempt:
                await self._sleep(self._backoff * (2 ** (attempt - 1)))
                log.debug("re-sending transaction %s (attempt %d)", request.transaction_id, attempt)
            try:
                answer = await self._post(request, body)
                if isinstance(answer, ErrorResponse):
                    error = _error_from(answer)
                    if isinstance(error, ServiceUnavailable):
                        last = error
                        continue
                    raise error
                if not _same_transaction(answer.transaction_id, request.transaction_id):
                    raise _InvalidAnswer(
                        f"tracker {_tracker_name(self.url)} answered transaction "
                        f"{answer.transaction_id!r} instead of {request.transaction_id!r}"
                    )
                if answer.requester is not None:
                    self._requester = answer.requester
                return answer
            except aiohttp.ClientSSLError as exc:
                # A certificate or handshake failure: the same again next time.
                raise TrackerTLSError(self._failure(exc)) from exc
            except (aiohttp.ClientError, TimeoutError, _InvalidAnswer) as exc:
                log.debug("transaction %s failed: %r", request.transaction_id, exc)
                last = exc
        # The sentence of the last failure: what a user reads (docs/PROTOCOL.md).
        raise TrackerUnreachable(self._failure(last)) from last

    def _failure(self, exc: BaseException | None) -> str:
        """One sentence saying what ``exc``, the failure of an attempt, means for the user."""
        where = _tracker_name(self.url)
        if isinstance(exc, TrackerProtocolError):  # 503 on every attempt
            return f"tracker {where} is unavailable ({exc.reason})"
        if isinstance(exc, _InvalidAnswer):
            return str(exc)
        if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
            return f"tracker {where} did not answer within {self._timeout:g} s"
        if isinstance(exc, aiohttp.ClientConnectorDNSError) or (
            isinstance(exc, aiohttp.ClientConnectorError)
            and isinstance(exc.os_error, socket.gaierror)
        ):
            return f"tracker {_tracker_name(self.url, with_port=False)}: name not found"
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return f"tracker {where}: {_certificate_problem(exc.certificate_error)}"
        if isinstance(exc, aiohttp.ClientSSLError):
            return f"tracker {where}: {_handshake_problem(exc)}"
        if isinstance(exc, aiohttp.ClientConnectorError):
            if isinstance(exc.os_error, ConnectionRefusedError):
                return f"tracker {where} refused the connection"
            return f"tracker {where} could not be reached: {_os_reason(exc.os_error)}"
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return f"tracker {where} closed the connection without answering"
        if isinstance(exc, aiohttp.ClientPayloadError):
            return f"tracker {where} sent an incomplete answer"
        if isinstance(exc, aiohttp.ClientResponseError):
            return f"tracker answered HTTP {exc.status}"
        if isinstance(exc, OSError):
            if isinstance(exc, ConnectionResetError):
                return f"tracker {where} reset the connection"
            return f"tracker {where}: {_os_reason(exc)}"
        text = str(exc).splitlines()[0] if exc is not None and str(exc) else ""
        kind = "no answer" if exc is None else type(exc).__name__
        return f"tracker {where}: {kind}" + (f" ({text[:120]})" if text else "")

    async def _post(self, request: AnyRequest, body: bytes) -> TrackerResponse | ErrorResponse:
        session = self._get_session()
        async with session.post(
            self.url,
            data=body,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
            ssl=self._tls,
        ) as response:
            too_large = (
                f"tracker {_tracker_name(self.url)} sent an answer over {MAX_ANSWER_BYTES} bytes"
            )
            if response.content_length is not None and response.content_length > MAX_ANSWER_BYTES:
                raise _InvalidAnswer(too_large)
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.content.iter_any():
                total += len(chunk)
                if total > MAX_ANSWER_BYTES:
                    raise _InvalidAnswer(too_large)
                chunks.append(chunk)
            data = b"".join(chunks)
            status, reason = response.status, response.reason or ""
            challenge = response.headers.get("WWW-Authenticate")
        if status == 401:
            # Whatever the body says (a proxy's page, the tracker's error in our encoding),
            # 401 means the credentials: not retried, one sentence for the user.
            answer401: TrackerResponse | ErrorResponse | None = None
            with contextlib.suppress(RemoteTrackerError):
                answer401 = codec_for(self.encoding).decode_response(data, status, reason)
            self._traced(request, body, status, reason, data, answer401)
            raise self._authentication_failure(challenge, answer401)
        if status not in _PROTOCOL_STATUSES:
            # Not an answer of the tracker protocol: a proxy's, a redirect, another server's.
            self._traced(request, body, status, reason, data, None)
            raise _InvalidAnswer(
                f"tracker answered HTTP {status}" + (f" {reason}" if reason else "")
            )
        answer: TrackerResponse | ErrorResponse | None = None
        try:
            answer = codec_for(self.encoding).decode_response(data, status, reason)
        except RemoteTrackerError as exc:
            raise _InvalidAnswer(
                f"tracker {_tracker_name(self.url)} sent an answer that cannot be read"
                f" (HTTP {status}): {' '.join(str(exc).split())[:200]}"
            ) from exc
        finally:
            self._traced(request, body, status, reason, data, answer)
        if isinstance(answer, ErrorResponse):
            return _refine_error(answer, status)
        return answer

    def _authentication_failure(
        self, challenge: str | None, answer: TrackerResponse | ErrorResponse | None
    ) -> AuthenticationRequired:
        """The error a 401 answer stands for, its message one sentence for the user."""
        where = _tracker_name(self.url)
        params = bearer_challenge(challenge)
        if self._token is None:
            message = f"tracker {where} requires a token: {TOKEN_HINT}"
            reason = "token required"
        else:
            reason = _one_line(params.get("error_description", "")) or _one_line(
                params.get("error", "")
            )
            if not reason and isinstance(answer, ErrorResponse) and answer.reason:
                # The tracker's own words, unless they only repeat the status.
                said = _one_line(answer.reason)
                if said.lower() not in _GENERIC_401_PHRASES:
                    reason = said
            reason = reason or "invalid token"
            message = f"tracker {where} refused the token: {reason}"
        return AuthenticationRequired(
            message,
            transaction_id=answer.transaction_id if isinstance(answer, ErrorResponse) else None,
            reason=reason,
        )

    def _traced(
        self,
        request: AnyRequest,
        body: bytes,
        status: int,
        reason: str,
        data: bytes,
        answer: TrackerResponse | ErrorResponse | None,
    ) -> None:
        if self._trace is not None:
            self._trace(
                Exchange(
                    request=request,
                    request_body=body,
                    status=status,
                    reason=reason,
                    answer_body=data,
                    answer=answer,
                )
            )

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            local = None if self._local_address is None else (self._local_address, 0)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=local))
            self._own_session = True
        return self._session


_UNTRUSTED_ISSUER_CODES = frozenset({2, 18, 19, 20, 21})
"""OpenSSL verify codes meaning "nothing in the trust store vouches for this certificate":
unable to get the issuer, self-signed leaf, self-signed in chain, no local issuer, unable to
verify the first certificate."""


def _certificate_problem(error: BaseException) -> str:
    """``certificate verify failed: <OpenSSL's words>``, with a hint when a CA file would help."""
    if isinstance(error, ssl.SSLCertVerificationError):
        words = _one_line(error.verify_message or "", 160) or _ssl_words(error)
        hint = ""
        if error.verify_code in _UNTRUSTED_ISSUER_CODES:
            hint = " (give --ca-file with the certificate of the CA that issued it)"
        return f"certificate verify failed: {words}{hint}"
    if isinstance(error, ssl.CertificateError):
        return f"certificate verify failed: {_ssl_words(error)}"
    return f"certificate not accepted: {_ssl_words(error)}"


def _handshake_problem(exc: BaseException) -> str:
    """What a failed TLS handshake means: most often, no TLS at all on the other end."""
    error = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else exc
    reason = getattr(error, "reason", None) if isinstance(error, ssl.SSLError) else None
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE"):
        return "TLS handshake failed: it does not speak TLS (write its URL with http://?)"
    return f"TLS handshake failed: {_ssl_words(error if error is not None else exc)}"


def _os_reason(error: OSError | None) -> str:
    """The words of an operating-system error, without its number."""
    if error is None:
        return "connection failed"
    return (error.strerror or str(error) or type(error).__name__).splitlines()[0][:120]


def _error_from(answer: ErrorResponse) -> TrackerProtocolError:
    """The exception an error answer stands for.

    A 1.0 XML tracker refuses 1.1 with ``400`` and the reason phrase ``PPSP version 1.0``; that is
    an unsupported version even if a codec reports it as a plain bad request.
    """
    code = answer.code
    reason = answer.reason or ""
    if code is TrackerErrorCode.BAD_REQUEST and reason.lower().startswith("ppsp version"):
        code = TrackerErrorCode.UNSUPPORTED_VERSION
    cls = _ERROR_CLASSES.get(code, TrackerProtocolError)
    return cls(
        f"tracker answered {code.name}: {reason or code.reason}",
        code=code,
        transaction_id=answer.transaction_id,
        reason=reason or None,
    )


def _same_transaction(answered: str | None, sent: str) -> bool:
    """Whether an answer's transaction ID belongs to the request (root IDs compare by prefix)."""
    if not answered:
        return True
    return answered == sent or answered.split(".", 1)[0] == sent.split(".", 1)[0]


def _refine_error(answer: ErrorResponse, status: int) -> ErrorResponse:
    """Recover 404/413 from the HTTP status of a JSON error answer (whose ``error_code`` is 1)."""
    if answer.code is TrackerErrorCode.BAD_REQUEST and status in _STATUS_CODES:
        return replace(answer, code=_STATUS_CODES[status])
    return answer
