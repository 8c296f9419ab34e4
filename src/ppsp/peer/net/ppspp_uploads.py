"""PPSPP uploads in a swarm session's report: each DATA an engine sends, counted for the PeerID
the tracker listed at the channel's address (issue 17).

The engine (:class:`~ppsp.peer.ppspp.Seeder`, or a live stream's
:class:`~ppsp.peer.ppspp.live_server.LiveServer`) tells :meth:`PpsppUploads.on_data` of each
DATA: the content's root hash (a live stream's swarm ID), the channel's UDP address and the
chunk's bytes.  Bytes of the
swarm's content go to the PeerID the sans-I/O
:class:`~ppsp.peer.upload.attribution.AddressAttribution` knows at that address (from the
session's listed peers, or a FIND when it knows none: 0.5 s after the last for a new address,
2 s for one tried before, an address tried three times), via
:meth:`SwarmSession.count_upload`, so that ``uploaded_to`` counts them as it
counts HTTP's; bytes of other contents (the whole file served for libswift) and to addresses
no answer named count as unattributed (``uploaded_unattributed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from ppsp.errors import PPSPError
from ppsp.peer.net.session import SwarmSession
from ppsp.peer.ppspp import Seeder
from ppsp.peer.ppspp.live_server import LiveServer
from ppsp.peer.upload.attribution import AddressAttribution
from ppsp.wire.tracker import PeerInfo

__all__ = ["PpsppUploads"]

log = logging.getLogger(__name__)

Find = Callable[[], Awaitable[list[PeerInfo]]]


class PpsppUploads:
    """An engine's DATA counted in ``session`` (module docstring).

    ``roots`` are the root hashes of the session's PPSPP contents (:meth:`add_root` adds one
    later); ``find`` asks the tracker for the swarm's peers (None: the session's known peers
    only).  :meth:`close` ends the lookups and counts what is still unresolved as unattributed:
    call it before the report is written.
    """

    def __init__(
        self, session: SwarmSession, find: Find | None, roots: Iterable[bytes] = ()
    ) -> None:
        self.session = session
        self.roots = set(roots)
        self.attribution = AddressAttribution()
        self._find = find
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._waiting = asyncio.Event()  # set when bytes wait for a lookup: it may be due sooner
        self._learned_remotes = -1  # the session's peer count when last learned from
        self._unattributed = 0  # of the attribution's, counted in the session so far
        self.lookups = 0
        """FINDs made for addresses not known."""
        self.lookup_failures = 0
        """FINDs that failed."""

    def add_root(self, root: bytes) -> None:
        """Count DATA of the content of root hash ``root`` as the swarm's."""
        self.roots.add(root)

    def attach(self, engine: Seeder | LiveServer) -> None:
        """Be told of every DATA ``engine`` sends."""
        engine.on_data = self.on_data

    def on_data(self, root: bytes, address: tuple[str, int], nbytes: int) -> None:
        """A DATA of ``nbytes`` chunk bytes of content ``root`` went to ``address``."""
        if root not in self.roots:
            self.session.count_unattributed_upload(nbytes)  # not the swarm's content
            return
        attribution = self.attribution
        if attribution.peer_at(address) is None and len(self.session.remotes) != (
            self._learned_remotes
        ):
            self._learn(remote.info for remote in self.session.remotes.values())
        peer_id = attribution.sent(address, nbytes)
        if peer_id is not None:
            self.session.count_upload(peer_id, address[0], nbytes)
            return
        self._sync()
        self._waiting.set()
        if self._task is None and attribution.lookup_delay(self._loop.time()) is not None:
            self._task = self._loop.create_task(self._lookups())

    def close(self) -> None:
        """No more lookups; what waits for one counts as unattributed."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.attribution.close()
        self._sync()

    def counts(self) -> dict[str, int]:
        """For ``--report``: lookups made and failed, bytes unattributed."""
        return {
            "lookups": self.lookups,
            "lookup_failures": self.lookup_failures,
            "unattributed": self.attribution.unattributed,
        }

    def _learn(self, infos: Iterable[PeerInfo]) -> None:
        self._learned_remotes = len(self.session.remotes)
        for peer_id, address, nbytes in self.attribution.learn(infos):
            self.session.count_upload(peer_id, address[0], nbytes)
        self._sync()

    def _sync(self) -> None:
        """Count in the session the bytes the attribution gave up on since last time."""
        given_up = self.attribution.unattributed - self._unattributed
        if given_up:
            self._unattributed += given_up
            self.session.count_unattributed_upload(given_up)

    async def _lookups(self) -> None:
        """Ask the tracker while addresses wait (each lookup's time given by the
        attribution: a wait until it is due, or until new bytes wait, which may make it due
        sooner; never polling)."""
        try:
            while (delay := self.attribution.lookup_delay(self._loop.time())) is not None:
                if delay > 0:
                    self._waiting.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._waiting.wait(), delay)
                    continue
                self.attribution.looked_up(self._loop.time())
                infos = [remote.info for remote in self.session.remotes.values()]
                if self._find is not None:
                    self.lookups += 1
                    try:
                        infos += await self._find()
                    except (PPSPError, OSError, TimeoutError) as exc:
                        self.lookup_failures += 1
                        log.debug("no peer list to attribute PPSPP uploads: %s", exc)
                self._learn(infos)
        finally:
            self._task = None
