"""Relay one datagram each way through a TURN server, as a peer behind NAT would.

    python turn_probe.py SERVER_IP:PORT USER PASSWORD LOCAL_IP PEER_IP:PORT

allocates a relay from LOCAL_IP, permits PEER_IP, sends ``ping`` to the peer through the relay
and waits (5 s at most) for what the peer sends back; prints JSON: the relayed and mapped
addresses and the answer.  The NAT test runs it inside a network namespace.
"""

from __future__ import annotations

import asyncio
import json
import sys

from ppsp.peer.net.stun import parse_server
from ppsp.peer.net.turn import TurnRelay


async def probe(server: str, user: str, password: str, local: str, peer: str) -> dict[str, object]:
    """Allocate, permit, send, receive, release."""
    relay = await TurnRelay.allocate(parse_server(server), user, password, local=(local, 0))
    try:
        peer_address = parse_server(peer)
        await relay.permit(peer_address[0])
        relay.send(peer_address, b"ping")
        sender, data = await asyncio.wait_for(relay.receive(), 5)
        return {
            "relayed": list(relay.relayed or ()),
            "mapped": list(relay.mapped or ()),
            "sender": list(sender),
            "data": data.decode(),
        }
    finally:
        await relay.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(probe(*sys.argv[1:6]))))
