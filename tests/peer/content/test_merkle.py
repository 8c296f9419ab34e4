from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.errors import IntegrityError
from ppsp.peer.content.merkle import (
    EMPTY_HASH,
    MerkleTree,
    bin_number,
    chunk_hash,
    merkle_root,
    parent_hash,
    root_from_uncles,
    tree_height,
    uncle_bins,
    verify_hash_list,
    verify_with_hash_list,
    verify_with_uncles,
)


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


CHUNKS = [bytes([i]) * (10 + i) for i in range(8)]
LEAVES = [h(c) for c in CHUNKS]
Z = bytes(32)


def test_one_chunk_root_is_its_hash() -> None:
    tree = MerkleTree.from_chunks(CHUNKS[:1])
    assert tree.root == LEAVES[0]
    assert tree.height == 0
    assert tree.width == 1
    assert tree.uncles(0) == []
    verify_with_uncles(0, CHUNKS[0], [], tree.root, 1)


def test_two_chunks() -> None:
    assert merkle_root(LEAVES[:2]) == h(LEAVES[0] + LEAVES[1])


def test_three_chunks_padded_with_empty_hash() -> None:
    expected = h(h(LEAVES[0] + LEAVES[1]) + h(LEAVES[2] + Z))
    assert merkle_root(LEAVES[:3]) == expected
    tree = MerkleTree(LEAVES[:3])
    assert tree.width == 4
    assert tree.node(0, 3) == EMPTY_HASH


def test_five_chunks_empty_parents_stay_empty() -> None:
    tree = MerkleTree(LEAVES[:5])
    assert tree.width == 8
    # Node 13 covers two padding leaves: empty, not SHA-256 of 64 zero bytes.
    assert tree.node(1, 3) == EMPTY_HASH
    right = h(h(LEAVES[4] + Z) + Z)
    left = h(h(LEAVES[0] + LEAVES[1]) + h(LEAVES[2] + LEAVES[3]))
    assert tree.node(2, 1) == right
    assert tree.root == h(left + right)


def test_parent_hash_rule() -> None:
    assert parent_hash(Z, Z) == Z
    assert parent_hash(LEAVES[0], Z) == h(LEAVES[0] + Z)
    assert parent_hash(Z, LEAVES[0]) == h(Z + LEAVES[0])


def test_bin_numbers_match_rfc_figure_2() -> None:
    assert [bin_number(0, i) for i in range(8)] == [0, 2, 4, 6, 8, 10, 12, 14]
    assert [bin_number(1, i) for i in range(4)] == [1, 5, 9, 13]
    assert [bin_number(2, i) for i in range(2)] == [3, 11]
    assert bin_number(3, 0) == 7


def test_uncles_of_c4_in_rfc_figure_3() -> None:
    # RFC 7574 figure 3: 7 chunks, C4's uncles are nodes 10, 13 and 3.
    assert uncle_bins(4, 7) == [10, 13, 3]
    tree = MerkleTree(LEAVES[:7])
    uncles = tree.uncles(4)
    assert uncles == [LEAVES[5], h(LEAVES[6] + Z), tree.node(2, 0)]
    assert [b for b, _ in tree.uncle_nodes(4)] == [10, 13, 3]
    verify_with_uncles(4, CHUNKS[4], uncles, tree.root, 7)


def test_uncles_of_c0_match_rfc_table_1() -> None:
    assert uncle_bins(0, 8) == [2, 5, 11]


def test_peaks_match_rfc_figure_4() -> None:
    tree = MerkleTree(LEAVES[:7])
    peaks = tree.peaks()
    assert [b for b, _ in peaks] == [3, 9, 12]
    assert peaks[2][1] == LEAVES[6]
    assert [b for b, _ in MerkleTree(LEAVES).peaks()] == [7]


def test_tree_height() -> None:
    assert [tree_height(n) for n in (1, 2, 3, 4, 5, 8, 9)] == [0, 1, 2, 2, 3, 3, 4]
    with pytest.raises(ValueError):
        tree_height(0)
    with pytest.raises(ValueError):
        MerkleTree([])


