from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from hypothesis import given, settings
from hypothesis import strategies as st

from ppsp.errors import ContentError, IntegrityError, InvalidDescription, LiveError
from ppsp.peer.content.description import is_swarm_id
from ppsp.peer.live import (
    LiveDescription,
    generate_key,
    is_live_description,
    live_swarm_id,
    load_key,
    public_key_bytes,
    save_key,
    verify_live_description,
)

KEY = generate_key()
OTHER = generate_key()


def describe(**overrides: object) -> LiveDescription:
    fields: dict[str, object] = {
        "name": "camera one",
        "media_type": "video/mp2t",
        "chunk_ms": 1000,
        "window_s": 30,
        "start_ms": 1_700_000_000_000,
    }
    fields.update(overrides)
    return LiveDescription.create(KEY, **fields)  # type: ignore[arg-type]


def test_swarm_id_is_64_hex_from_the_public_key() -> None:
    swarm = live_swarm_id(KEY)
    assert is_swarm_id(swarm)
    assert swarm == live_swarm_id(KEY.public_key()) == live_swarm_id(public_key_bytes(KEY))
    assert swarm != live_swarm_id(OTHER)
    # Domain-separated: not the plain hash of the key.
    assert swarm != hashlib.sha256(public_key_bytes(KEY)).hexdigest()
    assert describe().swarm_id == swarm


def test_swarm_id_rejects_wrong_key_length() -> None:
    with pytest.raises(LiveError):
        live_swarm_id(b"\x00" * 31)


def test_description_round_trip_and_verify() -> None:
    desc = describe()
    data = desc.to_bytes()
    assert orjson.loads(data)["format"] == "ppsp-live/1"
    assert LiveDescription.from_bytes(data) == desc
    assert verify_live_description(data, desc.swarm_id) == desc
    assert is_live_description(data)
    assert not is_live_description(b'{"format":"ppsp-content/1"}')
    assert not is_live_description(b"\xff")
    assert desc.chunk_duration == 1.0
    assert desc.window_chunks == 30


def test_verify_rejects_another_swarm() -> None:
    desc = describe()
    with pytest.raises(IntegrityError):
        verify_live_description(desc.to_bytes(), live_swarm_id(OTHER))
    with pytest.raises(InvalidDescription):
        verify_live_description(desc.to_bytes(), "not-a-swarm")


def test_tampered_description_fails_signature() -> None:
    document = orjson.loads(describe().to_bytes())
    document["chunk_ms"] = 2000
    data = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    with pytest.raises(IntegrityError):
        LiveDescription.from_bytes(data)


def test_description_signed_by_another_key_fails() -> None:
    # Right public key (so the swarm ID matches), signature made by someone else.
    forged = LiveDescription.create(
        OTHER, name="x", media_type="video/mp2t", chunk_ms=1000, window_s=30, start_ms=0
    )
    document = orjson.loads(forged.to_bytes())
    document["public_key"] = public_key_bytes(KEY).hex()
    data = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    with pytest.raises(IntegrityError):
        verify_live_description(data, live_swarm_id(KEY))


def test_non_canonical_description_rejected() -> None:
    data = describe().to_bytes()
    with pytest.raises(InvalidDescription):
        LiveDescription.from_bytes(data.replace(b",", b", ", 1))


@pytest.mark.parametrize(
    "overrides",
    [
        {"chunk_ms": 0},
        {"chunk_ms": 60_001},
        {"chunk_ms": True},
        {"window_s": 0},
        {"start_ms": -1},
        {"name": ""},
        {"name": "a\nb"},
        {"media_type": "video"},
    ],
)
def test_invalid_fields(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidDescription):
        describe(**overrides)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600))
def test_hostile_description_bytes(data: bytes) -> None:
    with contextlib.suppress(ContentError):
        LiveDescription.from_bytes(data)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 400), st.integers(0, 255))
def test_any_byte_flip_is_rejected(position: int, value: int) -> None:
    data = bytearray(describe().to_bytes())
    position %= len(data)
    if data[position] == value:
        return
    data[position] = value
    with pytest.raises(ContentError):
        verify_live_description(bytes(data), live_swarm_id(KEY))


def test_save_and_load_key(tmp_path: Path) -> None:
    path = tmp_path / "source.pem"
    save_key(path, KEY)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = load_key(path)
    assert public_key_bytes(loaded) == public_key_bytes(KEY)


def test_save_key_tightens_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "source.pem"
    path.write_text("old")
    path.chmod(0o644)
    save_key(path, KEY)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert public_key_bytes(load_key(path)) == public_key_bytes(KEY)


def test_load_key_rejects_other_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"not a key")
    with pytest.raises(LiveError):
        load_key(garbage)
    ec = tmp_path / "ec.pem"
    ec.write_bytes(
        generate_private_key(SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(LiveError):
        load_key(ec)
    big = tmp_path / "big.pem"
    big.write_bytes(b"x" * (65 * 1024))
    with pytest.raises(LiveError):
        load_key(big)


# -- where a source keeps its key ------------------------------------------------------------


def test_default_key_path_follows_xdg(tmp_path: Path) -> None:
    from ppsp.peer.live.identity import default_key_path

    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path / "home")}
    assert default_key_path("cam", env) == tmp_path / "data" / "ppsp" / "live-keys" / "cam.key"
    # Unset, empty or relative: ~/.local/share (the XDG Base Directory rules).
    for xdg in (None, "", "relative/dir"):
        env = {"HOME": str(tmp_path / "home")} | ({} if xdg is None else {"XDG_DATA_HOME": xdg})
        expected = tmp_path / "home" / ".local" / "share" / "ppsp" / "live-keys" / "cam.key"
        assert default_key_path("cam", env) == expected


def test_key_file_names_per_stream() -> None:
    from ppsp.peer.live.identity import key_file_name

    assert key_file_name("live") == "live.key"
    assert key_file_name("cam-2_hd.v1") == "cam-2_hd.v1.key"
    names = ["my cam", "my/cam", "my_cam?", "../../etc/passwd", ".hidden", "-x", "é", "a" * 65]
    files = [key_file_name(n) for n in names]
    assert len(set(files)) == len(names)  # distinct names never share a key
    for name, file in zip(names, files, strict=True):
        assert "/" not in file and not file.startswith(".") and file.endswith(".key"), name
        assert len(file) <= 70
    assert key_file_name("my cam").startswith("my-cam-")


def test_key_directory_and_file_modes(tmp_path: Path) -> None:
    from ppsp.peer.live.identity import create_key, default_key_path, prepare_key_directory

    path = default_key_path("cam", {"XDG_DATA_HOME": str(tmp_path / "xdg")})
    prepare_key_directory(path)
    for directory in (path.parent, path.parent.parent, tmp_path / "xdg"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    key = create_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_key_bytes(load_key(path)) == public_key_bytes(key)
    with pytest.raises(FileExistsError):  # a key is never overwritten by a new one
        create_key(path)
    path.parent.chmod(0o755)
    prepare_key_directory(path)  # an existing key directory is made private again
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
