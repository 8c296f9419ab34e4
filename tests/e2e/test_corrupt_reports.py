"""End to end: peers tell the tracker of a host that served corrupt chunks (STAT_REPORT's
corrupt-peer extension), and the tracker believes it only from distinct member hosts.

Real processes on distinct loopback addresses: the tracker, a liar seeding with the hidden
``--corrupt-uploads`` flag on 127.0.5.5, an honest seeder on 127.0.3.3, two ``ppsp get`` on
127.0.4.4 (XML) and 127.0.6.6 (JSON); a forger on 127.0.9.9 speaks to the tracker from this
process.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp

from e2e.swarm_helpers import Swarm, content, finish
from ppsp.codecs import tracker_xml
from ppsp.wire.tracker import (
    AnyRequest,
    ConnectRequest,
    CorruptPeerReport,
    Encoding,
    PeerMode,
    ProtocolVersion,
    StatReportRequest,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

CORRUPT_DROP = r"peer (\S+) sent a corrupt chunk \d+: dropping it"
FORGER = "127.0.9.9"
V11 = ProtocolVersion.V1_1


async def _ask(http: aiohttp.ClientSession, url: str, request: AnyRequest) -> TrackerResponse:
    headers = {"Content-Type": Encoding.XML.content_type}
    async with http.post(url, data=tracker_xml.encode_request(request), headers=headers) as a:
        body = await a.read()
        answer = tracker_xml.decode_response(body, a.status, a.reason or "")
    assert isinstance(answer, TrackerResponse), answer
    return answer


def _join(peer_id: str, swarm_id: str) -> ConnectRequest:
    action = SwarmAction(swarm_id=swarm_id, action=SwarmActionType.JOIN, peer_mode=PeerMode.LEECH)
    return ConnectRequest(version=V11, transaction_id="1", peer_id=peer_id, swarm_actions=(action,))


def _corrupt(peer_id: str, report: CorruptPeerReport) -> StatReportRequest:
    return StatReportRequest(
        version=V11, transaction_id="2", peer_id=peer_id, corrupt_peers=(report,)
    )


async def test_the_tracker_hears_of_a_liar_from_distinct_hosts_only(
    tmp_path: Path,
) -> None:
    source = tmp_path / "source.bin"
    data = content(2 << 20)
    source.write_bytes(data)
    async with Swarm(tmp_path) as swarm:
        await swarm.tracker()
        _, swarm_id = await swarm.seed(source, "--host", "127.0.3.3", name="honest")
        connector = aiohttp.TCPConnector(local_addr=(FORGER, 0))
        async with aiohttp.ClientSession(connector=connector) as http:
            # The forger joins, learns the honest seeder's address, and reports it from one
            # host under five PeerIDs, three times each; an outsider (not a member) too.
            listed = (await _ask(http, swarm.tracker_url, _join("forger0", swarm_id))).peers
            (honest,) = listed
            assert honest.peer_id is not None
            address = honest.addresses[0]
            forged = CorruptPeerReport(
                swarm_id=swarm_id, peer_id=honest.peer_id, ip=address.ip, port=address.port
            )
            await _ask(http, swarm.tracker_url, _join("outsider", "another-swarm"))
            await _ask(http, swarm.tracker_url, _corrupt("outsider", forged))
            assert (await swarm.status())["reported"] == 0  # not a member: not believed
            for n in range(5):
                if n:
                    await _ask(http, swarm.tracker_url, _join(f"forger{n}", swarm_id))
                for _ in range(3):
                    await _ask(http, swarm.tracker_url, _corrupt(f"forger{n}", forged))
            status = await swarm.status()
            assert (status["reported"], status["suspects"]) == (1, 0)  # one host, once

            # Two leechers on two hosts meet the liar first, ban it and report it.
            await swarm.seed(source, "--corrupt-uploads", "--host", "127.0.5.5", name="liar")
            leechers, liars = [], set()
            for host, encoding in (("127.0.4.4", "xml"), ("127.0.6.6", "json")):
                leecher = await swarm.get(
                    swarm_id, tmp_path / f"{host}.bin", "--host", host, "--timeout", "20",
                    encoding=encoding, name=f"get-{host}",
                )  # fmt: skip
                liars.add((await leecher.wait_line(CORRUPT_DROP)).group(1))
                leechers.append(leecher)
            for leecher in leechers:
                await finish(leecher)
            for host, _ in (("127.0.4.4", "xml"), ("127.0.6.6", "json")):
                assert (tmp_path / f"{host}.bin").read_bytes() == data
            status = await swarm.status()
            assert (status["reported"], status["suspects"]) == (2, 1), status
            # The liar is listed after every other peer, and still listed.
            (liar,) = liars
            find = await _ask(http, swarm.tracker_url, _join("late", swarm_id))
            order = [peer.peer_id for peer in find.peers]
            assert order[-1] == liar and honest.peer_id in order, order
        async with (
            aiohttp.ClientSession() as plain,
            plain.get(swarm.tracker_url + "/metrics") as answer,
        ):
            text = await answer.text()
        assert "ppsp_tracker_suspect_peers 1.0" in text
        assert "ppsp_tracker_reported_peers 2.0" in text
