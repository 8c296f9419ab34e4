"""Ask a tracker how it sees a client: one fast CONNECT (register and join a swarm as LEECH).

The answer names the requester as the tracker observed it (its REFLEXIVE address) and lists the
swarm's members with the addresses the tracker holds for them, advertised and observed.  The
request goes out over a plain aiohttp session, from a chosen local address and with any
headers the test wants to forge, so that it depends on nothing of the peer's own client.

Run as a script (``python tracker_probe.py URL SWARM_ID``) it prints what it saw as JSON: the
namespace test runs it inside a network namespace, where the test process cannot connect.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp

from ppsp.codecs import tracker_xml as xml_codec
from ppsp.wire.common import AddressType
from ppsp.wire.tracker import (
    ConnectRequest,
    Encoding,
    PeerMode,
    ProtocolVersion,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)


@dataclass(frozen=True, slots=True)
class Seen:
    """What one CONNECT's answer said: the requester's observed IP and the listed members."""

    requester: str | None
    reflexive: dict[str, set[str]] = field(default_factory=dict)
    """Listed PeerID -> the IPs of its REFLEXIVE addresses (where the tracker saw it)."""
    advertised: dict[str, set[str]] = field(default_factory=dict)
    """Listed PeerID -> the IPs it advertised."""

    def to_json(self) -> str:
        """The same, as JSON (sets as sorted lists)."""
        return json.dumps(
            {
                "requester": self.requester,
                "reflexive": {k: sorted(v) for k, v in self.reflexive.items()},
                "advertised": {k: sorted(v) for k, v in self.advertised.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Seen:
        """Read what :meth:`to_json` wrote."""
        data = json.loads(text)
        return cls(
            requester=data["requester"],
            reflexive={k: set(v) for k, v in data["reflexive"].items()},
            advertised={k: set(v) for k, v in data["advertised"].items()},
        )


async def probe(
    url: str,
    swarm_id: str,
    *,
    local: str | None = None,
    headers: Mapping[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Seen:
    """Send one CONNECT joining ``swarm_id`` to ``url`` from ``local``; what the answer says."""
    request = ConnectRequest(
        version=ProtocolVersion.V1_1,
        transaction_id="1",
        peer_id="probe-" + secrets.token_hex(6),
        swarm_actions=(
            SwarmAction(swarm_id=swarm_id, action=SwarmActionType.JOIN, peer_mode=PeerMode.LEECH),
        ),
    )
    sent = {"Content-Type": Encoding.XML.content_type, **(headers or {})}
    connector = aiohttp.TCPConnector(local_addr=None if local is None else (local, 0))
    async with (
        aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.post(
            url, data=xml_codec.encode_request(request), headers=sent, ssl=tls or True
        ) as answer,
    ):
        body = await answer.read()
        decoded = xml_codec.decode_response(body, answer.status, answer.reason or "")
    assert isinstance(decoded, TrackerResponse), (answer.status, body)
    requester = None
    if decoded.requester is not None:
        requester = next(
            (a.ip for a in decoded.requester.addresses if a.type is AddressType.REFLEXIVE), None
        )
    seen = Seen(requester=requester)
    for peer in decoded.peers:
        assert peer.peer_id is not None
        for address in peer.addresses:
            kind = seen.reflexive if address.type is AddressType.REFLEXIVE else seen.advertised
            kind.setdefault(peer.peer_id, set()).add(address.ip)
    return seen


if __name__ == "__main__":
    print(asyncio.run(probe(sys.argv[1], sys.argv[2])).to_json())
