"""Merkle trees with SHA-1 (and the other RFC 7574 functions): libswift's root hashes, its
peak-hash derivation of the root, and uncle-hash verification."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.errors import IntegrityError
from ppsp.peer.content.merkle import (
    EMPTY_HASH,
    HASH_SIZE,
    MerkleTree,
    bin_number,
    chunk_hash,
    hash_size,
    merkle_root,
    parent_hash,
    ppspp_root_hash,
    verify_hash_list,
    verify_with_hash_list,
    verify_with_uncles,
)
from ppsp.wire.ppspp import MerkleHashFunction

# libswift's vectors (/work/shared/interop/libswift/README.md), SHA-1 with 1024-byte chunks.
SMALL = b"123\n"
SMALL_ROOT = "a8fdc205a9f19cc1c7507a60c4f01b13d11d7fd0"
DOLLARS = b"$" * 1028
DOLLARS_ROOT = "5b53677d3a695f29f1b4e18ab6d705312ef7f8c3"
DOLLARS_LEAVES = ("4d38c745", "99a4"), ("a923e4b6", "ae60")


def sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def test_libswift_vectors() -> None:
    assert ppspp_root_hash(SMALL).hex() == SMALL_ROOT
    assert ppspp_root_hash(DOLLARS).hex() == DOLLARS_ROOT
    assert ppspp_root_hash(DOLLARS, 1024, "sha1").hex() == DOLLARS_ROOT
    tree = MerkleTree.from_chunks([DOLLARS[:1024], DOLLARS[1024:]], hash_name="sha1")
    for leaf, (head, tail) in zip(tree.leaf_hashes, DOLLARS_LEAVES, strict=True):
        assert leaf.hex().startswith(head) and leaf.hex().endswith(tail)
    assert tree.root.hex() == DOLLARS_ROOT


def test_one_chunk_root_is_its_hash_and_the_last_chunk_is_not_padded() -> None:
    assert ppspp_root_hash(SMALL) == sha1(SMALL)
    # The 4-byte tail of the 1028-byte file is hashed as 4 bytes, not 1024.
    assert chunk_hash(DOLLARS[1024:], "sha1") == sha1(b"$$$$")


def _libswift_root(data: bytes, chunk_size: int) -> bytes:
    """The root as libswift's MmapHashTree computes it: hashes of the complete subtrees
    (peaks, RFC 7574 section 5.6.1), then DeriveRoot: from the last peak up, hashing with a
    zero hash while the node is a left child, with the peak to its left otherwise, until
    the leftmost peak is used."""
    leaves = [sha1(data[i : i + chunk_size]) for i in range(0, len(data), chunk_size)]
    peaks: list[tuple[int, int, bytes]] = []  # (level, position, hash), left to right
    first = 0
    for level in range(len(leaves).bit_length() - 1, -1, -1):
        if len(leaves) & (1 << level):
            nodes = leaves[first : first + (1 << level)]
            while len(nodes) > 1:
                nodes = [sha1(nodes[i] + nodes[i + 1]) for i in range(0, len(nodes), 2)]
            peaks.append((level, first >> level, nodes[0]))
            first += 1 << level
    level, position, node = peaks.pop()
    while peaks:
        if position % 2 == 0:  # a left child: its right sibling is all padding
            node = sha1(node + bytes(20))
        else:
            peak_level, peak_position, peak = peaks.pop()
            assert (peak_level, peak_position) == (level, position - 1)
            node = sha1(peak + node)
        level, position = level + 1, position // 2
    return node


@pytest.mark.parametrize("chunks", [1, 2, 3, 5, 6, 7, 8, 9, 13, 16, 17, 100])
def test_non_power_of_two_chunk_counts_match_libswift_peak_derivation(chunks: int) -> None:
    data = bytes((i * 7) % 251 for i in range(chunks * 64 - 5 if chunks > 1 else 10))
    assert ppspp_root_hash(data, 64) == _libswift_root(data, 64)


@settings(max_examples=50)
@given(st.binary(min_size=1, max_size=3000), st.sampled_from([1, 3, 64, 1024]))
def test_root_hash_matches_libswift_derivation(data: bytes, chunk_size: int) -> None:
    assert ppspp_root_hash(data, chunk_size) == _libswift_root(data, chunk_size)


def test_seven_chunks_peaks_are_nodes_3_9_12() -> None:
    # Section 5.6.1's 7162-byte file with 1 KiB chunks.
    data = bytes(range(256)) * 27 + bytes(250)
    assert len(data) == 7162
    tree = MerkleTree.from_chunks(
        [data[i : i + 1024] for i in range(0, len(data), 1024)], hash_name="sha1"
    )
    assert [bin_node for bin_node, _ in tree.peaks()] == [3, 9, 12]
    assert tree.root == ppspp_root_hash(data)


def test_uncle_hash_verification_with_sha1() -> None:
    chunks = [bytes([i]) * 1024 for i in range(7)] + [b"tail"]
    tree = MerkleTree.from_chunks(chunks, hash_name="sha1")
    assert tree.root == ppspp_root_hash(b"".join(chunks))
    for index, chunk in enumerate(chunks):
        uncles = tree.uncles(index)
        assert all(len(uncle) == 20 for uncle in uncles)
        verify_with_uncles(index, chunk, uncles, tree.root, len(chunks), "sha1")
        with pytest.raises(IntegrityError, match="does not verify"):
            verify_with_uncles(index, chunk + b"!", uncles, tree.root, len(chunks), "sha1")
        forged = [uncles[0][:-1] + bytes([uncles[0][-1] ^ 1]), *uncles[1:]]
        with pytest.raises(IntegrityError):
            verify_with_uncles(index, chunk, forged, tree.root, len(chunks), "sha1")
    # SHA-256-sized uncles are refused in a SHA-1 tree, and the other way round.
    with pytest.raises(IntegrityError, match="20-byte"):
        verify_with_uncles(0, chunks[0], [bytes(32)] * 3, tree.root, len(chunks), "sha1")
    with pytest.raises(IntegrityError, match="32-byte"):
        verify_with_uncles(0, chunks[0], tree.uncles(0), tree.root, len(chunks))
    tree.verify(3, chunks[3])
    with pytest.raises(IntegrityError):
        tree.verify(3, chunks[4])


def test_section_5_2_uncles_of_chunk_4_in_a_7_chunk_tree() -> None:
    tree = MerkleTree.from_chunks([bytes([i]) for i in range(7)], hash_name="sha1")
    assert [bin_node for bin_node, _ in tree.uncle_nodes(4)] == [10, 13, 3]
    # Node 13 covers chunk 6 and an empty leaf: SHA-1 of the chunk's hash and 20 zero bytes.
    assert tree.uncles(4)[1] == sha1(sha1(bytes([6])) + bytes(20))
    assert tree.node(0, 7) == bytes(20)


def test_hash_lists_with_sha1() -> None:
    leaves = [chunk_hash(bytes([i]), "sha1") for i in range(5)]
    root = merkle_root(leaves, "sha1")
    verify_hash_list(leaves, root, "sha1")
    verify_with_hash_list(2, bytes([2]), leaves, "sha1")
    with pytest.raises(IntegrityError):
        verify_hash_list(leaves[:4], root, "sha1")
    with pytest.raises(IntegrityError):
        verify_with_hash_list(2, bytes([3]), leaves, "sha1")


@pytest.mark.parametrize("function", list(MerkleHashFunction))
def test_every_rfc7574_function(function: MerkleHashFunction) -> None:
    name = function.hashlib_name
    assert hash_size(name) == function.digest_size == hashlib.new(name).digest_size
    data = b"x" * 3000
    tree = MerkleTree.from_chunks([data[:1024], data[1024:2048], data[2048:]], hash_name=name)
    assert tree.root == ppspp_root_hash(data, 1024, name)
    assert parent_hash(bytes(function.digest_size), bytes(function.digest_size), name) == bytes(
        function.digest_size
    )
    verify_with_uncles(2, data[2048:], tree.uncles(2), tree.root, 3, name)


def test_sha256_stays_the_default() -> None:
    assert HASH_SIZE == 32
    assert not any(EMPTY_HASH)
    assert chunk_hash(b"a") == hashlib.sha256(b"a").digest()
    assert (
        MerkleTree.from_chunks([b"a", b"b"]).root
        == hashlib.sha256(hashlib.sha256(b"a").digest() + hashlib.sha256(b"b").digest()).digest()
    )
    assert ppspp_root_hash(b"abc", hash_name="sha256") == hashlib.sha256(b"abc").digest()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="empty file"):
        ppspp_root_hash(b"")
    with pytest.raises(ValueError, match="chunk size"):
        ppspp_root_hash(b"x", 0)
    with pytest.raises(ValueError, match="md5"):
        ppspp_root_hash(b"x", hash_name="md5")
    with pytest.raises(ValueError, match="md5"):
        chunk_hash(b"x", "md5")
    with pytest.raises(ValueError, match="md5"):
        hash_size("md5")
    assert bin_number(1, 2) == 9
