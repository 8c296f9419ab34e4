"""``--ppspp-chunk-size``'s range and what a seeder does with a size at its edges (issue 17)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ppsp.app.cli.peer import PPSPP_CHUNK_SIZES
from ppsp.peer.net.chunkstore import ChunkStore
from ppsp.peer.net.ppspp_transport import MAX_PIECES, fits_datagram, representation_content
from ppsp.wire.ppspp import DEFAULT_CHUNK_SIZE


def test_the_option_range_is_what_a_datagram_holds() -> None:
    # The command line defines its range without importing the engine: the two must agree.
    assert PPSPP_CHUNK_SIZES.min == DEFAULT_CHUNK_SIZE
    assert PPSPP_CHUNK_SIZES.max is not None
    assert fits_datagram(PPSPP_CHUNK_SIZES.max)
    assert not fits_datagram(PPSPP_CHUNK_SIZES.max + 1)


def test_the_swarm_is_offered_no_chunks_smaller_than_clients_take(tmp_path: Path) -> None:
    # 1 MiB description chunks in 1 KiB PPSPP chunks would need 1024 each: clients refuse
    # such an offer (MAX_PIECES), so the seeder does not make one.
    path = tmp_path / "content.bin"
    path.write_bytes(random.Random(3).randbytes(3 << 20))
    with ChunkStore.seed_file(path, chunk_size=1 << 20) as store:
        with pytest.raises(ValueError, match=f"more than {MAX_PIECES} PPSPP chunks"):
            representation_content(store, chunk_size=1024)
        content = representation_content(store, chunk_size=4096)  # 256 per chunk: taken
        assert content.chunk_size == 4096
        assert content.chunk_count == (3 << 20) // 4096
