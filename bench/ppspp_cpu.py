"""CPU per PPSPP chunk, seeder side and receiving side apart (issue 17).

    python -m bench.ppspp_cpu [--size-mb 32] [--repeat 5] [--profile seeder|client DIR]

A seeded store of ``--size-mb`` random bytes in 256 KiB description chunks is served over
PPSPP in 8 KiB PPSPP chunks (as ``ppsp seed --ppspp-port`` serves it) by a seeder in a child
process on a loopback UDP socket; this process fetches every description chunk through a
:class:`~ppsp.peer.net.ppspp_transport.PpsppChunkTransport` (16 in flight, as a session's
slots), verified up to the root and against the description and written to a store, as
``ppsp get`` does.  Each side's CPU seconds (``resource.getrusage``, user + system, the
receiving side's storing threads included) over the transfer are reported per MiB and per
PPSPP chunk; the median of ``--repeat`` transfers is the figure (the machine's load average
is printed: on a shared machine compare runs taken together).  ``--profile SIDE DIR`` writes
a cProfile of that side's transfers to ``DIR/SIDE.prof`` instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import os
import random
import resource
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

MIB = 1 << 20
DESCRIPTION_CHUNK = 256 * 1024
IN_FLIGHT = 16


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _seeder_main(path: str, conn: Connection, profile: str | None) -> None:
    """The child: serve the file over PPSPP; answer "cpu" with its CPU seconds so far."""
    from ppsp.peer.net.chunkstore import ChunkStore
    from ppsp.peer.net.ppspp_transport import representation_content
    from ppsp.peer.net.ppspp_udp import serve

    async def main() -> None:
        seed = ChunkStore.seed_file(Path(path), chunk_size=DESCRIPTION_CHUNK)
        content = representation_content(seed)
        server = await serve([content], "127.0.0.1", 0)
        conn.send((server.address[1], content.swarm_id, content.chunk_size))
        loop = asyncio.get_running_loop()
        profiler = cProfile.Profile() if profile else None
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "start" and profiler is not None:
                profiler.enable()
            elif command == "cpu":
                conn.send(_cpu())
            elif command == "stop":
                break
        server.close()
        seed.close()
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile)

    asyncio.run(main())


class _Observer:
    def received(self, nbytes: int) -> None:
        pass

    def delivered(self, nbytes: int) -> bool:
        return True


async def _fetch_all(path: Path, out: Path, port: int, root: bytes, chunk: int) -> None:
    from ppsp.peer.net.chunkstore import ChunkStore
    from ppsp.peer.net.ppspp_transport import PpsppChunkTransport, ppspp_uri
    from ppsp.peer.net.session import RemotePeer
    from ppsp.peer.net.transport import PPSPP
    from ppsp.wire.peer import TransportOffer
    from ppsp.wire.tracker import PeerInfo

    description = ChunkStore.seed_file(path, chunk_size=DESCRIPTION_CHUNK)
    remote = RemotePeer(
        peer_id="seeder",
        info=PeerInfo(peer_id="seeder"),
        base_url="http://127.0.0.1:9",
        offer=TransportOffer(type=PPSPP, uri=ppspp_uri("127.0.0.1", port, root, chunk)),
    )
    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        ChunkStore.create(description.description, out) as store,
    ):
        transport = PpsppChunkTransport(store=store, store_pool=pool, local_address="127.0.0.1")
        pending = list(range(description.description.chunk_count))
        pending.reverse()

        async def worker() -> None:
            while pending:
                await transport.fetch(remote, pending.pop(), _Observer())

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        transport.close()
    description.close()


def main() -> None:
    """Run the benchmark (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", nargs=2, metavar=("SIDE", "DIR"))
    args = parser.parse_args()
    size = args.size_mb * MIB
    with tempfile.TemporaryDirectory(prefix="ppspp-cpu-") as tmp:
        source = Path(tmp) / "source.bin"
        source.write_bytes(random.Random(size).randbytes(size))
        seeder_profile = None
        if args.profile and args.profile[0] == "seeder":
            seeder_profile = str(Path(args.profile[1]) / "seeder.prof")
        ours, theirs = multiprocessing.Pipe()
        child = multiprocessing.get_context("spawn").Process(
            target=_seeder_main, args=(str(source), theirs, seeder_profile)
        )
        child.start()
        port, root, chunk = ours.recv()
        chunks = size // chunk
        client_profiler = (
            cProfile.Profile() if args.profile and args.profile[0] == "client" else None
        )
        ours.send("start")
        rows = []
        for round_ in range(args.repeat + 1):  # the first is a warm-up
            out = Path(tmp) / "out.bin"
            ours.send("cpu")
            seeder_before = ours.recv()
            before, wall = _cpu(), time.perf_counter()
            if client_profiler is not None:
                client_profiler.enable()
            asyncio.run(_fetch_all(source, out, port, root, chunk))
            if client_profiler is not None:
                client_profiler.disable()
            wall = time.perf_counter() - wall
            client = _cpu() - before
            ours.send("cpu")
            seeder = ours.recv() - seeder_before
            if out.read_bytes() != source.read_bytes():
                raise SystemExit("the copy differs from the source")
            out.unlink()
            if round_:
                rows.append((seeder, client, wall))
            print(
                f"{'round ' + str(round_) if round_ else 'warm-up'}: wall {wall:.2f} s,"
                f" seeder {seeder / args.size_mb * 1000:.1f} ms/MiB"
                f" ({seeder / chunks * 1e6:.1f} us/chunk),"
                f" receiver {client / args.size_mb * 1000:.1f} ms/MiB"
                f" ({client / chunks * 1e6:.1f} us/chunk), load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        ours.send("stop")
        child.join()
        if client_profiler is not None:
            client_profiler.dump_stats(str(Path(args.profile[1]) / "client.prof"))
    seeder_median = statistics.median(r[0] for r in rows)
    client_median = statistics.median(r[1] for r in rows)
    print(
        f"median of {len(rows)}: seeder {seeder_median / chunks * 1e6:.1f} us/chunk"
        f" ({seeder_median / args.size_mb * 1000:.1f} ms/MiB), receiver"
        f" {client_median / chunks * 1e6:.1f} us/chunk"
        f" ({client_median / args.size_mb * 1000:.1f} ms/MiB);"
        f" {chunk}-byte PPSPP chunks, {chunks} per transfer"
    )


if __name__ == "__main__":
    main()
