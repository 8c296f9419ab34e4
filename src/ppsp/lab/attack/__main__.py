"""``python -m ppsp.lab.attack KIND ...``: run one attacker (see :mod:`ppsp.lab.attack`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from ppsp.lab.attack import KINDS
from ppsp.lab.attack.common import AttackSettings, Tally
from ppsp.process.signals import STOP_SIGNALS, on_signals

Runner = Callable[[AttackSettings, Tally], Awaitable[None]]


def _runner(kind: str) -> Runner:
    """The ``run`` function of the module of ``kind``."""
    if kind == "tarpit":
        from ppsp.lab.attack.tarpit import run
    elif kind == "forged-push":
        from ppsp.lab.attack.forged_push import run
    elif kind == "corrupt":
        from ppsp.lab.attack.corrupt import run
    elif kind == "eclipse":
        from ppsp.lab.attack.eclipse import run
    else:
        from ppsp.lab.attack.flood import run
    return run


MAX_KNOWN = 16
"""Endpoints an attacker takes from ``--known``."""


def parse(argv: Sequence[str] | None = None) -> AttackSettings:
    """The attacker's settings from its command line."""
    parser = argparse.ArgumentParser(prog="python -m ppsp.lab.attack")
    parser.add_argument("attack", choices=KINDS)
    parser.add_argument("--tracker", required=True, help="tracker URL")
    parser.add_argument("--swarm", required=True, help="swarm ID")
    parser.add_argument("--ip", required=True, help="loopback address to act from")
    parser.add_argument("--kind", choices=("vod", "live"), default="vod", help="swarm kind")
    parser.add_argument("--lifetime", type=float, default=300.0, help="seconds to attack")
    parser.add_argument("--report", type=Path, default=None, help="JSON tally written on exit")
    parser.add_argument(
        "--known",
        action="append",
        default=[],
        help="a member's endpoint URL known besides the tracker's lists (repeatable)",
    )
    parser.add_argument("--rate", type=float, default=50.0, help="forged-push: messages/s")
    parser.add_argument("--connections", type=int, default=16, help="flood: connections")
    parser.add_argument("--identities", type=int, default=300, help="eclipse: PeerIDs to try")
    args = parser.parse_args(argv)
    if args.lifetime <= 0 or args.rate <= 0 or args.connections < 1 or args.identities < 1:
        parser.error("--lifetime, --rate, --connections and --identities must be positive")
    return AttackSettings(
        kind=args.attack,
        tracker=args.tracker,
        swarm=args.swarm,
        ip=args.ip,
        content=args.kind,
        lifetime=args.lifetime,
        report=args.report,
        rate=args.rate,
        connections=min(args.connections, 256),
        identities=min(args.identities, 10_000),
        known=tuple(args.known[:MAX_KNOWN]),
    )


async def attack(settings: AttackSettings) -> Tally:
    """Run the attacker for its lifetime or until SIGINT/SIGTERM; returns its tally."""
    tally = Tally(settings.kind, settings.ip)
    task = asyncio.ensure_future(_runner(settings.kind)(settings, tally))
    with (
        on_signals(task.cancel, STOP_SIGNALS),
        contextlib.suppress(asyncio.CancelledError, TimeoutError),
    ):
        await asyncio.wait_for(task, settings.lifetime)
    return tally


def main(argv: Sequence[str] | None = None) -> int:
    """Run one attacker; exit status 1 when it could not join the swarm."""
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    settings = parse(argv)
    try:
        tally = asyncio.run(attack(settings))
    except Exception as exc:  # the one line the lab shows for an attacker that failed
        print(f"attack {settings.kind} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        Tally(settings.kind, settings.ip, {"failed": 1}).write(settings.report)
        return 1
    tally.write(settings.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
