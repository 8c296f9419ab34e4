"""The attackers of a lab run: started once the source is ready, stopped with the rest.

Every attacker is a ``python -m ppsp.lab.attack KIND`` process (:mod:`ppsp.lab.attack`) on its
own address (:mod:`ppsp.lab.addresses`).  They are started all at once, after the source is
seeding (or streaming) and before the first honest peer joins, and the lab waits for each one's
ready line (bounded): every honest peer meets every attacker from its own start, the harshest
timing a join spread allows.  An attacker that fails to join is reported, not fatal.  Each one
writes its tally (``reports/attack-KIND-NN.json``) when stopped.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ppsp.lab.addresses import AddressPlan
from ppsp.lab.errors import LabError
from ppsp.lab.process import START_TIMEOUT, LabProcess
from ppsp.lab.runner import _load, _Run

READY_LINE = re.compile(r"^attack \S+ ready on ")


def attacker_name(kind: str, number: int) -> str:
    """The lab's name of attacker ``number`` (from 0) of ``kind``."""
    return f"attack-{kind}-{number + 1:02d}"


async def start_attackers(
    run: _Run,
    addresses: AddressPlan,
    *,
    tracker_url: str,
    swarm_id: str,
    known: tuple[str, ...] = (),
    content: str,
    lifetime: float,
    dirs: dict[str, Path],
    say: Callable[[str], None],
) -> list[LabProcess]:
    """Start every planned attacker; returns those that got ready (the others are stopped)."""
    started: list[LabProcess] = []
    for kind, ips in addresses.attackers.items():
        for number, ip in enumerate(ips):
            name = attacker_name(kind, number)
            args = [
                kind,
                "--tracker",
                tracker_url,
                "--swarm",
                swarm_id,
                "--ip",
                ip,
                "--kind",
                content,
                "--lifetime",
                f"{lifetime:.0f}",
                "--report",
                str(dirs["reports"] / f"{name}.json"),
            ]
            for url in known:
                args += ["--known", url]
            process = await LabProcess.spawn(
                name, args, dirs["logs"] / f"{name}.log", module="ppsp.lab.attack"
            )
            run.processes.append(process)
            started.append(process)

    async def ready(process: LabProcess) -> bool:
        try:
            await process.stdout_line(READY_LINE, START_TIMEOUT)
        except LabError as exc:
            say(f"attacker not ready: {exc}")
            return False
        return True

    results = await asyncio.gather(*(ready(p) for p in started))
    failed = [p for p, ok in zip(started, results, strict=True) if not ok]
    await run.stop(failed)
    if started:
        say(f"{len(started) - len(failed)} of {len(started)} attackers ready")
    return [p for p, ok in zip(started, results, strict=True) if ok]


def attack_section(
    addresses: AddressPlan, per_kind: int, reports: Path, ready: set[str]
) -> dict[str, Any]:
    """The ``attack`` section of report.json: kinds, counts, addresses and each one's tally."""
    kinds: dict[str, Any] = {}
    for kind, ips in addresses.attackers.items():
        members = []
        for number, ip in enumerate(ips):
            name = attacker_name(kind, number)
            members.append(
                {
                    "name": name,
                    "ip": ip,
                    "ready": name in ready,
                    "tally": _load(reports / f"{name}.json"),
                }
            )
        kinds[kind] = {"count": len(ips), "addresses": list(ips), "attackers": members}
    return {"kinds": list(addresses.attackers), "per_kind": per_kind, "by_kind": kinds}
