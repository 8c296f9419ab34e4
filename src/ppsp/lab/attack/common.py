"""What every attacker shares: its settings, its tally, and the swarm as any member sees it.

An attacker talks to the tracker with the project's own client (:class:`TrackerClient`, from
its ``--ip`` address) and to peers with the peer protocol's XML codec and the chunk URLs the
HTTP transport serves (``/swarm/{id}/description``, ``/swarm/{id}/chunk/{rep}/{index}``).
Every loop here is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ppsp.codecs.peer_xml import CONTENT_TYPE as PEER_CONTENT_TYPE
from ppsp.errors import ContentError, PPSPError
from ppsp.peer.content.description import ContentDescription
from ppsp.peer.live.identity import LiveDescription, verify_live_description
from ppsp.peer.protocol.handler import PeerProtocolClient
from ppsp.tracker.net.client import TrackerClient
from ppsp.wire.common import AddressFamily, PeerAddress, PeerInfo
from ppsp.wire.peer import ChunkAvailabilityResponse, RepresentationMap
from ppsp.wire.tracker import PeerMode

HIGHEST_PRIORITY = 4294967295
"""The largest priority a PeerAddress may claim: lists that trust it name the claimant first."""
PEER_PROTOCOL = "PPSP-PP/0.1"
"""The peer protocol every attacker advertises (the honest peers' own)."""
KEEPALIVE_S = 20.0
"""Seconds between an attacker's keep-alive STAT_REPORTs (the tracker expires silent peers)."""
HTTP_TIMEOUT_S = 5.0
"""Bound on one HTTP exchange with a peer."""
MAX_MEMBERS = 64
"""Members an attacker keeps addresses of (the peer lists are shorter anyway)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttackSettings:
    """One attacker's command line (see :mod:`ppsp.lab.attack`)."""

    kind: str
    tracker: str
    swarm: str
    ip: str
    content: str = "vod"
    """``vod`` (a stored content) or ``live`` (a live stream)."""
    lifetime: float = 300.0
    report: Path | None = None
    rate: float = 50.0
    """Messages (forged-push) per second."""
    connections: int = 16
    """Parallel connections (flood)."""
    identities: int = 300
    """PeerIDs to try to register (eclipse)."""
    known: tuple[str, ...] = ()
    """Endpoints of members known besides the tracker's lists (the lab names the source)."""


@dataclass(slots=True)
class Tally:
    """What an attacker did, written as JSON to ``--report`` when it stops."""

    kind: str
    ip: str
    counts: dict[str, int] = field(default_factory=dict)
    peer_ids: list[str] = field(default_factory=list)

    def add(self, name: str, amount: int = 1) -> None:
        """Add ``amount`` to the counter ``name``."""
        self.counts[name] = self.counts.get(name, 0) + amount

    def to_json(self) -> dict[str, Any]:
        """The JSON form of the tally."""
        return {
            "kind": self.kind,
            "ip": self.ip,
            "peer_ids": self.peer_ids[:8],
            "identities": len(self.peer_ids),
            "counts": dict(sorted(self.counts.items())),
        }

    def write(self, path: Path | None) -> None:
        """Write the tally to ``path`` (nothing when None)."""
        if path is not None:
            path.write_bytes(orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2))


def new_peer_id(kind: str) -> str:
    """A fresh PeerID naming the attack kind (the lab's logs stay readable)."""
    return f"{kind}-{secrets.token_hex(6)}"


def http_session(ip: str, *, limit: int = 64) -> aiohttp.ClientSession:
    """An HTTP client whose connections leave from ``ip``."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(local_addr=(ip, 0), limit=limit, limit_per_host=limit),
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


def tracker_client(
    settings: AttackSettings,
    peer_id: str,
    port: int,
    session: aiohttp.ClientSession,
    *,
    priority: int | None = HIGHEST_PRIORITY,
) -> TrackerClient:
    """A tracker client for ``peer_id`` advertising ``settings.ip:port`` (from that address).

    ``session`` is the attack's own aiohttp session to peers; the tracker client talks to the
    tracker over its own HTTP client (:mod:`ppsp.http.client`), from the same address, and
    closes it with itself.
    """
    address = PeerAddress(
        ip=settings.ip,
        port=port,
        family=AddressFamily.IPV4,
        priority=priority,
        peer_protocol=PEER_PROTOCOL,
    )
    return TrackerClient(
        settings.tracker,
        peer_id,
        addresses=(address,),
        peer_protocol=PEER_PROTOCOL,
        local_address=settings.ip,
        retries=1,
        timeout=HTTP_TIMEOUT_S,
    )


def mode_of(settings: AttackSettings) -> PeerMode:
    """SEED for a stored content (seeders are listed first), LEECH for a live stream."""
    return PeerMode.SEED if settings.content == "vod" else PeerMode.LEECH


def member_urls(peers: Sequence[PeerInfo], own_ip: str) -> dict[str, str]:
    """PeerID -> base URL of every listed member not on our own host."""
    urls: dict[str, str] = {}
    for peer in peers:
        if peer.peer_id is None:
            continue
        for address in peer.addresses:
            if address.ip != own_ip and address.port > 0:
                host = f"[{address.ip}]" if ":" in address.ip else address.ip
                urls.setdefault(peer.peer_id, f"http://{host}:{address.port}")
                break
        if len(urls) >= MAX_MEMBERS:
            break
    return urls


async def keep_alive(client: TrackerClient, tally: Tally) -> None:
    """Send a keep-alive STAT_REPORT every :data:`KEEPALIVE_S` until cancelled."""
    while True:
        await asyncio.sleep(KEEPALIVE_S)
        try:
            await client.report()
        except PPSPError:
            tally.add("tracker_refusals")


DESCRIPTION_WAIT = 3.0
"""Seconds an attacker waits for one member's description (members that never answer, the
other attackers' tarpits among them, are listed first)."""


