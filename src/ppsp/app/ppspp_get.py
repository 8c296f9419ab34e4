"""``ppsp get ROOTHASH --peer ppspp://HOST:PORT``: a download from one PPSPP (RFC 7574) peer.

No tracker: the content is named by its RFC 7574 Merkle root hash (40 hexadecimal digits for
SHA-1, libswift's, 64 for SHA-256) and fetched over UDP from the one peer named, every chunk
verified against the root hash (``peer/ppspp/leecher.py``, ``peer/net/ppspp_get.py``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

__all__ = ["merkle_hash_for", "parse_ppspp_peer", "ppspp_get_main"]

_HEX = re.compile(r"[0-9a-f]+")
_DIGITS = {"sha1": 40, "sha256": 64}


def parse_ppspp_peer(text: str) -> tuple[str, int]:
    """``ppspp://HOST:PORT`` (an IPv6 host in brackets) as ``(host, port)``; ValueError with
    a one-line message otherwise."""
    match = re.fullmatch(r"ppspp://(\[[0-9A-Fa-f:.]+\]|[^\[\]/:@\s]+):(\d{1,5})", text)
    if match is None:
        raise ValueError(f"{text!r} is not a PPSPP peer (ppspp://HOST:PORT)")
    host, port = match.group(1).strip("[]"), int(match.group(2))
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} outside 1-65535")
    return host, port


def merkle_hash_for(root_hash: str, merkle_hash: str | None) -> str:
    """The Merkle hash function of a root hash given in hex: ``merkle_hash`` when given, else
    the one its length says (40 digits: sha1, 64: sha256); ValueError when they disagree or
    the text is no root hash."""
    if not _HEX.fullmatch(root_hash) or len(root_hash) not in _DIGITS.values():
        lower = root_hash.lower()
        if lower != root_hash and _HEX.fullmatch(lower):
            raise ValueError(f"root hashes are written in lower case: {lower}")
        raise ValueError(f"{root_hash!r} is not a root hash (40 or 64 hexadecimal digits)")
    if merkle_hash is None:
        return "sha1" if len(root_hash) == 40 else "sha256"
    if len(root_hash) != _DIGITS[merkle_hash]:
        raise ValueError(
            f"a {merkle_hash} root hash has {_DIGITS[merkle_hash]} hexadecimal digits,"
            f" not {len(root_hash)}"
        )
    return merkle_hash


def _fail(message: str) -> int:
    print(f"ppsp: {message}", file=sys.stderr, flush=True)
    return 1


async def ppspp_get_main(
    root_hash: str,
    peer: tuple[str, int],
    *,
    output: Path,
    merkle_hash: str,
    timeout: float,
    chunk_size: int | None = None,
) -> int:
    """Download into ``output``; the exit code (0: complete, one line on stderr otherwise).

    ``timeout`` bounds both the wait for the peer's first answer and any later silence.
    ``chunk_size`` is the content's PPSPP chunk size (default 1024, libswift's): the root hash
    depends on it, and libswift does not announce its own (``-z``).
    """
    from ppsp.peer.net.ppspp_get import PpsppDownloadFailed, ppspp_download
    from ppsp.peer.ppspp.leecher import LeecherConfig
    from ppsp.process.signals import Interrupted, stop_event, until_stopped
    from ppsp.wire.ppspp import DEFAULT_CHUNK_SIZE, MerkleHashFunction

    config = LeecherConfig(
        merkle_hash=MerkleHashFunction.from_name(merkle_hash),
        chunk_size=chunk_size or DEFAULT_CHUNK_SIZE,
        connect_timeout=timeout,
        idle_timeout=timeout,
    )
    stop = stop_event()
    host, port = peer
    try:
        result = await until_stopped(
            stop, ppspp_download(bytes.fromhex(root_hash), (host, port), output, config=config)
        )
    except Interrupted:
        return _fail(f"interrupted: the partial {output}.part is removed")
    except PpsppDownloadFailed as exc:
        return _fail(str(exc))
    print(
        f"{output}: complete, {result.size} bytes verified ({result.chunks} chunks,"
        f" {merkle_hash} Merkle root {root_hash})",
        file=sys.stderr,
        flush=True,
    )
    return 0
