"""Eclipse: as many PeerIDs from one host as the tracker registers, every one a tarpit.

One silent listener (:class:`~ppsp.lab.attack.tarpit.SilentServer`) on the attacker's address;
up to ``--identities`` PeerIDs are registered and joined to the swarm, each advertising that
listener with the highest priority (as SEEDs for stored content), so that peer lists that
trusted priorities or counted PeerIDs rather than hosts would hold nothing else.  Registration
stops at the third refusal in a row (the tracker's per-host bound); a refusal of the request
rate waits a second and tries again.  The registrations are kept alive with STAT_REPORTs.
"""

from __future__ import annotations

import asyncio
import contextlib

from ppsp.errors import PPSPError, ServiceUnavailable
from ppsp.lab.attack.common import (
    KEEPALIVE_S,
    AttackSettings,
    Tally,
    http_session,
    mode_of,
    new_peer_id,
    ready,
    tracker_client,
)
from ppsp.lab.attack.tarpit import SilentServer
from ppsp.tracker.net.client import TrackerClient

REFUSALS_IN_A_ROW = 3
"""Refusals in a row after which the attacker stops registering more PeerIDs."""


async def run(settings: AttackSettings, tally: Tally) -> None:
    """Run one eclipse host until cancelled (see the module docstring)."""
    async with http_session(settings.ip, limit=8) as http:
        server = SilentServer(settings.ip, tally)
        port = await server.start()
        clients: list[TrackerClient] = []
        try:
            refusals = 0
            for _ in range(settings.identities):
                peer_id = new_peer_id("eclipse")
                client = tracker_client(settings, peer_id, port, http)
                try:
                    await client.join(settings.swarm, mode_of(settings))
                except ServiceUnavailable:
                    tally.add("rate_refusals")
                    await client.close()
                    await asyncio.sleep(1.0)
                    refusals += 1
                except PPSPError:
                    tally.add("registration_refusals")
                    await client.close()
                    refusals += 1
                else:
                    refusals = 0
                    clients.append(client)
                    tally.peer_ids.append(peer_id)
                if refusals >= REFUSALS_IN_A_ROW:
                    break
            tally.add("registered", len(clients))
            ready(settings.kind, settings.ip, port)
            while True:
                await asyncio.sleep(KEEPALIVE_S)
                for client in clients:
                    try:
                        await client.report()
                    except PPSPError:
                        tally.add("keepalive_refusals")
        finally:
            await server.stop()
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.close()
