"""Tracker.handle in process: setup 1000 peers in swarms of 20, then N mixed requests."""
import gc, random, sys
gc.disable()  # deterministic counts: no collection at a point that depends on N
from ppsp.tracker.core import Tracker, TrackerConfig
from ppsp.tracker.limits import DEFAULT_LIMITS
from ppsp.tracker.storage.memory import MemoryStorage
from ppsp.codecs.tracker import codec_for
from ppsp.wire.tracker import (ConnectRequest, FindRequest, StatReportRequest, PeerAddress, PeerMode, PeerNum,
    ProtocolVersion, SwarmAction, SwarmActionType, StreamStatistics, Encoding)
V11 = ProtocolVersion.V1_1
def run(c):
    try: c.send(None)
    except StopIteration as e: return e.value
    raise AssertionError
N = int(sys.argv[1]); PEERS = 1000
tracker = Tracker(MemoryStorage(seed=1), TrackerConfig(limits=DEFAULT_LIMITS.off(), init_timeout=1e6, track_timeout=1e6), rng=random.Random(1))
codec = codec_for(Encoding.XML) if hasattr(Encoding, "XML") else None
def obs(i, k): return ("127.0.0.1", 40000 + (i * 7 + k) % 32)
for i in range(PEERS):
    run(tracker.handle(ConnectRequest(version=V11, transaction_id="1", peer_id=f"{i:016x}",
        peer_addresses=(PeerAddress(ip=f"10.0.{i // 250}.{i % 250 + 1}", port=7000, peer_protocol="PPSP-PP/0.1"),),
        swarm_actions=(SwarmAction(swarm_id=f"s{i // 20}", action=SwarmActionType.JOIN, peer_mode=PeerMode.LEECH),)),
        observed=obs(i, 0), now=1.0))
rng = random.Random(2)
for k in range(N):
    i = rng.randrange(PEERS)
    if k % 2:
        req = FindRequest(version=V11, transaction_id="2", peer_id=f"{i:016x}", swarm_id=f"s{i // 20}", peer_num=PeerNum(count=20))
    else:
        req = StatReportRequest(version=V11, transaction_id="3", peer_id=f"{i:016x}",
            stream_stats=(StreamStatistics(swarm_id=f"s{i // 20}", uploaded_bytes=k),))
    answer = run(tracker.handle(req, observed=obs(i, k), now=2.0 + k / 1000))
    if codec is not None:
        codec.encode_response(answer)