def test_tampered_chunk_is_detected() -> None:
    tree = MerkleTree(LEAVES[:7])
    with pytest.raises(IntegrityError):
        verify_with_uncles(2, CHUNKS[2] + b"x", tree.uncles(2), tree.root, 7)
    with pytest.raises(IntegrityError):
        verify_with_uncles(2, CHUNKS[3], tree.uncles(2), tree.root, 7)


def test_tampered_uncle_is_detected() -> None:
    tree = MerkleTree(LEAVES[:7])
    for level in range(tree.height):
        uncles = tree.uncles(3)
        uncles[level] = bytes([uncles[level][0] ^ 1]) + uncles[level][1:]
        with pytest.raises(IntegrityError):
            verify_with_uncles(3, CHUNKS[3], uncles, tree.root, 7)


def test_wrong_uncle_count_or_order_or_index_is_detected() -> None:
    tree = MerkleTree(LEAVES[:7])
    uncles = tree.uncles(1)
    with pytest.raises(IntegrityError):
        verify_with_uncles(1, CHUNKS[1], uncles[:-1], tree.root, 7)
    with pytest.raises(IntegrityError):
        verify_with_uncles(1, CHUNKS[1], [*uncles, Z], tree.root, 7)
    with pytest.raises(IntegrityError):
        verify_with_uncles(1, CHUNKS[1], list(reversed(uncles)), tree.root, 7)
    with pytest.raises(IntegrityError):
        verify_with_uncles(0, CHUNKS[1], uncles, tree.root, 7)
    with pytest.raises(IntegrityError):
        verify_with_uncles(7, CHUNKS[1], uncles, tree.root, 7)
    with pytest.raises(IntegrityError):
        verify_with_uncles(1, CHUNKS[1], [b"short", *uncles[1:]], tree.root, 7)


def test_interior_node_cannot_pose_as_a_chunk() -> None:
    # The concatenation of two leaf hashes hashes to their parent; with the uncle count fixed
    # to the tree height it cannot be passed off as chunk 0 of a shallower path.
    tree = MerkleTree(LEAVES[:4])
    fake = LEAVES[0] + LEAVES[1]
    with pytest.raises(IntegrityError):
        verify_with_uncles(0, fake, [tree.node(1, 1)], tree.root, 4)


def test_hash_list_verification() -> None:
    tree = MerkleTree(LEAVES[:6])
    verify_hash_list(LEAVES[:6], tree.root)
    with pytest.raises(IntegrityError):
        verify_hash_list([*LEAVES[:5], LEAVES[7]], tree.root)
    with pytest.raises(IntegrityError):
        verify_hash_list(LEAVES[:5], tree.root)
    with pytest.raises(IntegrityError):
        verify_hash_list([], tree.root)
    verify_with_hash_list(5, CHUNKS[5], LEAVES[:6])
    tree.verify(5, CHUNKS[5])
    with pytest.raises(IntegrityError):
        verify_with_hash_list(5, CHUNKS[4], LEAVES[:6])
    with pytest.raises(IntegrityError):
        tree.verify(6, CHUNKS[5])
    with pytest.raises(IntegrityError):
        merkle_root([b"not a hash"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=16), min_size=1, max_size=40), st.data())
def test_every_chunk_verifies_and_tampering_fails(chunks: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree.from_chunks(chunks)
    n = len(chunks)
    assert tree.leaf_hashes == tuple(chunk_hash(c) for c in chunks)
    assert merkle_root(tree.leaf_hashes) == tree.root
    index = data.draw(st.integers(0, n - 1))
    uncles = tree.uncles(index)
    assert len(uncles) == tree_height(n)
    assert root_from_uncles(index, chunk_hash(chunks[index]), uncles) == tree.root
    verify_with_uncles(index, chunks[index], uncles, tree.root, n)
    with pytest.raises(IntegrityError):
        verify_with_uncles(index, chunks[index] + b"\x00", uncles, tree.root, n)
