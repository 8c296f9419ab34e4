"""Cost of a FIND in one big swarm, in process: does a peer list cost the swarm's size?

    python -m bench.tracker_bigswarm [--members 1000 10000 100000] [--finds N] [--rounds N]
                                     [--out docs/benchmarks/tracker-bigswarm.json]

For each swarm size, ``--members`` peers CONNECT and JOIN one swarm through
:meth:`~ppsp.tracker.core.Tracker.handle` (memory storage, timers out of the way), a quarter of
them on each of four peer protocols (four rank groups).  Then members of the swarm send FINDs
without a chunk scope (the usual FIND: the requester is a member, 20 peers asked), and two
figures are taken, each the best of ``--rounds`` rounds of ``--finds`` requests:

- ``find_us``: one FIND through ``Tracker.handle`` (typed messages: no HTTP, no codec);
- ``peer_list_us``: the peer list alone, ``Storage.member_groups`` and ``select_from_groups``.

Wall-clock figures: run them while nothing else loads the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.peerlist import select_from_groups
from ppsp.tracker.storage import MemoryStorage
from ppsp.wire.tracker import (
    ConnectRequest,
    FindRequest,
    JoinRequest,
    PeerAddress,
    PeerMode,
    ProtocolVersion,
    SwarmAction,
)

V11 = ProtocolVersion.V1_1
PROTOCOLS = ("PPSP-PP/0.1", "BT", "X", "Y")


def _observed(i: int) -> tuple[str, int]:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 40000 + i % 20000


async def _fill(tracker: Tracker, members: int) -> None:
    for i in range(members):
        peer, observed = f"p{i:07d}", _observed(i)
        address = PeerAddress(ip=observed[0], port=7000, peer_protocol=PROTOCOLS[i % 4])
        await tracker.handle(
            ConnectRequest(
                version=V11, transaction_id="1", peer_id=peer, peer_addresses=(address,)
            ),
            observed=observed,
            now=0.0,
        )
        await tracker.handle(
            JoinRequest(
                version=V11,
                transaction_id="2",
                peer_id=peer,
                swarms=(SwarmAction(swarm_id="big", peer_mode=PeerMode.LEECH),),
            ),
            observed=observed,
            now=0.0,
        )


async def _measure(members: int, finds: int, rounds: int) -> dict[str, Any]:
    storage = MemoryStorage(seed=1)
    tracker = Tracker(storage, TrackerConfig(init_timeout=1e9, track_timeout=1e9))
    await _fill(tracker, members)
    requesters = [f"p{(i * 7919) % members:07d}" for i in range(finds)]
    messages = [
        FindRequest(version=V11, transaction_id="3", peer_id=peer, swarm_id="big")
        for peer in requesters
    ]
    observed = [_observed(int(peer[1:])) for peer in requesters]
    find = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for message, seen in zip(messages, observed, strict=True):
            answer = await tracker.handle(message, observed=seen, now=1.0)
            assert len(answer.peers) == 20
        find = min(find, (time.perf_counter() - start) / finds)
    addresses = [(PeerAddress(ip="10.0.0.1", port=7000, peer_protocol=PROTOCOLS[0]),)]
    rng = random.Random(1)
    listing = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for peer in requesters:
            groups = await storage.member_groups("big")
            select_from_groups(
                groups, exclude=peer, requester_addresses=addresses[0], count=20, rng=rng
            )
        listing = min(listing, (time.perf_counter() - start) / finds)
    return {
        "members": members,
        "groups": len(await storage.member_groups("big")),
        "find_us": round(find * 1e6, 1),
        "peer_list_us": round(listing * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Measure, print a table, and write the JSON report when ``--out`` is given."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--finds", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    results = []
    for members in args.members:
        result = asyncio.run(_measure(members, args.finds, args.rounds))
        results.append(result)
        print(
            f"{members:>8} members: FIND {result['find_us']:7.1f} µs, "
            f"peer list {result['peer_list_us']:7.1f} µs"
        )
    if args.out is not None:
        report = {
            "benchmark": "tracker_bigswarm",
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "finds": args.finds,
            "rounds": args.rounds,
            "results": results,
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
