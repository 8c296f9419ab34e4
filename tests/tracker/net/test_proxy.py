"""A trusted reverse proxy names the client; nobody else can (proxy.py, and over real HTTP)."""

from __future__ import annotations

import ipaddress

import aiohttp
import pytest

from ppsp.codecs.tracker import codec_for
from ppsp.tracker.core import TrackerConfig
from ppsp.tracker.limits import Limits
from ppsp.tracker.net.proxy import (
    FORWARDED,
    X_FORWARDED_FOR,
    TrustedProxies,
    forwarded_address,
    parse_networks,
)
from ppsp.tracker.net.server import ServerSettings, running_tracker
from ppsp.wire.tracker import (
    AddressType,
    ConnectRequest,
    Encoding,
    ProtocolVersion,
    TrackerResponse,
)

V11 = ProtocolVersion.V1_1
PROXY = "127.0.0.2"
CLIENT = "127.0.0.3"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["198.51.100.7"], ("198.51.100.7", 9)),
        (["6.6.6.6, 198.51.100.7"], ("198.51.100.7", 9)),
        (["6.6.6.6", "203.0.113.1,198.51.100.7"], ("198.51.100.7", 9)),
        (["6.6.6.6, 198.51.100.7:4711"], ("198.51.100.7", 4711)),
        (["2001:db8::1"], ("2001:db8::1", 9)),
        (["[2001:db8::1]:4711"], ("2001:db8::1", 4711)),
        (["::ffff:198.51.100.7"], ("198.51.100.7", 9)),
        (["198.51.100.7, unknown"], None),
        (["198.51.100.7, not-an-address"], None),
        (["198.51.100.7:99999"], ("198.51.100.7", 9)),
        ([], None),
    ],
)
def test_x_forwarded_for_last_hop(values: list[str], expected: tuple[str, int] | None) -> None:
    assert forwarded_address(X_FORWARDED_FOR, values, 9) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["for=198.51.100.7"], ("198.51.100.7", 9)),
        (["for=6.6.6.6, for=198.51.100.7;proto=https"], ("198.51.100.7", 9)),
        (['for="[2001:db8:cafe::17]:4711"'], ("2001:db8:cafe::17", 4711)),
        (['proto=http;For="198.51.100.7:80";by=203.0.113.43'], ("198.51.100.7", 80)),
        (["for=198.51.100.7, for=_hidden"], None),
        (["for=198.51.100.7, by=203.0.113.43"], None),
        (["for=unknown"], None),
    ],
)
def test_forwarded_last_hop(values: list[str], expected: tuple[str, int] | None) -> None:
    assert forwarded_address(FORWARDED, values, 9) == expected


def test_only_trusted_peers_may_name_the_client() -> None:
    proxies = TrustedProxies(parse_networks(["10.0.0.0/8", "::1"]))
    assert proxies.client(("10.1.2.3", 5), ["6.6.6.6, 198.51.100.7"]) == ("198.51.100.7", 5)
    assert proxies.client(("::1", 5), ["198.51.100.7"]) == ("198.51.100.7", 5)
    assert proxies.client(("::ffff:10.1.2.3", 5), ["198.51.100.7"]) == ("198.51.100.7", 5)
    assert proxies.client(("11.0.0.1", 5), ["198.51.100.7"]) == ("11.0.0.1", 5)
    assert proxies.client(("10.1.2.3", 5), []) == ("10.1.2.3", 5)
    assert proxies.client(("10.1.2.3", 5), ["garbage"]) == ("10.1.2.3", 5)
    assert TrustedProxies(()).client(("10.1.2.3", 5), ["198.51.100.7"]) == ("10.1.2.3", 5)


def test_networks_are_checked() -> None:
    assert parse_networks(["10.0.0.0/8", ipaddress.ip_network("::1")]) == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    with pytest.raises(ValueError, match=r"10\.0\.0\.1/8"):
        parse_networks(["10.0.0.1/8"])
    with pytest.raises(ValueError, match=r"trusted proxies: 'example\.org' does not appear"):
        parse_networks(["example.org"])
    with pytest.raises(ValueError, match="trusted proxies"):
        ServerSettings(trusted_proxies=["nonsense"])
    with pytest.raises(ValueError, match="proxy header"):
        ServerSettings(proxy_header="X-Real-IP")


async def _connect(url: str, source: str, peer_id: str, headers: dict[str, str]) -> TrackerResponse:
    codec = codec_for(Encoding.XML)
    body = codec.encode_request(ConnectRequest(version=V11, transaction_id="1", peer_id=peer_id))
    connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(
            url, data=body, headers={"Content-Type": Encoding.XML.content_type, **headers}
        ) as resp,
    ):
        answer = codec.decode_response(await resp.read(), resp.status, resp.reason or "")
        assert isinstance(answer, TrackerResponse), answer
        return answer


def _observed_ip(answer: TrackerResponse) -> str:
    assert answer.requester is not None
    (address,) = [a for a in answer.requester.addresses if a.type is AddressType.REFLEXIVE]
    return address.ip


@pytest.mark.parametrize("header", [X_FORWARDED_FOR, FORWARDED])
async def test_the_observed_address_behind_a_trusted_proxy(header: str) -> None:
    forged = "6.6.6.6" if header == X_FORWARDED_FOR else "for=6.6.6.6"
    added = "198.51.100.7" if header == X_FORWARDED_FOR else "for=198.51.100.7"
    settings = ServerSettings(trusted_proxies=[f"{PROXY}/32"], proxy_header=header)
    async with running_tracker(TrackerConfig(), settings=settings) as running:
        # From the proxy: the hop it added, never the one the client wrote.
        answer = await _connect(running.url, PROXY, "a", {header: f"{forged}, {added}"})
        assert _observed_ip(answer) == "198.51.100.7"
        # From anyone else: the header means nothing.
        answer = await _connect(running.url, CLIENT, "b", {header: added})
        assert _observed_ip(answer) == CLIENT
        # The other header is not read, even from the proxy (it may pass on what a client wrote).
        other = FORWARDED if header == X_FORWARDED_FOR else X_FORWARDED_FOR
        answer = await _connect(running.url, PROXY, "c", {other: "for=198.51.100.9"})
        assert _observed_ip(answer) == PROXY


async def test_clients_behind_a_proxy_have_request_rates_of_their_own() -> None:
    limits = Limits(requests_per_second_per_host=0.1, request_burst_per_host=2)
    settings = ServerSettings(trusted_proxies=[f"{PROXY}/32"], limits=limits)
    async with running_tracker(TrackerConfig(), settings=settings) as running:
        codec = codec_for(Encoding.XML)
        connector = aiohttp.TCPConnector(local_addr=(PROXY, 0))
        async with aiohttp.ClientSession(connector=connector) as session:
            statuses: dict[str, list[int]] = {}
            for client in ("198.51.100.1", "198.51.100.2"):
                for i in range(3):
                    body = codec.encode_request(
                        ConnectRequest(version=V11, transaction_id="1", peer_id=f"{client}-{i}")
                    )
                    headers = {
                        "Content-Type": Encoding.XML.content_type,
                        X_FORWARDED_FOR: client,
                    }
                    async with session.post(running.url, data=body, headers=headers) as resp:
                        statuses.setdefault(client, []).append(resp.status)
        assert statuses == {"198.51.100.1": [200, 200, 503], "198.51.100.2": [200, 200, 503]}
