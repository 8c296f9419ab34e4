"""Where each lab process runs: a loopback address of its own, in a /24 of its own.

The tracker's per-host bounds and its peer-list share per /24 (docs/SECURITY.md) treat every
lab process as a distinct host only when each one has its own network, so the plan gives
every process ``127.A.B.1`` with a different ``A.B``:

- the tracker ``127.1.0.1``, the source ``127.1.1.1``;
- honest peer *i* (from 0) ``127.2.i.1`` while *i* < 256, then ``127.3.(i-256).1``, ...
  (up to :data:`MAX_PEERS`);
- attacker *j* of the *k*-th attack kind (in :data:`ppsp.lab.attack.KINDS` order)
  ``127.(20+k).j.1`` (up to :data:`MAX_PER_KIND` of each kind).

Pure: no sockets (Linux routes all of 127.0.0.0/8 to the loopback interface).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ppsp.lab.attack import KINDS

MAX_PEERS = 16 * 256
"""Honest peers a plan has addresses for (127.2.0.0 to 127.17.255.0)."""
MAX_PER_KIND = 256
"""Attackers of one kind a plan has addresses for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressPlan:
    """Every lab process's loopback address."""

    tracker: str
    source: str
    peers: tuple[str, ...]
    attackers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Attack kind -> its attackers' addresses."""

    def all(self) -> list[str]:
        """Every address of the plan."""
        return [
            self.tracker,
            self.source,
            *self.peers,
            *(ip for ips in self.attackers.values() for ip in ips),
        ]


def plan_addresses(peers: int, attacks: Sequence[str] = (), per_kind: int = 0) -> AddressPlan:
    """Addresses for ``peers`` honest peers and ``per_kind`` attackers of each of ``attacks``.

    Raises ValueError for an unknown kind or counts beyond the plan's room.
    """
    if not 0 <= peers <= MAX_PEERS:
        raise ValueError(f"a lab has room for 0 to {MAX_PEERS} peers")
    if not 0 <= per_kind <= MAX_PER_KIND:
        raise ValueError(f"a lab has room for 0 to {MAX_PER_KIND} attackers of each kind")
    unknown = [kind for kind in attacks if kind not in KINDS]
    if unknown:
        raise ValueError(f"unknown attack kinds: {', '.join(unknown)}")
    return AddressPlan(
        tracker="127.1.0.1",
        source="127.1.1.1",
        peers=tuple(f"127.{2 + i // 256}.{i % 256}.1" for i in range(peers)),
        attackers={
            kind: tuple(f"127.{20 + KINDS.index(kind)}.{j}.1" for j in range(per_kind))
            for kind in dict.fromkeys(attacks)
        },
    )
