"""The field rules every codec shares (``ppsp.wire.fields``) and the peer-list merge."""

from __future__ import annotations

import ast
import base64
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.wire import fields
from ppsp.wire.common import PeerAddress, PeerInfo, merge_listed_peers
from ppsp.wire.tracker import SwarmAction

PROPERTY = settings(max_examples=500, deadline=None)


@PROPERTY
@given(st.text(max_size=300) | st.text(st.characters(max_codepoint=0x7F), max_size=300))
def test_is_token_is_the_token_expression(text: str) -> None:
    """The ASCII shortcut of is_token agrees with TOKEN_RE everywhere."""
    assert fields.is_token(text) is (fields.TOKEN_RE.fullmatch(text) is not None)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("a", True),
        ("x" * 256, True),
        ("x" * 257, False),
        ("", False),
        ("a b", False),
        ("a\u00a0b", False),  # no-break space
        ("\u0085", False),  # C1 control
        ("\x7f", False),
        ("\ufffe", False),
        ("é€😀", True),
        ("&<>\"'", True),
        (7, False),
        (None, False),
    ],
)
def test_tokens(value: object, ok: bool) -> None:
    assert fields.is_token(value) is ok


def test_swarm_ids_are_tokens_other_than_all_and_nil() -> None:
    assert fields.is_swarm_id("1111")
    assert fields.is_swarm_id("all") and fields.is_swarm_id("NIL")  # the words are exact
    for word in ("ALL", "nil", "", "a b"):
        assert not fields.is_swarm_id(word)


@pytest.mark.parametrize(
    ("text", "version", "expected"),
    [
        ("192.0.2.1", None, ("192.0.2.1", 4)),
        ("2001:DB8:0::1", None, ("2001:db8::1", 6)),
        ("::ffff:192.0.2.1", 6, ("::ffff:192.0.2.1", 6)),  # RFC 5952 section 5
        ("::FFFF:C000:0201", None, ("::ffff:192.0.2.1", 6)),
        ("0.0.0.0", 4, ("0.0.0.0", 4)),
    ],
)
def test_canonical_ip(text: str, version: int | None, expected: tuple[str, int]) -> None:
    assert fields.canonical_ip(text, version) == expected


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("fe80::1%eth0", None),  # a zone index means nothing to another host
        ("01.2.3.4", None),
        ("256.1.1.1", None),
        ("192.0.2.1", 6),
        ("2001:db8::1", 4),
        ("example.org", None),
        ("1" * 100, None),
        (" 192.0.2.1", None),
    ],
)
def test_not_an_ip(text: str, version: int | None) -> None:
    with pytest.raises(ValueError):
        fields.canonical_ip(text, version)


