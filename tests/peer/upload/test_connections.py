"""Connections a peer's endpoint holds per host (peer/upload/connections.py), without sockets."""

from __future__ import annotations

import pytest

from ppsp.peer.upload.connections import (
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_HOST,
    ConnectionBudget,
)


def test_a_host_holds_its_bound_and_no_more_until_one_closes() -> None:
    budget = ConnectionBudget()
    hosts = [budget.open("127.0.9.9") for _ in range(MAX_CONNECTIONS_PER_HOST)]
    assert hosts == ["127.0.9.9"] * MAX_CONNECTIONS_PER_HOST
    assert budget.open("127.0.9.9") is None and budget.open("::ffff:127.0.9.9") is None
    assert budget.refused == 2
    assert budget.open("127.0.4.4") == "127.0.4.4"  # another host is not held back
    budget.close("127.0.9.9")
    assert budget.open("127.0.9.9") == "127.0.9.9"
    assert budget.open_connections == MAX_CONNECTIONS_PER_HOST + 1
    for host in [*hosts, "127.0.4.4"]:
        budget.close(host)
    assert budget.open_per_host == {} and budget.open_connections == 0


def test_an_ipv6_host_is_its_slash_64_and_our_own_host_is_not_bounded() -> None:
    budget = ConnectionBudget(per_host=2)
    assert budget.open("2001:db8::1") == budget.open("2001:db8::2") == "2001:db8::/64"
    assert budget.open("2001:db8::ffff:3") is None  # any address of the /64: the same host
    assert budget.open("2001:db8:0:1::1") is not None  # the next /64 is another host
    budget.local_host = "127.0.0.1"
    assert all(budget.open("127.0.0.1") for _ in range(10))


def test_the_bounds_leave_room_for_honest_downloaders() -> None:
    """A downloader holds at most 16 connections of its event loop's HTTP client and 16 of its
    chunk threads to one peer: two such processes behind one address fit in the bound."""
    from ppsp.http.client import HttpClient
    from ppsp.peer.net.chunkfetch import ThreadedChunkClient

    client, threads = HttpClient(), ThreadedChunkClient()
    try:
        per_downloader = client.limit_per_host + threads._threads
    finally:
        threads.close()
    assert 2 * per_downloader <= MAX_CONNECTIONS_PER_HOST
    assert 16 * MAX_CONNECTIONS_PER_HOST <= MAX_CONNECTIONS
    with pytest.raises(ValueError):
        ConnectionBudget(per_host=0)
