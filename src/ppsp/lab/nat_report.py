"""The NAT lab's figures: how the peer pairs connected, from the peers' ``--report`` files.

A **pair** is an unordered pair of the lab's peers (the source is not one of them; it is
counted apart) of which at least one *listed* the other: the other's PeerID is among the
remote peers of its session in the swarm (a peer the tracker named to it, whether or not it
was ever reached).  A pair **connected** when chunk bytes moved between the two in either
direction (the receiver's ``received_from``, or the sender's ``uploaded_to``), or, when none
moved, when a side's record of the other says it connected (``connected``: a transport was
agreed; counted in ``idle``); **through a relay** when a side's record of the other (the
receiver's, when bytes moved) says the address it reached was a relayed one (``relayed``, a
PeerAddress of type PROXY), **directly** otherwise.  A pair that did not connect **never**
did when a side tried and failed (it counted failures against the other), and was **not
needed** when neither tried (each had what it wanted from others).

Pairs are also split by kind: both peers behind NAT (``nat-nat``), one (``nat-public``),
none (``public-public``).  Pure: reads the reports given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ppsp.lab.report import Report, session_of

KINDS = ("nat-nat", "nat-public", "public-public")


@dataclass(slots=True)
class PairCounts:
    """Pairs by outcome."""

    direct: int = 0
    relayed: int = 0
    never: int = 0
    """Pairs that did not connect though a side tried (it counted failures against the other)."""
    not_needed: int = 0
    """Pairs that did not connect and where neither side tried."""
    idle: int = 0
    """Of :attr:`direct` and :attr:`relayed`: pairs connected without any chunk moving."""
    transports: dict[str, int] = field(default_factory=dict)
    """Connected pairs by the transport chunks went over (the receiver's record of it)."""

    @property
    def total(self) -> int:
        """Every pair counted."""
        return self.direct + self.relayed + self.never + self.not_needed

    def add(self, other: PairCounts) -> None:
        """Add ``other``'s counts to these."""
        self.direct += other.direct
        self.relayed += other.relayed
        self.never += other.never
        self.not_needed += other.not_needed
        self.idle += other.idle
        for transport, count in other.transports.items():
            self.transports[transport] = self.transports.get(transport, 0) + count

    def to_json(self) -> dict[str, Any]:
        """Counts and shares of the total (None when there is no pair)."""
        total = self.total
        return {
            "total": total,
            "direct": self.direct,
            "relayed": self.relayed,
            "never": self.never,
            "not_needed": self.not_needed,
            "idle": self.idle,
            "shares": {
                outcome: (count / total if total else None)
                for outcome, count in (
                    ("direct", self.direct),
                    ("relayed", self.relayed),
                    ("never", self.never),
                    ("not_needed", self.not_needed),
                )
            },
            "transports": dict(sorted(self.transports.items())),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LabPeer:
    """One lab peer's report, as the NAT figures read it."""

    name: str
    natted: bool
    report: Report | None
    symmetric: bool = False
    """Behind a NAT that maps each destination to a port of its own (``--symmetric``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Side:
    peer_id: str | None
    records: Mapping[str, Mapping[str, Any]]
    received_from: Mapping[str, int]
    uploaded_to: Mapping[str, int]


def _side(peer: LabPeer, swarm_id: str) -> _Side:
    report = peer.report
    if report is None:
        return _Side(peer_id=None, records={}, received_from={}, uploaded_to={})
    session = session_of(report, swarm_id) or {}
    return _Side(
        peer_id=str(report.get("peer_id")) if report.get("peer_id") else None,
        records={str(k): dict(v) for k, v in dict(session.get("peers") or {}).items()},
        received_from={str(k): int(v) for k, v in dict(session.get("received_from") or {}).items()},
        uploaded_to={str(k): int(v) for k, v in dict(session.get("uploaded_to") or {}).items()},
    )


def _moved(receiver: _Side, sender: _Side) -> int:
    """Bytes ``sender`` gave ``receiver``, by either one's count."""
    if receiver.peer_id is None or sender.peer_id is None:
        return 0
    return max(
        receiver.received_from.get(sender.peer_id, 0), sender.uploaded_to.get(receiver.peer_id, 0)
    )


def classify_pairs(
    peers: Sequence[LabPeer], swarm_id: str
) -> tuple[dict[str, PairCounts], PairCounts]:
    """Pairs by kind (:data:`KINDS`) and all together (see the module docstring)."""
    sides = [_side(peer, swarm_id) for peer in peers]
    by_kind = {kind: PairCounts() for kind in KINDS}
    total = PairCounts()
    for i, a in enumerate(sides):
        for j in range(i + 1, len(sides)):
            b = sides[j]
            if a.peer_id is None or b.peer_id is None:
                continue  # a peer without a report: its pairs cannot be told
            if b.peer_id not in a.records and a.peer_id not in b.records:
                continue  # neither listed the other: not a pair
            natted = peers[i].natted + peers[j].natted
            kind = KINDS[2 - natted]
            counts = _pair(a, b)
            by_kind[kind].add(counts)
            total.add(counts)
    return by_kind, total


def _pair(a: _Side, b: _Side) -> PairCounts:
    """One pair's outcome, as counts of one."""
    assert a.peer_id is not None and b.peer_id is not None
    counts = PairCounts()
    of_b, of_a = a.records.get(b.peer_id, {}), b.records.get(a.peer_id, {})
    a_got, b_got = _moved(a, b), _moved(b, a)
    used = [record for got, record in ((a_got, of_b), (b_got, of_a)) if got]
    if not used:
        used = [record for record in (of_b, of_a) if record.get("connected")]
        if not used:
            tried = any(int(record.get("failures") or 0) > 0 for record in (of_b, of_a))
            if tried:
                counts.never = 1
            else:
                counts.not_needed = 1
            return counts
        counts.idle = 1
    if any(record.get("relayed") for record in used):
        counts.relayed = 1
    else:
        counts.direct = 1
    for transport in sorted({str(r.get("transport") or "?") for r in used}):
        counts.transports[transport] = 1
    return counts


def source_reach(peers: Sequence[LabPeer], swarm_id: str, source_id: str) -> dict[str, Any]:
    """How many peers, behind NAT or not, got chunks from the source, by transport."""
    figures: dict[str, Any] = {}
    for label, natted in (("natted", True), ("public", False)):
        group = [peer for peer in peers if peer.natted is natted]
        served = 0
        transports: dict[str, int] = {}
        for peer in group:
            side = _side(peer, swarm_id)
            if side.received_from.get(source_id, 0) > 0:
                served += 1
                transport = str(side.records.get(source_id, {}).get("transport") or "?")
                transports[transport] = transports.get(transport, 0) + 1
        figures[label] = {"peers": len(group), "served": served, "transports": transports}
    return figures


def nat_section(
    peers: Sequence[LabPeer],
    swarm_id: str,
    source: Report | None,
    fraction: float,
    stun: str | None = None,
    turn: str | None = None,
) -> dict[str, Any]:
    """The report.json ``"nat"`` section (``stun``: the STUN server the NATed peers asked,
    ``turn``: the TURN server they allocated relays on)."""
    by_kind, total = classify_pairs(peers, swarm_id)
    touching = PairCounts()
    for kind in ("nat-nat", "nat-public"):
        touching.add(by_kind[kind])
    source_id = str((source or {}).get("peer_id", ""))
    return {
        "fraction": fraction,
        "stun": stun,
        "peers": len(peers),
        "behind_nat": sum(peer.natted for peer in peers),
        "natted": [peer.name for peer in peers if peer.natted],
        "symmetric": [peer.name for peer in peers if peer.symmetric],
        "turn": turn,
        # The relayed address each NATed peer registered (None: no relay, or no report).
        "relays": {
            peer.name: (peer.report.get("relay") or {}).get("relayed")
            for peer in peers
            if peer.natted and peer.report is not None
        },
        "reports_missing": [peer.name for peer in peers if peer.report is None],
        "reflexive": {
            peer.name: (peer.report.get("stun") or {}).get("reflexive")
            for peer in peers
            if peer.natted and peer.report is not None
        },
        "pairs": total.to_json(),
        "pairs_by_kind": {kind: counts.to_json() for kind, counts in by_kind.items()},
        "natted_pairs": touching.to_json(),
        "source": source_reach(peers, swarm_id, source_id),
        # A seeder reports its PPSPP engine as "ppspp", a live source as "ppspp_live".
        "source_ppspp": dict((source or {}).get("ppspp") or (source or {}).get("ppspp_live") or {}),
        "source_ppspp_live": bool((source or {}).get("ppspp_live")),
        "source_unattributed": _unattributed(source, swarm_id),
    }


def _unattributed(report: Report | None, swarm_id: str) -> int:
    """Bytes a report's session uploaded to no known PeerID (PPSPP channels from addresses
    the tracker did not list)."""
    session = session_of(report, swarm_id) if report is not None else None
    return int((session or {}).get("uploaded_unattributed") or 0)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def render_nat_markdown(document: Mapping[str, Any]) -> str:
    """report.md's NAT section (empty without one)."""
    nat = document.get("nat")
    if not nat:
        return ""
    server = "STUN/TURN server" if nat.get("turn") else "STUN server"
    servers = "the tracker, the source" + (f" and the {server}" if nat.get("stun") else "")
    symmetric = len(nat.get("symmetric") or ())
    mapping = f", {symmetric} of them mapping each destination apart" if symmetric else ""
    relays = sum(1 for address in (nat.get("relays") or {}).values() if address)
    relayed = f"; {relays} NATed peers allocated a TURN relay" if nat.get("turn") else ""
    lines = [
        "",
        "## NAT",
        "",
        f"{nat['behind_nat']} of {nat['peers']} peers behind a NAT of their own (nftables "
        f"masquerade{mapping}); the other peers, {servers} on the public segment{relayed}. "
        "A pair: two peers of which one listed the other; connected when chunks moved either "
        "way (or a side connected, chunks needed or not); never: a side tried and failed; not "
        "needed: neither tried.",
        "",
        "| pairs | total | direct | relayed | never (tried) | not needed |",
        "|---|---|---|---|---|---|",
    ]
    rows = [("all", nat["pairs"]), ("with a NATed peer", nat["natted_pairs"])]
    rows += [(kind, nat["pairs_by_kind"][kind]) for kind in KINDS]
    for label, counts in rows:
        shares = counts["shares"]
        lines.append(
            f"| {label} | {counts['total']} | {counts['direct']} ({_share(shares['direct'])}) "
            f"| {counts['relayed']} ({_share(shares['relayed'])}) "
            f"| {counts['never']} ({_share(shares['never'])}) "
            f"| {counts['not_needed']} ({_share(shares['not_needed'])}) |"
        )
    source = nat["source"]
    lines += [
        "",
        f"Served by the source: {source['natted']['served']} of {source['natted']['peers']} "
        f"peers behind NAT ({_transports(source['natted']['transports'])}), "
        f"{source['public']['served']} of {source['public']['peers']} public peers "
        f"({_transports(source['public']['transports'])}).",
    ]
    chunks = nat.get("source_ppspp", {}).get("data_sent")
    if chunks:
        lines.append(
            f"The source sent {chunks} PPSPP chunks, counted for the PeerIDs the tracker lists at "
            "their channels' addresses in the check of bytes sent against bytes received above; "
            f"{nat.get('source_unattributed', 0)} bytes went to addresses no peer list named "
            "(unattributed)."
        )
    if nat["reports_missing"]:
        lines.append(f"No report from: {', '.join(nat['reports_missing'])}.")
    return "\n".join(lines) + "\n"


def _transports(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counts.items())) or "none"


TRANSPORT_LABELS = {"ppspp": "PPSPP, then HTTP", "http": "HTTP only"}
"""How report.md names a NAT lab run by its peers' transports."""


def _outcomes(counts: Mapping[str, Any] | None) -> dict[str, int] | None:
    """Pairs connected (directly or relayed), never (tried), not needed, of the total."""
    if not counts:
        return None
    return {
        "total": int(counts["total"]),
        "connected": int(counts["direct"]) + int(counts["relayed"]),
        "never": int(counts["never"]),
        "not_needed": int(counts["not_needed"]),
    }


def transport_summary(document: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one NAT lab vod run that its transports change: the last peer against
    the fluid bound, the source's share, and how the pairs connected."""
    figures = document["figures"]
    nat = document.get("nat") or {}
    peers = figures["peers"]
    return {
        "transport": str(document["parameters"].get("transport") or "ppspp"),
        "peers": len(peers),
        "completed": sum(1 for peer in peers if peer.get("complete")),
        "last_completion": figures["last_completion"],
        "bound": figures["bound"]["seconds"],
        "ratio": figures["ratio"],
        "source_share": figures["bytes"]["source_share"],
        "pairs": _outcomes(nat.get("pairs")),
        "natted_pairs": _outcomes(nat.get("natted_pairs")),
    }


def compare_transports(
    main: Mapping[str, Any], beside: Mapping[str, Any], out: str
) -> dict[str, Any]:
    """report.json's ``"transports"``: the run and the one beside it (``--http-beside``: the
    same swarm with HTTP only, its report in the directory ``out`` under the run's)."""
    return {"out": out, "runs": [transport_summary(main), transport_summary(beside)]}


def _pair_cell(outcomes: Mapping[str, int] | None) -> str:
    if outcomes is None:
        return "-"
    return (
        f"{outcomes['connected']} / {outcomes['never']} / {outcomes['not_needed']} "
        f"of {outcomes['total']}"
    )


def render_transports_markdown(document: Mapping[str, Any]) -> str:
    """report.md's section setting the run beside the same swarm over HTTP only (empty
    without ``--http-beside``)."""
    section = document.get("transports")
    if not section:
        return ""
    lines = [
        "## PPSPP against HTTP only",
        "",
        f"The same swarm (namespaces plan, seed, sizes, rates) again with HTTP only, in "
        f"`{section['out']}/`: the source without `--ppspp-port`, every peer "
        "`ppsp get --transport http` without `--stun` or `--turn`. Behind NAT an HTTP-only "
        "peer downloads from the source and the public peers (outbound TCP through its NAT), "
        "but nobody can reach it. Pairs: connected (directly or relayed) / never (tried) / "
        "not needed.",
        "",
        "| run | last peer | vs bound | source share | pairs | with a NATed peer |",
        "|---|---|---|---|---|---|",
    ]
    for run in section["runs"]:
        last, ratio, share = run["last_completion"], run["ratio"], run["source_share"]
        done = (
            ""
            if run["completed"] == run["peers"]
            else (f" ({run['completed']} of {run['peers']} complete)")
        )
        label = TRANSPORT_LABELS.get(run["transport"], run["transport"])
        lines.append(
            f"| {label} | {'-' if last is None else f'{last:.2f} s'}{done} "
            f"| {'-' if ratio is None else f'{ratio:.2f}x'} "
            f"| {'-' if share is None else f'{share:.1%}'} "
            f"| {_pair_cell(run['pairs'])} | {_pair_cell(run['natted_pairs'])} |"
        )
    return "\n".join(lines) + "\n"
