"""What spoofed handshakes and datagrams full of HAVEs cost the live PPSPP server.

    python -m bench.live_ppspp_hostile [--window 120] [--chunk-kib 64] [--datagrams 20]

A live source (:class:`~ppsp.peer.ppspp.live_server.LiveServer` on a
:class:`~ppsp.peer.net.ppspp_live.LivePpsppEndpoint`) runs in a child process on 127.0.0.1
and holds ``--window`` signed live chunks of ``--chunk-kib`` KiB (a full discard window).
From other loopback hosts, real UDP:

- **amplification**: one opening handshake from 127.0.5.5 that is never followed (its
  sender may be spoofed): the bytes answered over the bytes sent; then the same handshake
  again 20 times at once: how many answers;
- **HAVE CPU**: ``--datagrams`` datagrams of ``--messages`` HAVEs of every chunk (1,024 by
  default; 4,095 is the codec's largest), each on a channel of its own opened and confirmed
  beforehand from 127.0.6.1, 127.0.6.2, ... (a datagram over the bound closes its channel),
  then as many opening datagrams (a HANDSHAKE and 4,094 HAVEs) from 127.0.7.7: the source's
  CPU seconds (user + system, read from the child) for each batch, per datagram it read, and
  how long a fresh handshake from 127.0.8.8 then waits for its answer.

Prints one line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import sys
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ppsp.codecs.ppspp import decode_datagram, encode_datagram
from ppsp.peer.live.identity import public_key_bytes
from ppsp.peer.ppspp.live import live_ppspp_swarm_id
from ppsp.peer.ppspp.live_server import LIVE_PARAMETERS, live_handshake
from ppsp.wire.ppspp import ChunkRange, Datagram, Handshake, Have

SOURCE = "127.0.0.1"
MAX_MESSAGES = 4095


def _serve(seed: bytes, window: int, chunk_kib: int) -> None:
    """The child: a live source holding a full window; prints its port, then answers
    ``cpu`` lines on stdin with its CPU seconds until ``quit``."""
    from ppsp.peer.net.ppspp_live import LivePpsppEndpoint
    from ppsp.peer.ppspp.live_server import LiveServer

    key = Ed25519PrivateKey.from_private_bytes(seed)
    swarm = live_ppspp_swarm_id(public_key_bytes(key))

    async def main() -> None:
        server = LiveServer(swarm, window_chunks=window, signer=key.sign)
        endpoint = await LivePpsppEndpoint.open(SOURCE, 0, server)
        for index in range(window):
            endpoint.append(index, bytes([index % 251]) * (chunk_kib * 1024))
        print(endpoint.address[1], flush=True)
        loop = asyncio.get_running_loop()
        try:
            for _ in range(1000):
                line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
                if line == "cpu":
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    cpu = usage.ru_utime + usage.ru_stime
                    print(f"{cpu:.4f} {server.stats['datagrams_in']}", flush=True)
                elif line == "stats":
                    print(dict(server.stats), flush=True)
                else:
                    break
        finally:
            endpoint.close()

    asyncio.run(main())


def _opening(swarm: bytes, source: int, *messages: Have) -> bytes:
    handshake = live_handshake(source, discard_window=120 * 512, swarm_id=swarm)
    return encode_datagram(Datagram(channel=0, messages=(handshake, *messages)), LIVE_PARAMETERS)


def _drain(sock: socket.socket, wait: float) -> list[bytes]:
    """Every datagram arriving within ``wait`` seconds of the last one."""
    got: list[bytes] = []
    sock.settimeout(wait)
    for _ in range(10_000):
        try:
            got.append(sock.recv(65536))
        except TimeoutError:
            break
    return got


def main() -> None:
    """Run the child source and measure (see the module)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=120)
    parser.add_argument("--chunk-kib", type=int, default=64)
    parser.add_argument("--datagrams", type=int, default=20)
    parser.add_argument("--messages", type=int, default=1024, help="HAVEs per datagram")
    parser.add_argument("--serve", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(bytes.fromhex(args.serve), args.window, args.chunk_kib)
        return
    import subprocess

    key = Ed25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization

    seed = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    swarm = live_ppspp_swarm_id(public_key_bytes(key))
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.live_ppspp_hostile",
            "--serve",
            seed.hex(),
            "--window",
            str(args.window),
            "--chunk-kib",
            str(args.chunk_kib),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None

    def cpu() -> tuple[float, int]:
        seconds, count = ask("cpu").split()
        return float(seconds), int(count)

    def settled() -> tuple[float, int]:
        """CPU and datagrams once the source has read everything sent (bounded)."""
        last = cpu()
        for _ in range(50):
            time.sleep(0.3)
            now = cpu()
            if now[1] == last[1]:
                return now
            last = now
        return last

    def ask(what: str) -> str:
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(what + "\n")
        child.stdin.flush()
        return child.stdout.readline().strip()

    socks: list[socket.socket] = []
    try:
        port = int(child.stdout.readline())
        target = (SOURCE, port)
        # 1. Amplification of one unanswered handshake, and of the same one again.
        spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        socks.append(spoof)
        spoof.bind(("127.0.5.5", 0))
        opening = _opening(swarm, 0x5151)
        spoof.sendto(opening, target)
        answer = _drain(spoof, 0.5)
        sent = sum(map(len, answer))
        print(
            f"handshake {len(opening)} bytes -> {len(answer)} datagram(s), {sent} bytes"
            f" (x{sent / len(opening):.1f})"
        )
        for _ in range(20):
            spoof.sendto(opening, target)
        again = _drain(spoof, 0.5)
        print(f"the same handshake 20 times more -> {len(again)} answers")
        # 2. CPU of datagrams full of HAVEs, each on an established channel of its own.
        everything = Have(chunk=ChunkRange(start=0, end=2**32 - 1))
        floods: list[tuple[socket.socket, bytes]] = []
        for n in range(args.datagrams):
            peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(peer)
            peer.bind((f"127.0.6.{1 + n % 250}", 0))
            peer.sendto(_opening(swarm, 0x6161), target)
            reply = decode_datagram(_drain(peer, 0.5)[0], LIVE_PARAMETERS).messages[0]
            assert isinstance(reply, Handshake)
            channel = reply.source_channel
            peer.sendto(channel.to_bytes(4, "big"), target)  # confirmed
            _drain(peer, 0.2)
            flood = encode_datagram(
                Datagram(channel=channel, messages=(everything,) * args.messages),
                LIVE_PARAMETERS,
            )
            floods.append((peer, flood))
        before, seen = settled()
        for peer, flood in floods:
            peer.sendto(flood, target)
            time.sleep(0.1)
        after, now_seen = settled()
        used, got = after - before, max(1, now_seen - seen)
        print(
            f"{args.datagrams} datagrams of {args.messages} HAVEs ({len(flood)} bytes), each on"
            f" a channel of its own, {got} received: {used:.3f} s CPU,"
            f" {1000 * used / got:.1f} ms each"
        )
        # 3. CPU of opening datagrams full of HAVEs, each from a new port.
        before, seen = settled()
        for n in range(args.datagrams):
            other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(other)
            other.bind(("127.0.7.7", 0))
            other.sendto(_opening(swarm, 0x7000 + n, *(everything,) * (MAX_MESSAGES - 1)), target)
            time.sleep(0.1)
        after, now_seen = settled()
        used, got = after - before, max(1, now_seen - seen)
        print(
            f"{args.datagrams} opening datagrams of {MAX_MESSAGES - 1} HAVEs, {got} received:"
            f" {used:.3f} s CPU, {1000 * used / got:.1f} ms each"
        )
        fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        socks.append(fresh)
        fresh.bind(("127.0.8.8", 0))
        start = time.monotonic()
        fresh.sendto(_opening(swarm, 0x8181), target)
        fresh.settimeout(5)
        fresh.recv(65536)
        print(f"a fresh handshake answered after {1000 * (time.monotonic() - start):.1f} ms")
        print(f"server stats: {ask('stats')}")
    finally:
        for sock in socks:
            sock.close()
        if child.poll() is None:
            child.stdin.write("quit\n")
            child.stdin.flush()
        child.wait(10)


if __name__ == "__main__":
    main()
