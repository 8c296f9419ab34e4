"""Instructions per PPSPP chunk of each side's engine and codec, sans I/O (issue 17).

    python -m bench.ppspp_replay record FILE [--size-mb 16]
    python -m bench.ppspp_replay replay FILE --side seeder|client|none [--times 3]
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python -m bench.ppspp_replay replay FILE --side seeder

``record`` runs our seeder engine (:class:`~ppsp.peer.ppspp.Seeder`) and a channel client
(:class:`~ppsp.peer.ppspp.client.ChannelClient`) against each other without sockets, on a
clock that advances 20 µs per datagram, the client asking for the content in runs of 32
PPSPP chunks (a 256 KiB description chunk of 8 KiB PPSPP chunks), 16 runs in flight, as
``ppsp get`` does; every call made to each side is written to FILE.  Channel IDs and the
seeder's random numbers are fixed, so ``replay`` makes the same calls to a fresh engine of one
side and gets the same answers (it checks the datagrams it is given to send): that side's
work alone, with nothing of the other side, the event loop or the kernel.  Its CPU time is
printed (``--times`` replays, the fastest); under callgrind, the instructions of ``--side
X`` less those of ``--side none`` (which loads the trace and builds the content only) are the
side's, a figure a shared machine does not move.
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import time
from pathlib import Path
from typing import Any

from ppsp.peer.ppspp import SeededContent, Seeder
from ppsp.peer.ppspp.client import ChannelClient, ChunkVerified, ClientConfig
from ppsp.wire.ppspp import MerkleHashFunction

MIB = 1 << 20
PPSPP_CHUNK = 8192
RUN = 32
IN_FLIGHT = 16
STEP = 20e-6
ADDRESS = ("127.0.0.5", 40000)
CLIENT_ID = 0x1234567


def _content(size: int) -> SeededContent:
    data = random.Random(size).randbytes(size)
    return SeededContent.from_bytes(
        data, chunk_size=PPSPP_CHUNK, merkle_hash=MerkleHashFunction.SHA256
    )


def _seeder(content: SeededContent) -> Seeder:
    ids = iter(range(0x7000001, 0x7FFFFFFF))
    return Seeder(content, channel_ids=lambda: next(ids), rng=random.Random(7))


def _client(content: SeededContent) -> ChannelClient:
    return ChannelClient(
        content.swarm_id,
        size=content.size,
        chunk_size=content.chunk_size,
        now=0.0,
        config=ClientConfig(channel_id=CLIENT_ID),
    )


def record(path: Path, size: int) -> None:
    """Run both sides against each other and write the calls each received."""
    content = _content(size)
    seeder, client = _seeder(content), _client(content)
    seeder_calls: list[tuple[Any, ...]] = []
    client_calls: list[tuple[Any, ...]] = []
    now = 0.0
    runs = [range(i, min(i + RUN, content.chunk_count)) for i in range(0, content.chunk_count, RUN)]
    runs.reverse()
    outstanding: dict[int, int] = {}  # chunk -> its run's first chunk
    left: dict[int, int] = {}  # run -> chunks still awaited
    done = 0

    def ask() -> None:
        while runs and len(left) < IN_FLIGHT:
            run = runs.pop()
            left[run.start] = len(run)
            for index in run:
                outstanding[index] = run.start
            client_calls.append(("request_many", list(run), now))
            client.request_many(run, now)

    ask()
    while done < content.chunk_count:
        moved = False
        out = client.datagrams_to_send()
        client_calls.append(("datagrams_to_send", out))
        for data in out:
            moved = True
            now += STEP
            seeder_calls.append(("datagram_received", data, now))
            seeder.datagram_received(data, ADDRESS, now)
        out2 = seeder.datagrams_to_send()
        seeder_calls.append(("datagrams_to_send", [d for _, d in out2]))
        for _, data in out2:
            moved = True
            now += STEP
            client_calls.append(("datagram_received", data, now))
            client.datagram_received(data, now)
        results = client.take_results()
        client_calls.append(("take_results", len(results)))
        for result in results:
            if not isinstance(result, ChunkVerified):
                raise SystemExit(f"chunk {result.index} not verified: {result}")
            run_start = outstanding.pop(result.index)
            left[run_start] -= 1
            if not left[run_start]:
                del left[run_start]
            done += 1
        ask()
        if moved:
            continue
        deadlines = [d for d in (seeder.next_deadline(), client.next_deadline()) if d]
        if not deadlines:
            raise SystemExit("stalled")
        now = max(now, min(deadlines))
        seeder_calls.append(("handle_timer", now))
        seeder.handle_timer(now)
        client_calls.append(("handle_timer", now))
        client.handle_timer(now)
    with path.open("wb") as out_file:
        pickle.dump({"size": size, "seeder": seeder_calls, "client": client_calls}, out_file)
    print(
        f"{content.chunk_count} chunks; seeder {len(seeder_calls)} calls,"
        f" client {len(client_calls)} calls; datagrams out: seeder"
        f" {seeder.stats['datagrams_out']}"
    )


def replay(path: Path, side: str, times: int) -> None:
    """Make the recorded calls to fresh engines of ``side``; print the fastest CPU time."""
    with path.open("rb") as in_file:
        trace = pickle.load(in_file)
    content = _content(trace["size"])
    if side == "none":
        return
    calls = trace[side]
    best = float("inf")
    for _ in range(times):
        if side == "seeder":
            seeder = _seeder(content)
            start = time.thread_time()
            for call in calls:
                if call[0] == "datagram_received":
                    seeder.datagram_received(call[1], ADDRESS, call[2])
                elif call[0] == "datagrams_to_send":
                    if [d for _, d in seeder.datagrams_to_send()] != call[1]:
                        raise SystemExit("the seeder answered otherwise than recorded")
                else:
                    seeder.handle_timer(call[1])
        else:
            client = _client(content)
            start = time.thread_time()
            for call in calls:
                kind = call[0]
                if kind == "datagram_received":
                    client.datagram_received(call[1], call[2])
                elif kind == "datagrams_to_send":
                    if client.datagrams_to_send() != call[1]:
                        raise SystemExit("the client answered otherwise than recorded")
                elif kind == "take_results":
                    if len(client.take_results()) != call[1]:
                        raise SystemExit("the client verified otherwise than recorded")
                elif kind == "request_many":
                    client.request_many(call[1], call[2])
                else:
                    client.handle_timer(call[1])
        best = min(best, time.thread_time() - start)
    chunks = -(-trace["size"] // PPSPP_CHUNK)
    print(f"{side}: {best / chunks * 1e6:.1f} us CPU per chunk (fastest of {times})")


def main() -> None:
    """Record or replay (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("record", "replay"))
    parser.add_argument("file", type=Path)
    parser.add_argument("--size-mb", type=int, default=16)
    parser.add_argument("--side", choices=("seeder", "client", "none"), default="none")
    parser.add_argument("--times", type=int, default=1)
    args = parser.parse_args()
    if args.mode == "record":
        record(args.file, args.size_mb * MIB)
    else:
        replay(args.file, args.side, args.times)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
