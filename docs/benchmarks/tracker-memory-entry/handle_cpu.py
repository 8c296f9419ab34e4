"""Tracker.handle in process: 1,000 peers in swarms of 20, then N mixed requests (XML answers).

Run under callgrind twice (N and a larger N) and take the difference per request:

    PYTHONHASHSEED=0 valgrind --tool=callgrind python handle_cpu.py N
"""

import gc
import random
import sys
from collections.abc import Coroutine
from typing import Any

from ppsp.codecs.tracker import codec_for
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.limits import DEFAULT_LIMITS
from ppsp.tracker.storage.memory import MemoryStorage
from ppsp.wire.tracker import (
    ConnectRequest,
    Encoding,
    FindRequest,
    PeerAddress,
    PeerMode,
    PeerNum,
    ProtocolVersion,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
)

V11 = ProtocolVersion.V1_1
PEERS = 1000


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """The result of a coroutine that never waits (the memory storage's)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine waited")


def observed(i: int, k: int) -> tuple[str, int]:
    """Where peer ``i``'s request ``k`` comes from: one of 32 ports, as over 32 connections."""
    return ("127.0.0.1", 40000 + (i * 7 + k) % 32)


def main(count: int) -> None:
    """Register the peers, then ``count`` requests, half FIND, half STAT_REPORT."""
    gc.disable()  # deterministic counts: no collection at a point that depends on N
    config = TrackerConfig(limits=DEFAULT_LIMITS.off(), init_timeout=1e6, track_timeout=1e6)
    tracker = Tracker(MemoryStorage(seed=1), config, rng=random.Random(1))
    codec = codec_for(Encoding.XML)
    for i in range(PEERS):
        address = PeerAddress(
            ip=f"10.0.{i // 250}.{i % 250 + 1}", port=7000, peer_protocol="PPSP-PP/0.1"
        )
        join = SwarmAction(
            swarm_id=f"s{i // 20}", action=SwarmActionType.JOIN, peer_mode=PeerMode.LEECH
        )
        request = ConnectRequest(
            version=V11,
            transaction_id="1",
            peer_id=f"{i:016x}",
            peer_addresses=(address,),
            swarm_actions=(join,),
        )
        run(tracker.handle(request, observed=observed(i, 0), now=1.0))
    rng = random.Random(2)
    for k in range(count):
        i = rng.randrange(PEERS)
        swarm = f"s{i // 20}"
        if k % 2:
            request: FindRequest | StatReportRequest = FindRequest(
                version=V11,
                transaction_id="2",
                peer_id=f"{i:016x}",
                swarm_id=swarm,
                peer_num=PeerNum(count=20),
            )
        else:
            request = StatReportRequest(
                version=V11,
                transaction_id="3",
                peer_id=f"{i:016x}",
                stream_stats=(StreamStatistics(swarm_id=swarm, uploaded_bytes=k),),
            )
        answer = run(tracker.handle(request, observed=observed(i, k), now=2.0 + k / 1000))
        codec.encode_response(answer)


if __name__ == "__main__":
    main(int(sys.argv[1]))
