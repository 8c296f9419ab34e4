"""Fuzz harness for the PPSPP subtree hashes' reader (``peer/ppspp/partial.py``).

A peer that will serve a content it holds only part of fetches the content's subtree hashes
(``GET /swarm/{swarm}/ppspp/{root}/subtrees``) from whoever serves it, and checks them against
the root hash before trusting them.  Properties checked on every input, as the answer for each
of a few contents (shapes with and without a short last description chunk):

* :meth:`SubtreeHashes.decode` raises nothing but :class:`~ppsp.errors.IntegrityError`;
* it accepts an input only when it is the content's true answer (anything else would be a
  second preimage of SHA-256).

Run with atheris when it is installed (``python fuzz/fuzz_ppspp_subtrees.py [libFuzzer
flags]``); otherwise a bounded random-mutation loop over the true answers runs
(``python fuzz/fuzz_ppspp_subtrees.py [iterations] [seed]``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness

from ppsp.errors import IntegrityError
from ppsp.peer.content.merkle import MerkleTree, chunk_hash
from ppsp.peer.ppspp.partial import SubtreeHashes, encode_subtrees, subtree_hashes_of_tree


def _content(count: int, level: int) -> tuple[MerkleTree, int, bytes]:
    tree = MerkleTree([chunk_hash(bytes([i % 256, i // 256])) for i in range(count)])
    return tree, level, encode_subtrees(subtree_hashes_of_tree(tree, level))


CONTENTS = (_content(1, 0), _content(7, 2), _content(64, 5), _content(101, 3), _content(33, 5))
"""(tree, level, its true answer) of each content the input is tried as the answer for."""

SEEDS = tuple(wire for _, _, wire in CONTENTS)
"""The true answers: the mutation loop's corpus."""

TOKENS = (bytes(32), b"\xff" * 32, b"\x00", SEEDS[1][:32])


def test_one_input(data: bytes) -> None:
    """Check the properties on one input; any other exception is a finding."""
    for tree, level, wire in CONTENTS:
        try:
            decoded = SubtreeHashes.decode(
                data, tree.root, chunk_count=tree.leaf_count, level=level
            )
        except IntegrityError:
            continue
        if data != wire or encode_subtrees(decoded.hashes()) != wire:
            raise AssertionError(f"forged subtree hashes accepted: {data!r}")


def run_random(iterations: int = 5_000, seed: int = 0) -> int:
    """The bounded loop over this target's corpus (:func:`harness.run_random`)."""
    return harness.run_random(test_one_input, SEEDS, TOKENS, iterations, seed)


if __name__ == "__main__":
    harness.main(sys.argv, test_one_input, run_random, 5_000)
