"""The NAT lab's network plan (pure: no namespace is made) and its command-line checks."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ppsp.app.cli.lab import lab
from ppsp.lab import nat_setup, netns
from ppsp.lab.errors import LabError
from ppsp.lab.nat_setup import nat_network
from ppsp.lab.netns import (
    HEADER_ALLOWANCE,
    MAX_NAT_PEERS,
    choose_natted,
    missing_requirements,
    plan_network,
    tbf_args,
)


def test_the_fraction_behind_nat_is_rounded_and_drawn_with_the_seed() -> None:
    assert len(choose_natted(4, 0.75, seed=1)) == 3
    assert len(choose_natted(16, 0.75, seed=1)) == 12
    assert choose_natted(16, 0.75, seed=1) == choose_natted(16, 0.75, seed=1)
    assert choose_natted(16, 0.75, seed=1) != choose_natted(16, 0.75, seed=2)
    assert choose_natted(5, 0.0, seed=1) == frozenset()
    assert choose_natted(5, 1.0, seed=1) == frozenset(range(5))
    with pytest.raises(ValueError, match="fraction"):
        choose_natted(4, 1.5, seed=1)


def test_each_host_has_a_public_slash_24_of_its_own_and_each_nat_a_private_network() -> None:
    plan = plan_network(300, frozenset({0, 2, 299}), tag="abc")
    assert plan.natted == frozenset({0, 2, 299})
    assert (plan.tracker.address, plan.source.address, plan.stun.address) == (
        "10.1.0.1",
        "10.1.1.1",
        "10.1.2.1",
    )
    assert plan.stun_server == "10.1.2.1:3478"
    publics = [node.public for node in plan.nodes()]
    assert len({ipaddress.ip_network(f"{a}/24", strict=False) for a in publics}) == len(publics)
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("10.0.0.0/8") for a in publics)
    # A public peer binds its public address; a NATed one its private address, its router
    # holding the public one.
    public = plan.peers[1]
    assert (public.address, public.public, public.router, public.natted) == (
        "10.2.1.1",
        "10.2.1.1",
        None,
        False,
    )
    natted = plan.peers[299]
    assert natted.natted and natted.router == "ppsp-lab-abc-r300"
    assert (natted.address, natted.gateway, natted.public) == (
        "172.17.43.2",
        "172.17.43.1",
        "10.3.43.1",
    )
    privates = [ipaddress.ip_network(f"{plan.peers[i].address}/24", strict=False) for i in (0, 2)]
    assert privates[0] != privates[1]  # no NATed peer can mistake another's for its own
    assert all(not net.overlaps(ipaddress.ip_network("10.0.0.0/8")) for net in privates)
    # The addresses the processes bind, in the loopback lab's form.
    addresses = plan.addresses()
    assert addresses.peers[0] == "172.16.0.2" and addresses.peers[1] == "10.2.1.1"


def test_namespace_names_carry_the_tag_are_unique_and_fit_the_kernel() -> None:
    plan = plan_network(16, choose_natted(16, 0.75, seed=1), tag="f00d01")
    names = plan.namespaces()
    assert names[0] == plan.switch
    assert len(names) == len(set(names)) == 1 + 3 + 16 + 12
    assert all(name.startswith("ppsp-lab-f00d01-") for name in names)
    # Every router is made before the peer behind it (its veth is created from the router).
    for peer in plan.peers:
        if peer.router is not None:
            assert names.index(peer.router) < names.index(peer.namespace)
    assert plan_network(2, frozenset()).tag != plan_network(2, frozenset()).tag


def test_the_plan_refuses_what_it_has_no_room_for() -> None:
    with pytest.raises(ValueError, match="room"):
        plan_network(MAX_NAT_PEERS + 1, frozenset())
    with pytest.raises(ValueError, match="not in the lab"):
        plan_network(2, frozenset({2}))


def test_tbf_caps_the_uplink_at_the_rate_plus_headers() -> None:
    args = tbf_args(2 * 1024 * 1024)
    assert args[:4] == ["root", "tbf", "rate", f"{int(2 * 1024 * 1024 * 8 * HEADER_ALLOWANCE)}bit"]
    assert args[args.index("burst") + 1] == str(2 * 1024 * 1024 // 20)
    # A slow link still holds a whole fragmented 8 KiB PPSPP datagram.
    assert int(tbf_args(10_000)[tbf_args(10_000).index("burst") + 1]) == 32 * 1024


@pytest.mark.parametrize("command", ["vod", "live"])
def test_without_what_a_nat_lab_needs_the_command_exits_2_with_one_line(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = "ppsp lab --nat needs root (network namespaces, nftables, tc)"
    monkeypatch.setattr(nat_setup, "missing_requirements", lambda: line)
    result = CliRunner().invoke(
        lab, [command, "--nat", "0.5", "--peers", "2", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"Error: {line}"]
    assert not (tmp_path / "out").exists()  # nothing was started


def test_the_requirements_name_root_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert missing_requirements() == "ppsp lab --nat needs root (network namespaces, nftables, tc)"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns, "_which", lambda tool: None if tool == "turnserver" else tool)
    assert missing_requirements() == "ppsp lab --nat needs turnserver (apt-get install coturn)"


def test_a_nat_lab_takes_no_attackers_and_no_nat_means_loopback() -> None:
    with pytest.raises(LabError, match="attackers"):
        nat_network(0.5, 4, 1, attackers=2)
    assert nat_network(None, 4, 1) is None


def test_symmetric_nats_are_some_of_the_natted_drawn_with_the_seed_and_map_apart() -> None:
    natted = choose_natted(16, 0.75, seed=1)
    apart = netns.choose_symmetric(natted, 0.5, seed=1)
    assert len(apart) == 6 and apart <= natted
    assert apart == netns.choose_symmetric(natted, 0.5, seed=1)
    assert netns.choose_symmetric(natted, 0.0, seed=1) == frozenset()
    with pytest.raises(ValueError, match="fraction"):
        netns.choose_symmetric(natted, 2.0, seed=1)
    plan = plan_network(16, natted, tag="abc", symmetric=apart)
    assert plan.symmetric == apart
    with pytest.raises(ValueError, match="symmetric"):
        plan_network(4, frozenset({1}), symmetric=frozenset({2}))
    # Their routers masquerade fully-random; the others keep one mapping per socket.
    assert "masquerade fully-random;" in netns.router_rules(per_destination=True)
    assert "fully-random" not in netns.router_rules() and "masquerade;" in netns.router_rules()


def test_coturn_relays_with_the_run_s_password_and_peers_behind_nat_get_turn() -> None:
    plan = plan_network(2, frozenset({0}), tag="abc")
    stun_only = netns.turnserver_args(plan, "/tmp/x")
    assert "--stun-only" in stun_only
    relaying = netns.turnserver_args(plan, "/tmp/x", "pw")
    assert "--stun-only" not in relaying
    assert relaying[relaying.index("-u") + 1] == f"{netns.TURN_USER}:pw"
    assert relaying[relaying.index("--relay-ip") + 1] == plan.stun.address
    net = netns.NatNetwork(plan)
    args = nat_setup.nat_peer_args(net, 0, relay=True)
    assert args[args.index("--turn") + 1] == plan.stun_server
    assert net.turn_password not in args  # in the environment, not on the command line
    assert nat_setup.nat_peer_env(net) == {"PPSP_GET_TURN_PASSWORD": net.turn_password}
    viewer = nat_setup.nat_peer_env(net, "watch")
    assert viewer == {"PPSP_WATCH_TURN_PASSWORD": net.turn_password}
    assert "--turn" not in nat_setup.nat_peer_args(net, 1, relay=True)  # a public peer
    assert "--turn" not in nat_setup.nat_peer_args(net, 0)


def test_symmetric_goes_with_nat(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        lab, ["vod", "--symmetric", "0.5", "--peers", "2", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2 and "goes with --nat" in result.output, result.output
