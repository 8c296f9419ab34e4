"""``ppsp demo``: the seed's PPSP-TP/1.1 example session, replayed over real HTTP.

A tracker is started in-process on a free loopback port; one peer then walks through the session
of the seed's slide "Example of a Session for PPSP-TP/1.1"::

    CONNECT, JOIN(swarm_a: SEED), STAT_REPORT(activity), JOIN(swarm_b: LEECH) -> peer list,
    STAT_REPORT(chunk map of swarm_b), FIND(swarm_b) -> peer list, DISCONNECT(swarm_b),
    STAT_REPORT(activity), DISCONNECT(nil) -> BYE

Two other peers join ``swarm_b`` first so that the peer lists are not empty.  Every request and
answer of the session's peer is printed: with colour and panels on a terminal, as plain text
otherwise.  The session runs in XML, then in JSON.  The module is meant to grow into the swarm
demo (peers exchanging chunks) once the peer side exists.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax

from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.net.client import Exchange, TrackerClient
from ppsp.tracker.net.server import running_tracker
from ppsp.wire.tracker import (
    ContentMap,
    Encoding,
    PeerAddress,
    PeerInfo,
    PeerMode,
    RepresentationMap,
    SegmentMap,
    StreamStatistics,
)

__all__ = ["SessionPrinter", "replay_seed_session", "run_demo"]

SESSION_PEER = "656164657221"
"""Peer ID of the session's peer (the drafts' example peer)."""

OTHER_PEERS = ("956264622298", "3332001256741")
"""The two peers that populate ``swarm_b`` (the drafts' example peer list)."""


class DemoFailed(RuntimeError):
    """The session did not go as the seed describes."""


class SessionPrinter:
    """Prints the steps and round trips of a session on a rich console.

    On a terminal each message is a highlighted panel; otherwise plain text, so that logs and
    pipes get readable output.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)
        self.fancy = self.console.is_terminal
        self.exchanges = 0

    def title(self, text: str) -> None:
        """Start a section."""
        if self.fancy:
            self.console.rule(f"[bold]{text}")
        else:
            self.console.print(f"\n===== {text} =====", markup=False, soft_wrap=True)

    def step(self, text: str) -> None:
        """Announce the next step of the session."""
        if self.fancy:
            self.console.print(f"\n[bold cyan]>> {text}[/]")
        else:
            self.console.print(f"\n>> {text}", markup=False, soft_wrap=True)

    def note(self, text: str) -> None:
        """A remark between steps."""
        if self.fancy:
            self.console.print(f"[dim]{text}[/]")
        else:
            self.console.print(f"({text})", markup=False, soft_wrap=True)

    def exchange(self, exchange: Exchange) -> None:
        """Print one request and its answer."""
        self.exchanges += 1
        language = "json" if exchange.request_body.lstrip().startswith(b"{") else "xml"
        request = _pretty(exchange.request_body, language)
        answer = _pretty(exchange.answer_body, language) if exchange.answer_body else "(no body)"
        head = f"POST {exchange.request.method.value} (PPSP-TP/{exchange.request.version.value})"
        status = f"HTTP {exchange.status} {exchange.reason}"
        if self.fancy:
            self.console.print(Panel(Syntax(request, language, word_wrap=True), title=head))
            self.console.print(Panel(Syntax(answer, language, word_wrap=True), title=status))
        else:
            self.console.print(f"--> {head}", markup=False, soft_wrap=True)
            self.console.print(request, markup=False, soft_wrap=True)
            self.console.print(f"<-- {status}", markup=False, soft_wrap=True)
            self.console.print(answer, markup=False, soft_wrap=True)

    def peers(self, peers: Sequence[PeerInfo]) -> None:
        """Summarise a returned peer list."""
        listed = ", ".join(
            f"{p.peer_id}@{p.addresses[0].ip}:{p.addresses[0].port}" if p.addresses else str(p)
            for p in peers
        )
        self.note(f"peer list: {listed or 'empty'}")


def _pretty(body: bytes, language: str) -> str:
    text = body.decode("utf-8", errors="replace")
    if language == "json":
        try:
            return json.dumps(json.loads(text), indent=2)
        except ValueError:
            return text
    return text.strip()


async def replay_seed_session(url: str, encoding: Encoding, printer: SessionPrinter) -> None:
    """Run the seed's example session against the tracker at ``url`` in ``encoding``.

    Raises :class:`DemoFailed` if a peer list the seed shows as non-empty comes back empty.
    """
    me = TrackerClient(
        url,
        SESSION_PEER,
        encoding=encoding,
        addresses=(PeerAddress(ip="127.0.0.1", port=7001),),
        trace=printer.exchange,
        retries=0,
    )
    others = [
        TrackerClient(
            url,
            peer_id,
            encoding=encoding,
            addresses=(PeerAddress(ip="127.0.0.1", port=7002 + i),),
            retries=0,
        )
        for i, peer_id in enumerate(OTHER_PEERS)
    ]
    try:
        printer.step("CONNECT (registration)")
        await me.register()

        printer.step("JOIN {swarm_a: SEED}")
        await me.join("swarm_a", PeerMode.SEED)

        printer.step("STAT_REPORT (activity)")
        await me.report([_activity("swarm_a", uploaded=4096, downloaded=0)])

        printer.note(f"peers {', '.join(OTHER_PEERS)} join swarm_b (not shown)")
        await others[0].join("swarm_b", PeerMode.SEED)
        await others[1].join("swarm_b", PeerMode.LEECH)

        printer.step("JOIN {swarm_b: LEECH} -> OK + peer list")
        peers = await me.join("swarm_b", PeerMode.LEECH)
        printer.peers(peers)
        if not peers:
            raise DemoFailed("JOIN swarm_b returned no peers")

        printer.step("STAT_REPORT (chunk map of swarm_b)")
        await me.report(
            [_activity("swarm_b", uploaded=0, downloaded=25 * 1024)], [_chunk_map("swarm_b")]
        )

        printer.step("FIND {swarm_b} -> OK + peer list")
        peers = await me.find("swarm_b")
        printer.peers(peers)
        if not peers:
            raise DemoFailed("FIND swarm_b returned no peers")

        printer.step("DISCONNECT {swarm_b}")
        await me.disconnect(["swarm_b"])

        printer.step("STAT_REPORT (activity)")
        await me.report([_activity("swarm_a", uploaded=8192, downloaded=0)])

        printer.step("DISCONNECT (nil) -> OK (BYE)")
        await me.disconnect(None)

        for other in others:
            await other.disconnect(None)
    finally:
        await me.close()
        for other in others:
            await other.close()


def _activity(swarm_id: str, *, uploaded: int, downloaded: int) -> StreamStatistics:
    return StreamStatistics(
        swarm_id=swarm_id,
        uploaded_bytes=uploaded,
        downloaded_bytes=downloaded,
        available_bandwidth=1_024_000,
    )


def _chunk_map(swarm_id: str) -> ContentMap:
    # 25 chunks, 0-24; the peer holds 0-15 (bits MSB first).
    return ContentMap(
        swarm_id=swarm_id,
        representations=(
            RepresentationMap(
                representation_id="tag0",
                segments=(
                    SegmentMap(
                        start_index=0,
                        end_index=24,
                        chunkmap_size=25,
                        bitmap=bytes([0xFF, 0xFF, 0x00, 0x00]),
                    ),
                ),
            ),
        ),
    )


async def demo(encodings: Sequence[Encoding], printer: SessionPrinter) -> None:
    """Start an in-process tracker on loopback and replay the session in each encoding."""
    async with running_tracker(TrackerConfig(), host="127.0.0.1", port=0) as running:
        printer.note(f"tracker listening on {running.url}")
        for encoding in encodings:
            printer.title(f"PPSP-TP/1.1 example session in {encoding.value.upper()}")
            await replay_seed_session(running.url + "/", encoding, printer)
        stats = await running.tracker.stats()
        printer.note(
            f"tracker after the sessions: {stats.peers} peers, {stats.swarms} swarms, "
            f"{stats.memberships} memberships"
        )


def run_demo(encodings: Sequence[Encoding], console: Console | None = None) -> int:
    """Run the demo; return the process exit status (0 on success)."""
    printer = SessionPrinter(console)
    try:
        asyncio.run(demo(encodings, printer))
    except Exception as exc:
        printer.console.print(f"demo failed: {exc!r}", markup=False, soft_wrap=True)
        return 1
    printer.note(f"{printer.exchanges} exchanges, all answered")
    return 0
