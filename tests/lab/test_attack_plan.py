"""Address planning and the attack comparison of the lab (pure, no processes)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from ppsp.lab.addresses import plan_addresses
from ppsp.lab.attack_report import (
    compare_live,
    compare_vod,
    render_attack_markdown,
    vod_damage,
)
from ppsp.lab.attackers import attack_section
from ppsp.tracker.limits import prefix_key


def test_every_process_has_its_own_slash_24() -> None:
    plan = plan_addresses(300, ("tarpit", "flood"), 4)
    addresses = plan.all()
    assert len(addresses) == 2 + 300 + 8
    assert len({prefix_key(ip) for ip in addresses}) == len(addresses)
    assert all(ipaddress.ip_address(ip).is_loopback for ip in addresses)
    assert plan.attackers["tarpit"][0] == "127.20.0.1"
    assert plan.attackers["flood"][3] == "127.24.3.1"
    assert plan.peers[256] == "127.3.0.1"


def test_a_plan_refuses_unknown_kinds_and_too_many() -> None:
    with pytest.raises(ValueError, match="unknown"):
        plan_addresses(3, ("mallory",), 1)
    with pytest.raises(ValueError):
        plan_addresses(3, ("tarpit",), 257)


def _vod(times: list[float | None], discarded: int, cancelled: dict[str, int]) -> dict[str, Any]:
    return {
        "kind": "vod",
        "figures": {
            "peers": [
                {"name": f"peer-{i}", "completion_time": t, "complete": t is not None}
                for i, t in enumerate(times)
            ],
            "bytes": {"source_share": 0.2},
            "transfers": {"discarded": discarded, "cancelled": cancelled},
        },
    }


def test_vod_comparison_ratio_failures_and_waste() -> None:
    clean = _vod([2.0, 3.0, 4.0], 0, {})
    attacked = _vod([2.0, 5.0, 7.0], 65536, {"corrupt": 1, "timeout": 2, "failed": 1})
    comparison = compare_vod(clean, attacked)
    assert comparison["ratio_last"] == pytest.approx(7.0 / 4.0)
    assert comparison["ratio_median"] == pytest.approx(5.0 / 3.0)
    assert not comparison["ratio_met"]
    assert comparison["no_failures"]
    damage = comparison["attack"]
    assert damage["bytes_wasted"] == 65536
    assert damage["requests_never_answered"] == 3
    assert damage["corrupt_chunks"] == 1
    failed = vod_damage(_vod([2.0, None], 0, {}))
    assert failed["failures"] == ["peer-1"] and failed["last_completion"] == 2.0


def _live(continuity: list[float | None], forged: int) -> dict[str, Any]:
    return {
        "kind": "live",
        "failures": {},
        "figures": {
            "viewers": [
                {
                    "name": f"viewer-{i:02d}",
                    "continuity_index": c,
                    "reported": c is not None,
                    "forged_rejected": forged,
                }
                for i, c in enumerate(continuity)
            ],
            "bytes": {"source_share": 0.3},
        },
    }


def test_live_comparison_continuity_target() -> None:
    met = compare_live(_live([1.0, 1.0], 0), _live([0.99, 1.0], 3))
    assert met["continuity_met"] and met["attack"]["forged_rejected"] == 6
    missed = compare_live(_live([1.0, 1.0], 0), _live([0.5, None], 0))
    assert not missed["continuity_met"] and missed["attack"]["failures"] == ["viewer-01"]


def test_markdown_renders_attackers_and_comparison(tmp_path: Any) -> None:
    plan = plan_addresses(2, ("corrupt",), 2)
    section = attack_section(plan, 2, tmp_path, {"attack-corrupt-01"})
    assert section["by_kind"]["corrupt"]["addresses"] == ["127.22.0.1", "127.22.1.1"]
    document = {
        "kind": "vod",
        "attack": section,
        "comparison": compare_vod(_vod([1.0], 0, {}), _vod([1.2], 10, {"corrupt": 1})),
    }
    text = render_attack_markdown(document)
    assert "| corrupt | 2 | 1 |" in text
    assert "ratio 1.20x" in text and "met" in text


def test_the_command_line_offers_every_attack_kind() -> None:
    from ppsp.app.cli.lab import ATTACK_KINDS
    from ppsp.lab.attack import KINDS

    assert ATTACK_KINDS == KINDS