async def fetch_description(
    http: aiohttp.ClientSession, urls: Sequence[str], swarm_id: str, content: str
) -> tuple[bytes, ContentDescription | LiveDescription] | None:
    """The swarm's description from the first member that serves a valid one (None: none).

    Every member is asked at once, each for at most :data:`DESCRIPTION_WAIT` seconds.
    """

    async def ask(base: str) -> tuple[bytes, ContentDescription | LiveDescription] | None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError, ContentError):
            limit = aiohttp.ClientTimeout(total=DESCRIPTION_WAIT)
            async with http.get(f"{base}/swarm/{swarm_id}/description", timeout=limit) as answer:
                if answer.status != 200:
                    return None
                data = await answer.read()
            if content == "live":
                return data, verify_live_description(data, swarm_id)
            description = ContentDescription.from_bytes(data)
            if description.swarm_id == swarm_id:
                return data, description
        return None

    tasks = [asyncio.ensure_future(ask(base)) for base in urls]
    try:
        for finished in asyncio.as_completed(tasks):
            found = await finished
            if found is not None:
                return found
    finally:
        for task in tasks:
            task.cancel()
    return None


async def pull_map(
    http: aiohttp.ClientSession, client: PeerProtocolClient, base: str, swarm_id: str
) -> tuple[RepresentationMap, ...] | None:
    """A member's chunk map by CHUNK_AVAILABILITY PULL (None: no valid answer)."""
    request = client.pull_chunk_map(swarm_id)
    data = client.send(request, time.monotonic())
    try:
        async with http.post(
            f"{base}/", data=data, headers={"Content-Type": PEER_CONTENT_TYPE}
        ) as answer:
            body = await answer.read()
            status = answer.status
    except (aiohttp.ClientError, TimeoutError, OSError):
        client.expire(float("inf"))
        return None
    try:
        response = client.receive(request, body, status)
    except PPSPError:
        return None
    if isinstance(response, ChunkAvailabilityResponse):
        return response.chunk_map
    return None


def ready(kind: str, ip: str, port: int) -> None:
    """Print the ready line the lab waits for."""
    from ppsp.lab.attack import READY

    print(READY.format(kind=kind, ip=ip, port=port), flush=True)


class Swarm:
    """The attacked swarm as a member sees it: its members' URLs, refreshed by FIND."""

    def __init__(self, settings: AttackSettings, client: TrackerClient, tally: Tally) -> None:
        self.settings = settings
        self.client = client
        self.tally = tally
        self.urls: dict[str, str] = {f"known-{n}": url for n, url in enumerate(settings.known)}

    def learn(self, peers: Sequence[PeerInfo]) -> None:
        """Add the members of a peer list (our own host's are left out)."""
        for peer_id, url in member_urls(peers, self.settings.ip).items():
            if len(self.urls) < MAX_MEMBERS or peer_id in self.urls:
                self.urls[peer_id] = url

    async def join(self, mode: PeerMode | None = None) -> None:
        """JOIN the swarm (registering first; ``mode`` default: :func:`mode_of`) and learn the
        list the tracker answers."""
        chosen = mode_of(self.settings) if mode is None else mode
        self.learn(await self.client.join(self.settings.swarm, chosen))

    async def refresh(self) -> None:
        """FIND the swarm's members again (a refusal is counted, not raised)."""
        try:
            self.learn(await self.client.find(self.settings.swarm))
        except PPSPError:
            self.tally.add("tracker_refusals")

    async def refreshing(self, every: float) -> None:
        """Refresh every ``every`` seconds until cancelled (and keep the registration alive)."""
        last_report = time.monotonic()
        while True:
            await asyncio.sleep(every)
            await self.refresh()
            if time.monotonic() - last_report >= KEEPALIVE_S:
                last_report = time.monotonic()
                with contextlib.suppress(PPSPError):
                    await self.client.report()


async def mirror_maps(
    swarm: Swarm, member: Any, http: aiohttp.ClientSession, *, every: float = 1.0
) -> None:
    """Claim the largest chunk map the members hold, PULLed every ``every`` s; PUSH it to them.

    ``member`` is the :class:`~ppsp.lab.attack.member.FakeMember` whose claim is set.  Bounded:
    at most 4 PULLs and 16 PUSHes a round, until cancelled.
    """
    asker = PeerProtocolClient(member.state.peer_id)
    while True:
        best: tuple[RepresentationMap, ...] = ()
        for base in list(swarm.urls.values())[:4]:
            chunk_map = await pull_map(http, asker, base, swarm.settings.swarm)
            if chunk_map and _count(chunk_map) > _count(best):
                best = chunk_map
        if best:
            member.state.claimed = best
            for base in list(swarm.urls.values())[:16]:
                request = asker.push_chunk_map(swarm.settings.swarm, best)
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                    async with http.post(
                        f"{base}/",
                        data=asker.send(request, time.monotonic()),
                        headers={"Content-Type": PEER_CONTENT_TYPE},
                    ) as answer:
                        await answer.read()
                        swarm.tally.add("announcements")
                asker.expire(float("inf"))
        await asyncio.sleep(every)


def _count(chunk_map: Sequence[RepresentationMap]) -> int:
    from ppsp.wire.peer import bitmaps_from_chunk_map

    return sum(
        len(bitmap) for bitmaps in bitmaps_from_chunk_map(chunk_map).values() for bitmap in bitmaps
    )
