"""``python -m bench.tracker_compare``: its request templates and its report's shape.

The run test starts real trackers and a real ``wrk`` (skipped without it), against our tracker
alone (the anchors are not asked for), with a few thousand peers and one-second rounds; it
checks what the report holds, never how fast anything was.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from bench import tracker_compare as tc

from ppsp.codecs.tracker import codec_for
from ppsp.wire.tracker import (
    ConnectRequest,
    DisconnectRequest,
    Encoding,
    FindRequest,
    JoinRequest,
    PeerMode,
    StatReportRequest,
)

LUA_STRING = re.compile(r"\[==\[(.*?)\]==\]", re.S)


def _fill(template: str, peer: int, swarm: int, port: int) -> bytes:
    """What the Lua scripts do to a template: same-width IDs and port in place."""
    text = template.replace(tc.PEER, tc.PEER_FORMAT % peer)
    text = text.replace(tc.SWARM, tc.SWARM_FORMAT % swarm)
    return text.replace(tc.PORT, f"{port:05d}").encode()


@pytest.mark.parametrize("encoding", [Encoding.XML, Encoding.JSON])
def test_templates_decode_to_the_intended_requests(encoding: Encoding) -> None:
    """Every template, filled in as the scripts fill it, is a valid request of its kind for
    the peer, swarm and port put in (so the load is real PPSP-TP, in either encoding)."""
    lua = tc.templates_lua(encoding)
    bodies = LUA_STRING.findall(lua)
    # connect, join seed, join leech, find, 16 reports, churn connect/join/disconnect
    assert len(bodies) == 4 + 16 + 3
    codec = codec_for(encoding)
    decoded = [codec.decode_request(_fill(body, 1234, 56, 10007)) for body in bodies]
    kinds = [type(message) for message in decoded]
    assert kinds[:4] == [ConnectRequest, JoinRequest, JoinRequest, FindRequest]
    assert kinds[4:20] == [StatReportRequest] * 16
    assert kinds[20:] == [ConnectRequest, JoinRequest, DisconnectRequest]
    for message in decoded:
        assert message.peer_id == "p000001234"
    connect, seed, leech, find = decoded[:4]
    assert isinstance(connect, ConnectRequest) and connect.peer_addresses[0].port == 10007
    assert isinstance(seed, JoinRequest) and seed.swarms[0].peer_mode is PeerMode.SEED
    assert isinstance(leech, JoinRequest) and leech.swarms[0].swarm_id == "s0000056"
    assert isinstance(find, FindRequest) and find.swarm_id == "s0000056"
    assert f'content_type = "{encoding.content_type}"' in lua


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed")
def test_quick_run_against_our_tracker_writes_every_round(tmp_path: Path) -> None:
    """A quick run against ppsp-xml and ppsp-json: every peer registered without a refusal,
    real peer lists answered, one entry per server and round, the rate-limited run, the
    targets judged, the revision recorded."""
    out = tmp_path / "report.json"
    argv = ["--quick", "--only", "ppsp-xml", "ppsp-json", "--peers", "2000"]
    argv += ["--duration", "1", "--rounds", "1", "--warmup", "0", "--out", str(out)]
    assert tc.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["complete"] is True
    assert re.fullmatch(r"[0-9a-f]{40}", report["revision"]["commit"])
    assert report["skipped"] == {}
    assert set(report["servers"]) == {"ppsp-xml", "ppsp-json"}
    for name, entry in report["servers"].items():
        registration = entry["registration"]
        assert registration["peers"] == 2000 and registration["swarms"] == 100
        assert registration["error_total"] == 0
        assert isinstance(registration["rss_bytes_per_peer"], float)
        assert entry["peers_in_answer"] == 19  # a swarm of 20, the asking peer left out
        for key in ("requests_per_second", "server_cpu_us_per_request", "p50_ms", "p99_ms"):
            assert entry[key] > 0
        limited = report["rate_limited"][name]
        assert limited["target_requests_per_second"] > 0
        assert limited["latency_ms"]["p99"] >= limited["latency_ms"]["p50"] > 0
    assert sorted(r["server"] for r in report["rounds"]) == ["ppsp-json", "ppsp-xml"]
    for result in report["rounds"]:
        assert result["requests"] > 0 and result["errors"]["status"] == 0
    statuses = {(v["server"], v["target"]): v["status"] for v in report["targets"]}
    assert len(statuses) == 6
    assert set(statuses.values()) <= {"met", "missed", "not measured"}
    # no 1,000,000-peer run in quick mode: that target is not measured, never "met"
    assert statuses[("ppsp-xml", "RSS per peer at 1,000,000 (B)")] == "not measured"