@PROPERTY
@given(st.integers(0, 200), st.data())
def test_chunk_maps_round_trip(size: int, data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.binary(min_size=(size + 7) // 8, max_size=(size + 7) // 8)))
    if size % 8:
        raw[-1] &= (0xFF << (8 - size % 8)) & 0xFF
    text = fields.chunkmap_text(bytes(raw), size)
    assert fields.chunkmap_bytes(text, size) == bytes(raw)
    # Line breaks inside the Base64 are read too.
    lines = "\n".join(text[i : i + 4] for i in range(0, len(text), 4))
    assert fields.chunkmap_bytes(lines, size) == bytes(raw)


def test_chunk_map_bits_past_the_size() -> None:
    assert fields.chunkmap_bytes("/w==", 4) == b"\xf0"  # cleared when read
    with pytest.raises(ValueError):
        fields.chunkmap_text(b"\xff", 4)  # refused when written: they would not survive


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("!!!!", 8),
        ("AAAA", 8),  # 3 bytes for 8 bits
        ("", 8),
        ("gA==", -1),
        ("A" * (4 * (fields.MAX_CHUNKMAP_BITS // 24 + 1)), fields.MAX_CHUNKMAP_BITS + 1),
        ("gA==" + " " * 200, 8),  # far longer than 8 bits allow, refused before decoding
    ],
)
def test_bad_chunk_maps(text: str, size: int) -> None:
    with pytest.raises(ValueError):
        fields.chunkmap_bytes(text, size)


def test_largest_chunk_map() -> None:
    size = fields.MAX_CHUNKMAP_BITS
    text = base64.b64encode(bytes(size // 8)).decode()
    assert len(fields.chunkmap_bytes(text, size)) == size // 8


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("OnlineTime", True),
        ("startup_delay", True),
        ("a.b-c", True),
        ("_x", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("UploadedBytes", False),
        ("uploaded_bytes", False),
        ("swarm_id", False),
        ("SwarmID", False),
        ("1abc", False),
        ("a b", False),
        ("Durée", False),
        ("", False),
    ],
)
def test_extra_statistic_names(name: str, ok: bool) -> None:
    assert fields.is_extra_statistic_name(name) is ok


@pytest.mark.parametrize(
    ("root", "actions", "ok"),
    [
        ("7", [None, "7.1"], True),
        ("7", ["7"], True),
        ("7", ["1.0"], False),
        ("7.0", ["7.0", "7.1", "8.0"], True),
        ("12345.0", [], True),
    ],
)
def test_clear_action_ids(root: str, actions: list[str | None], ok: bool) -> None:
    swarms = [SwarmAction(swarm_id=str(i), transaction_id=t) for i, t in enumerate(actions)]
    assert fields.clear_action_ids(root, swarms) is ok


A = PeerAddress(ip="192.0.2.1", port=1)
B = PeerAddress(ip="192.0.2.2", port=2)


def test_merge_listed_peers() -> None:
    peers = [
        PeerInfo(peer_id="a", addresses=(A,), swarm_id="s"),
        PeerInfo(peer_id="b", addresses=(A,), swarm_id="s"),
        PeerInfo(peer_id="a", addresses=(A,), swarm_id="t"),
        PeerInfo(peer_id="a", addresses=(B,), swarm_id="s"),
        PeerInfo(addresses=(A,)),
        PeerInfo(addresses=(B,)),
    ]
    assert merge_listed_peers(peers) == [
        PeerInfo(peer_id="a", addresses=(A, B), swarm_id="s"),
        PeerInfo(peer_id="b", addresses=(A,), swarm_id="s"),
        PeerInfo(peer_id="a", addresses=(A,), swarm_id="t"),
        PeerInfo(addresses=(A,)),
        PeerInfo(addresses=(B,)),
    ]
    unique = peers[:3]
    assert merge_listed_peers(unique) is unique  # nothing to merge: the same list


# -- every bound once ------------------------------------------------------------------------

_PACKAGE = Path(__file__).resolve().parents[2] / "src" / "ppsp"
_BOUND = re.compile(r"_?(MAX|MIN)_[A-Z0-9_]+")


def _bounds_assigned(path: Path) -> list[str]:
    """Names of bounds (``MAX_*``, ``MIN_*``) a module assigns at its top level."""
    tree = ast.parse(path.read_text())
    names = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        names.extend(t.id for t in targets if isinstance(t, ast.Name) and _BOUND.fullmatch(t.id))
    return names


def test_every_bound_of_the_wire_is_defined_in_fields_only() -> None:
    """The wire model and the codecs take every bound from ``ppsp.wire.fields``: none defines
    one of its own, nor a second name for one."""
    modules = [*(_PACKAGE / "wire").rglob("*.py"), *(_PACKAGE / "codecs").rglob("*.py")]
    assert len(modules) > 10
    defined = {
        str(path.relative_to(_PACKAGE)): names
        for path in modules
        if path.name != "fields.py" and (names := _bounds_assigned(path))
    }
    assert defined == {}
    assert "MAX_MESSAGE_BYTES" in _bounds_assigned(_PACKAGE / "wire" / "fields.py")
