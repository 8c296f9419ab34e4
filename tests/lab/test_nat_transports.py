"""The NAT lab over HTTP only (``--transport http``) and beside the PPSPP swarm
(``--http-beside``): each process's command line, the run added, and report.md's table, from
fixed data (no namespace is made, no process started)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ppsp.app.cli.lab import lab
from ppsp.lab.errors import LabError
from ppsp.lab.nat_report import compare_transports, render_transports_markdown
from ppsp.lab.netns import NatNetwork, choose_natted, plan_network
from ppsp.lab.report import MiB, analyse_vod, render_markdown
from ppsp.lab.runner import (
    VodLabSettings,
    http_settings,
    peer_command,
    run_vod_lab,
    source_command,
)

PEERS = 4
NATTED = choose_natted(PEERS, 0.75, seed=1)


def _commands(
    settings: VodLabSettings, tmp_path: Path
) -> tuple[list[str], list[list[str]], NatNetwork]:
    net = NatNetwork(plan_network(PEERS, NATTED, tag="abc"))
    dirs = {name: tmp_path / name for name in ("work", "logs", "reports")}
    source = source_command(
        settings,
        tmp_path / "content.bin",
        tracker_url="http://t/",
        host="10.1.1.1",
        dirs=dirs,
        net=net,
    )
    peers = [
        peer_command(
            settings,
            i,
            swarm_id="ab" * 32,
            tracker_url="http://t/",
            host=net.plan.peers[i].address,
            dirs=dirs,
            leaves=False,
            net=net,
        )
        for i in range(PEERS)
    ]
    return source, peers, net


def _transports(args: list[str]) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == "--transport"]


def test_an_http_only_run_serves_no_ppspp_and_its_peers_ask_http_alone_without_stun(
    tmp_path: Path,
) -> None:
    assert len(NATTED) == 3
    ppspp = VodLabSettings(out=tmp_path, peers=PEERS, nat=0.75, ppspp_chunk_size=32768)
    source, peers, net = _commands(ppspp, tmp_path)
    assert source[source.index("--ppspp-port") + 1] == "0"
    assert "--ppspp-chunk-size" in source
    for i, args in enumerate(peers):
        assert _transports(args) == ["ppspp", "http"]
        assert ("--stun" in args) is (i in NATTED) and ("--turn" in args) is (i in NATTED)

    http = VodLabSettings(out=tmp_path, peers=PEERS, nat=0.75, transport="http")
    source_http, peers_http, _ = _commands(http, tmp_path)
    assert "--ppspp-port" not in source_http and "--ppspp-chunk-size" not in source_http
    for args in peers_http:
        assert _transports(args) == ["http"]
        assert not {"--stun", "--turn", "--turn-user"} & set(args)
        assert net.turn_password not in args
    # Apart from the transports, every process runs as in the PPSPP run.
    assert source_http == source[: source.index("--ppspp-port")]
    for args, args_http in zip(peers, peers_http, strict=True):
        assert args_http[: len(args_http) - 2] == args[: args.index("--transport")]


def test_http_beside_runs_the_same_swarm_over_http_only_into_out_http(tmp_path: Path) -> None:
    settings = VodLabSettings(
        out=tmp_path,
        peers=16,
        size_mb=8.0,
        source_rate=3 * MiB,
        peer_rate=MiB,
        join_spread=3.0,
        churn=0.25,
        seed=7,
        nat=0.75,
        symmetric=0.5,
        http_beside=True,
    )
    beside = http_settings(settings)
    assert beside.out == tmp_path / "http"
    assert (beside.transport, beside.http_beside, beside.baseline) == ("http", False, False)
    kept = ("peers", "size_mb", "source_rate", "peer_rate", "join_spread", "churn", "seed", "nat")
    assert all(getattr(beside, name) == getattr(settings, name) for name in kept)
    assert beside.symmetric == settings.symmetric


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"http_beside": True}, "go with --nat"),
        ({"transport": "http"}, "go with --nat"),
        ({"nat": 0.5, "transport": "http", "http_beside": True}, "not beside itself"),
        ({"nat": 0.5, "transport": "udp"}, "transport is one of"),
    ],
)
def test_the_runner_refuses_what_does_not_go_together_before_starting_anything(
    changes: dict[str, Any], message: str, tmp_path: Path
) -> None:
    settings = VodLabSettings(out=tmp_path / "out", peers=2, **changes)
    with pytest.raises(LabError, match=message):
        asyncio.run(run_vod_lab(settings, say=lambda _: None))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["--http-beside"], "--http-beside"),
        (["--transport", "http"], "--transport"),
        (["--nat", "0.5", "--transport", "http", "--http-beside"], "--http-beside"),
        (["--nat", "0.5", "--transport", "http", "--ppspp-chunk-size", "8192"], "chunk"),
    ],
)
def test_the_command_line_checks_the_transport_options(
    args: list[str], hint: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(lab, ["vod", "--peers", "2", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and hint in result.output, result.output
    assert not (tmp_path / "o").exists()


# -- report.md's table, from fixed report data ----------------------------------------------


def _pairs(direct: int, relayed: int, never: int, not_needed: int) -> dict[str, int]:
    total = direct + relayed + never + not_needed
    return {
        "total": total,
        "direct": direct,
        "relayed": relayed,
        "never": never,
        "not_needed": not_needed,
    }


def _document(
    transport: str,
    last: float | None,
    share: float,
    pairs: dict[str, int],
    natted: dict[str, int],
    complete: int = 16,
) -> dict[str, Any]:
    peers = [{"name": f"peer-{i + 1:02d}", "complete": i < complete} for i in range(16)]
    return {
        "parameters": {"transport": transport},
        "figures": {
            "peers": peers,
            "last_completion": last,
            "bound": {"seconds": 14.222},
            "ratio": None if last is None else last / 14.222,
            "bytes": {"source_share": share},
        },
        "nat": {"pairs": pairs, "natted_pairs": natted},
    }


def test_the_table_sets_ppspp_beside_http_only() -> None:
    ppspp = _document("ppspp", 20.37, 0.155, _pairs(119, 1, 0, 0), _pairs(113, 1, 0, 0))
    http = _document("http", None, 0.352, _pairs(52, 0, 66, 2), _pairs(46, 0, 66, 2), complete=15)
    section = compare_transports(ppspp, http, "http")
    first, second = section["runs"]
    assert first["natted_pairs"] == {"total": 114, "connected": 114, "never": 0, "not_needed": 0}
    assert (second["transport"], second["completed"], second["peers"]) == ("http", 15, 16)
    text = render_transports_markdown({"transports": section})
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[1:] == [
        "| PPSPP, then HTTP | 20.37 s | 1.43x | 15.5% | 120 / 0 / 0 of 120 | 114 / 0 / 0 of 114 |",
        "| HTTP only | - (15 of 16 complete) | - | 35.2% | 52 / 66 / 2 of 120 "
        "| 46 / 66 / 2 of 114 |",
    ]
    assert "`http/`" in text
    assert render_transports_markdown({}) == ""


def test_report_md_puts_the_table_after_the_targets() -> None:
    size = 4 * MiB
    source = {
        "peer_id": "S",
        "wall_offset": 0.0,
        "sessions": [
            {
                "swarm_id": "x",
                "mode": "seed",
                "size": size,
                "complete": True,
                "joined_at": 0.0,
                "completed_at": None,
                "received_from": {},
                "uploaded_to": {"A": size},
                "arrivals": [],
            }
        ],
    }
    peer = {
        "peer_id": "A",
        "wall_offset": 0.0,
        "sessions": [
            {
                "swarm_id": "x",
                "mode": "leech",
                "size": size,
                "complete": True,
                "joined_at": 0.0,
                "completed_at": 5.0,
                "received_from": {"S": size},
                "uploaded_to": {},
                "arrivals": [[5.0, "S", size]],
            }
        ],
    }
    figures = analyse_vod(
        swarm_id="x",
        source=source,
        peers=[("peer-01", peer, False)],
        source_rate=MiB,
        peer_rates=[MiB],
    )
    document: dict[str, Any] = {
        "command": "ppsp lab vod --nat 0.75 --http-beside",
        "parameters": {
            "peers": 1,
            "source_rate": MiB,
            "peer_rate": MiB,
            "download_rate": None,
            "join_spread": 0.0,
            "churn": 0.0,
            "seed": 1,
        },
        "figures": figures.to_json(),
    }
    section = render_transports_markdown(
        {
            "transports": compare_transports(
                _document("ppspp", 20.0, 0.1, _pairs(1, 0, 0, 0), _pairs(1, 0, 0, 0)),
                _document("http", 40.0, 0.3, _pairs(0, 0, 1, 0), _pairs(0, 0, 1, 0)),
                "http",
            )
        }
    )
    text = render_markdown(document, after_targets=section)
    assert text.index("## Targets") < text.index("## PPSPP against HTTP only")
    assert text.index("## PPSPP against HTTP only") < text.index("## Bytes sent against")
    assert "## PPSPP against HTTP only" not in render_markdown(document)
