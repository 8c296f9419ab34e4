"""The damage attackers did: a run with attackers beside the same run without them.

Pure functions of two report.json documents (the lab's own, :mod:`ppsp.lab.runner` and
:mod:`ppsp.lab.live`); only honest peers are in their figures, attackers never are.

- Stored content (vod): each honest peer's completion time (from its own join), the last and
  the median; the peers that did not complete (failures); the source's share of the bytes
  delivered; bytes wasted: bytes honest peers received and did not keep (failed verification,
  cancelled duplicates, late or failed transfers: the reports' ``discarded_bytes``), with the
  requests given up by reason (``timeout`` and ``failed`` ones are requested and never
  received; their bytes are not counted by the peers).
- Live: continuity index over the honest viewers (min and mean), the viewers that wrote no
  report or exited with an error, the source's share, and the envelopes rejected as forged
  or stale (counts: a viewer does not record their size).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

TARGET_COMPLETION_RATIO = 1.5
"""Target: the last honest peer completes within this multiple of the run without attackers."""
TARGET_CONTINUITY = 0.98
"""Target: every honest viewer's continuity index under attack."""

Document = Mapping[str, Any]


def _ratio(attacked: float | None, clean: float | None) -> float | None:
    if attacked is None or clean is None or clean <= 0:
        return None
    return attacked / clean


def vod_damage(document: Document) -> dict[str, Any]:
    """The figures of one vod run that attackers may change."""
    figures = document["figures"]
    peers = figures["peers"]
    times = [p["completion_time"] for p in peers if p.get("completion_time") is not None]
    cancelled: dict[str, int] = dict(figures["transfers"].get("cancelled") or {})
    return {
        "peers": len(peers),
        "completed": len(times),
        "failures": [p["name"] for p in peers if not p.get("complete")],
        "last_completion": max(times) if times else None,
        "median_completion": statistics.median(times) if times else None,
        "source_share": figures["bytes"].get("source_share"),
        "bytes_wasted": int(figures["transfers"].get("discarded") or 0),
        "requests_given_up": cancelled,
        "requests_never_answered": cancelled.get("timeout", 0) + cancelled.get("failed", 0),
        "corrupt_chunks": cancelled.get("corrupt", 0),
    }


def compare_vod(clean: Document, attacked: Document) -> dict[str, Any]:
    """The vod comparison: both runs' damage figures, the ratios and the targets."""
    before, after = vod_damage(clean), vod_damage(attacked)
    ratio = _ratio(after["last_completion"], before["last_completion"])
    return {
        "clean": before,
        "attack": after,
        "ratio_last": ratio,
        "ratio_median": _ratio(after["median_completion"], before["median_completion"]),
        "target_ratio": TARGET_COMPLETION_RATIO,
        "ratio_met": ratio is not None and ratio <= TARGET_COMPLETION_RATIO,
        "no_failures": not after["failures"],
    }


def live_damage(document: Document) -> dict[str, Any]:
    """The figures of one live run that attackers may change."""
    figures = document["figures"]
    viewers = figures["viewers"]
    values = [v["continuity_index"] for v in viewers if v.get("continuity_index") is not None]
    failures = sorted(
        {v["name"] for v in viewers if not v.get("reported")}
        | {name for name in (document.get("failures") or {}) if name.startswith("viewer-")}
    )
    return {
        "viewers": len(viewers),
        "failures": failures,
        "continuity_min": min(values) if values else None,
        "continuity_mean": sum(values) / len(values) if values else None,
        "continuity": {v["name"]: v.get("continuity_index") for v in viewers},
        "source_share": figures["bytes"].get("source_share"),
        "forged_rejected": sum(int(v.get("forged_rejected") or 0) for v in viewers),
        "stale_rejected": sum(int(v.get("stale_rejected") or 0) for v in viewers),
    }


def compare_live(clean: Document, attacked: Document) -> dict[str, Any]:
    """The live comparison: both runs' damage figures and the continuity target."""
    before, after = live_damage(clean), live_damage(attacked)
    low = after["continuity_min"]
    return {
        "clean": before,
        "attack": after,
        "target_continuity": TARGET_CONTINUITY,
        "continuity_met": low is not None and low >= TARGET_CONTINUITY,
        "no_failures": not after["failures"],
    }


def _num(value: float | None, form: str) -> str:
    return "-" if value is None else format(value, form)


def render_attack_markdown(document: Document) -> str:
    """The report.md section of a run with attackers: who attacked, and the comparison."""
    attack = document.get("attack")
    if not attack:
        return ""
    lines = ["", "## Attackers", ""]
    lines += ["| kind | attackers | ready | addresses |", "|---|---|---|---|"]
    for kind, entry in attack["by_kind"].items():
        ready = sum(1 for member in entry["attackers"] if member["ready"])
        lines.append(
            f"| {kind} | {entry['count']} | {ready} | {', '.join(entry['addresses'][:6])}"
            f"{' ...' if entry['count'] > 6 else ''} |"
        )
    comparison = document.get("comparison")
    if not comparison:
        lines += ["", "No run without attackers to compare with (--no-compare)."]
        return "\n".join(lines) + "\n"
    clean, after = comparison["clean"], comparison["attack"]
    lines += ["", "## Without and with attackers (same seed)", ""]
    lines += ["| figure | without | with | |", "|---|---|---|---|"]
    if document.get("kind") == "live":
        lines += [
            f"| continuity, min over honest viewers | {_num(clean['continuity_min'], '.3f')} | "
            f"{_num(after['continuity_min'], '.3f')} | target >= "
            f"{comparison['target_continuity']:.2f}: "
            f"{'met' if comparison['continuity_met'] else 'missed'} |",
            f"| continuity, mean | {_num(clean['continuity_mean'], '.3f')} | "
            f"{_num(after['continuity_mean'], '.3f')} | |",
            f"| envelopes rejected as forged | {clean['forged_rejected']} | "
            f"{after['forged_rejected']} | |",
            f"| envelopes rejected as stale | {clean['stale_rejected']} | "
            f"{after['stale_rejected']} | |",
        ]
    else:
        lines += [
            f"| last honest peer complete (from its join) | "
            f"{_num(clean['last_completion'], '.2f')} s | {_num(after['last_completion'], '.2f')}"
            f" s | ratio {_num(comparison['ratio_last'], '.2f')}x, target <= "
            f"{comparison['target_ratio']:.1f}x: "
            f"{'met' if comparison['ratio_met'] else 'missed'} |",
            f"| median completion | {_num(clean['median_completion'], '.2f')} s | "
            f"{_num(after['median_completion'], '.2f')} s | ratio "
            f"{_num(comparison['ratio_median'], '.2f')}x |",
            f"| bytes wasted (received, not kept) | {clean['bytes_wasted']} | "
            f"{after['bytes_wasted']} | |",
            f"| requests never answered (timeout, failed) | "
            f"{clean['requests_never_answered']} | {after['requests_never_answered']} | |",
            f"| corrupt chunks received | {clean['corrupt_chunks']} | "
            f"{after['corrupt_chunks']} | |",
        ]
    share_before, share_after = clean["source_share"], after["source_share"]
    lines += [
        f"| source share | {_num(share_before, '.1%')} | {_num(share_after, '.1%')} | |",
        f"| honest peers failed | {len(clean['failures'])} | {len(after['failures'])} | "
        f"{', '.join(after['failures']) or 'none'} |",
    ]
    return "\n".join(lines) + "\n"
