"""Setting up a NAT lab run (``ppsp lab vod|live --nat FRACTION``): its network, built from
the plan of :mod:`ppsp.lab.netns`, the peers' extra arguments, and its part of report.json.

Shared by the vod runner (:mod:`ppsp.lab.runner`) and the live lab (:mod:`ppsp.lab.live`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol

from ppsp.lab.errors import LabError, LabRequirementError
from ppsp.lab.netns import (
    TURN_USER,
    NatNetwork,
    NetworkError,
    choose_natted,
    choose_symmetric,
    missing_requirements,
    plan_network,
)

__all__ = [
    "build_network",
    "command_prefix",
    "nat_network",
    "nat_peer_args",
    "nat_peer_env",
    "network_json",
    "settings_network",
]


def command_prefix(net: NatNetwork | None, name: str) -> list[str]:
    """What runs a lab process in its namespace (``ip netns exec NAME``); nothing without
    ``--nat``."""
    return [] if net is None else net.prefix(name)


def nat_peer_args(
    net: NatNetwork, index: int, *, relay: bool = False, http_only: bool = False
) -> list[str]:
    """A peer's extra arguments in a NAT lab: PPSPP first (the one transport a peer behind
    NAT can use towards a PPSPP server, its socket's reflexive address learnt with STUN),
    then HTTP; ``--stun`` for a peer behind NAT and, with ``relay``, ``--turn`` on the same
    server (the password in its environment, :func:`nat_peer_env`).

    ``http_only`` (``--transport http``, and the run ``--http-beside`` adds): HTTP alone,
    no STUN or TURN (nothing of them serves HTTP), whether behind NAT or not."""
    if http_only:
        return ["--transport", "http"]
    args = ["--transport", "ppspp", "--transport", "http"]
    if net.plan.peers[index].natted:
        args += ["--stun", net.plan.stun_server]
        if relay:
            args += ["--turn", net.plan.stun_server, "--turn-user", TURN_USER]
    return args


def nat_peer_env(net: NatNetwork | None, command: str = "get") -> dict[str, str]:
    """The environment a lab peer running ``ppsp COMMAND`` gets beside the lab's: the run's
    TURN password, where the command reads it (never on a command line)."""
    if net is None:
        return {}
    return {f"PPSP_{command.upper()}_TURN_PASSWORD": net.turn_password}


class NetworkSettings(Protocol):
    """What the settings of a lab (vod or live) say of its network."""

    @property
    def nat(self) -> float | None: ...
    @property
    def peers(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def attackers(self) -> int: ...
    @property
    def attacks(self) -> tuple[str, ...]: ...
    @property
    def symmetric(self) -> float | None: ...


def settings_network(settings: NetworkSettings) -> tuple[int, NatNetwork | None]:
    """The attackers of each kind a lab's ``settings`` ask for, and its NAT network
    (:func:`nat_network`; None without ``--nat``)."""
    per_kind = settings.attackers if settings.attacks else 0
    net = nat_network(
        settings.nat,
        settings.peers,
        settings.seed,
        attackers=per_kind,
        symmetric=settings.symmetric,
    )
    return per_kind, net


def nat_network(
    fraction: float | None,
    peers: int,
    seed: int,
    *,
    attackers: int = 0,
    symmetric: float | None = None,
) -> NatNetwork | None:
    """The NAT lab's network for ``--nat FRACTION`` (None without it), not built yet;
    ``symmetric`` of the NATed peers behind NATs that map each destination apart.

    LabRequirementError when this machine cannot build it (:func:`missing_requirements`),
    LabError for attackers (not in a NAT lab) or too many peers.
    """
    if fraction is None:
        return None
    if attackers:
        raise LabError("--nat does not take attackers")
    try:
        natted = choose_natted(peers, fraction, seed)
        apart = choose_symmetric(natted, symmetric or 0.0, seed)
        network_plan = plan_network(peers, natted, symmetric=apart)
    except ValueError as exc:
        raise LabError(str(exc)) from None
    missing = missing_requirements()
    if missing is not None:
        raise LabRequirementError(missing)
    return NatNetwork(network_plan)


def build_network(
    net: NatNetwork, source_rate: float | None, peer_rate: float | None, say: Callable[[str], None]
) -> None:
    """Make ``net``'s namespaces, ``tbf`` on the source's and the peers' uplinks (LabError
    when a command fails; :meth:`NatNetwork.close` removes what was made)."""
    rates: dict[str, float | None] = {"source": source_rate}
    rates.update({peer.name: peer_rate for peer in net.plan.peers})
    began = time.monotonic()
    try:
        net.build(rates)
    except NetworkError as exc:
        raise LabError(f"building the NAT lab's network: {exc}") from None
    plan = net.plan
    apart = f" ({len(plan.symmetric)} mapping each destination apart)" if plan.symmetric else ""
    say(
        f"network: {len(plan.namespaces())} namespaces in {time.monotonic() - began:.1f} s; "
        f"{len(plan.natted)} of {len(plan.peers)} peers behind NAT{apart}"
    )


def network_json(net: NatNetwork) -> dict[str, Any]:
    """report.json's ``"network"``: each process's namespace and addresses."""
    return {
        "tag": net.plan.tag,
        "stun": net.plan.stun_server,
        "turn": {"server": net.plan.stun_server, "user": TURN_USER},
        "nodes": [asdict(node) for node in net.plan.nodes()],
    }
