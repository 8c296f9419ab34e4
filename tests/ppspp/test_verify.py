"""The hashes one PPSPP channel keeps of a content's tree, checked against its root."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ppsp.peer.content.merkle import bin_number, chunk_hash, merkle_root, parent_hash
from ppsp.peer.ppspp.verify import TreeHashes

SHA1 = ("sha1", 20)


def _tree(count: int) -> tuple[list[bytes], dict[int, bytes]]:
    """Leaf hashes of ``count`` chunks and every node's hash by bin number (padding empty)."""
    leaves = [chunk_hash(bytes([i]) * 10, "sha1") for i in range(count)]
    width = 1
    while width < count:
        width *= 2
    level_hashes = leaves + [bytes(20)] * (width - count)
    nodes = {bin_number(0, i): h for i, h in enumerate(level_hashes)}
    level = 0
    while len(level_hashes) > 1:
        level_hashes = [
            parent_hash(level_hashes[i], level_hashes[i + 1], "sha1")
            for i in range(0, len(level_hashes), 2)
        ]
        level += 1
        nodes.update({bin_number(level, i): h for i, h in enumerate(level_hashes)})
    return leaves, nodes


@given(st.integers(min_value=1, max_value=40), st.data())
def test_a_chunk_verifies_with_its_uncles_and_a_wrong_one_does_not(
    count: int, data: st.DataObject
) -> None:
    leaves, nodes = _tree(count)
    root = merkle_root(leaves, "sha1")
    hashes = TreeHashes(root, *SHA1, max_pending=4096, count=count)
    index = data.draw(st.integers(min_value=0, max_value=count - 1))
    for number, digest in nodes.items():
        if number != hashes.root_bin:
            assert hashes.receive(number, digest)
    assert hashes.check(index, chunk_hash(b"forged", "sha1")) is False
    for number, digest in nodes.items():  # the forgery dropped what led to it: send again
        hashes.receive(number, digest)
    assert hashes.check(index, leaves[index]) is True
    assert hashes.verified[2 * index] == leaves[index]


def test_pending_hashes_are_bounded_and_a_conflict_with_a_verified_one_is_told() -> None:
    leaves, nodes = _tree(8)
    hashes = TreeHashes(merkle_root(leaves, "sha1"), *SHA1, max_pending=3)
    assert hashes.root_bin == 0  # no shape before the chunk count
    for number in (0, 2, 4, 6):
        hashes.receive(number, nodes[number])
    assert list(hashes.pending) == [2, 4, 6]  # the oldest went first
    hashes.set_count(8)
    assert hashes.receive(hashes.root_bin, bytes(20)) is False  # not the trusted root
    assert hashes.check(0, leaves[0]) is None  # its uncles are missing
