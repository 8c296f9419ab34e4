"""``python -m bench.tracker_scale``: its request templates and its report's shape.

The run test starts a real tracker and prober at a tiny scale (2,000 peers, timers of a few
seconds) and checks what the report holds and that the counts agree, never how fast anything
was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench import tracker_scale as ts
from bench.tracker_memory import advertised_ip

from ppsp.codecs.tracker import codec_for
from ppsp.wire.tracker import ConnectRequest, Encoding, JoinRequest, PeerMode


@pytest.mark.parametrize("encoding", [Encoding.XML, Encoding.JSON])
def test_filled_templates_decode_to_each_peers_connect_and_join(encoding: Encoding) -> None:
    """The loader's bodies, filled from templates rather than encoded, are the intended
    CONNECT (the peer's ID and own address) and JOIN (the peer's ID and swarm) of each peer."""
    templates = ts.Templates.of(encoding)
    codec = codec_for(encoding)
    for i in (0, 7, 99_999, 1_000_000):
        connect = codec.decode_request(templates.fill(templates.connect, i, 10))
        join = codec.decode_request(templates.fill(templates.join, i, 10))
        assert isinstance(connect, ConnectRequest) and isinstance(join, JoinRequest)
        assert connect.peer_id == join.peer_id == f"{i:016x}"
        assert connect.swarm_actions == ()
        (address,) = connect.peer_addresses
        assert (address.ip, address.port) == (advertised_ip(i), 7000)
        (action,) = join.swarms
        assert action.swarm_id == f"swarm{i // 10:07d}"
        assert action.peer_mode is PeerMode.LEECH


def test_probe_window_counts_a_stopped_probe_from_the_resume() -> None:
    """A probe sent before the SIGCONT is timed from it; probes outside the window are not
    counted."""
    probes = ts.Probes([(0.0, 0.5, 10), (9.0, 12.0, 10), (12.0, 12.25, 0), (20.0, 20.01, 0)])
    window = probes.window(10.0, 13.0, resumed=11.0)
    assert window["probes"] == 2
    assert window["max_ms"] == 1000.0  # 12.0 - 11.0, not 12.0 - 9.0
    assert probes.window(0.0, 1.0)["max_ms"] == 500.0


@pytest.mark.parametrize("expiry", ["stall", "natural"])
def test_tiny_run_writes_every_figure(tmp_path: Path, expiry: str) -> None:
    """2,000 peers in 20 swarms over HTTP: the report holds registration, memory, FIND,
    expiry and probe figures; the tracker counted every peer, answered every FIND with a
    peer list, and expired every peer once the timers ran out."""
    out = tmp_path / "scale.json"
    argv = ["--peers", "2000", "--swarms", "20", "--track-timeout", "5", "--finds", "40"]
    assert ts.main([*argv, "--expiry", expiry, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["benchmark"] == "tracker_scale"
    assert report["scenario"]["swarm_size"] == 100
    registration = report["registration"]
    peers = registration["peers"]
    # The registration may be cut by its time bound on a loaded machine: counts must agree.
    assert 0 < peers <= 2000 and registration["complete"] == (peers == 2000)
    assert registration["failures"] == 0
    assert registration["status_after"]["peers"] == peers + 1  # the warm-up peer
    assert registration["status_after"]["memberships"] == peers + 1
    find = report["find"]
    assert find["requests"] == 40 and find["failures"] == 0
    assert 0 < find["peers_per_answer_mean"] <= 20
    assert set(find["latency_ms"]) == {"p50", "p90", "p99", "max"}
    memory = report["memory"]
    for key in ("rss_before_bytes", "rss_after_registration_bytes", "rss_peak_bytes"):
        assert isinstance(memory[key], int) and memory[key] > 0
    assert isinstance(memory["rss_bytes_per_peer"], float)
    expired = report["expiry"]
    assert expired["mode"] == expiry and expired["complete"] is True
    assert expired["expired"] == peers + 1
    assert isinstance(expired["sweep_seconds"], float)
    assert expired["longest_pause_ms"] is not None
    assert set(report["status_probes"]) == {"registration", "find", "expiry"}
    assert report["status_probes"]["expiry"]["failed"] == 0
    assert report["notes"]
