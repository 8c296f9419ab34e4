"""Keyword builders build what the constructors build, and mypy checks every call against them."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ppsp.tracker.storage.base import PeerRecord, SwarmMember
from ppsp.wire.builder import keyword_builder
from ppsp.wire.common import ContentMap, PeerInfo, RepresentationMap, SegmentMap
from ppsp.wire.tracker import (
    ConnectRequest,
    CorruptPeerReport,
    DisconnectRequest,
    FindRequest,
    JoinRequest,
    PeerMode,
    ProtocolVersion,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
)

BUILT = [
    ConnectRequest,
    ContentMap,
    CorruptPeerReport,
    DisconnectRequest,
    FindRequest,
    JoinRequest,
    PeerInfo,
    PeerRecord,
    RepresentationMap,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmMember,
    TrackerResponse,
]
"""Every class the tracker and its codecs build with :func:`keyword_builder`."""

MODULES = [
    "ppsp.tracker.core",
    "ppsp.tracker.peerlist",
    "ppsp.tracker.storage.memory",
    "ppsp.tracker.net.redis_storage",
    "ppsp.codecs.tracker_xml.read",
    "ppsp.codecs.tracker_xml.plain",
    "ppsp.codecs.tracker_json.decode",
]
"""The modules that build with it."""

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize("cls", BUILT, ids=lambda cls: cls.__name__)
def test_built_classes_have_no_post_init_to_skip(cls: type[Any]) -> None:
    assert dataclasses.is_dataclass(cls)
    assert not hasattr(cls, "__post_init__"), f"{cls.__name__}: the builder would skip it"
    assert cls.__dataclass_params__.frozen
    keyword_builder(cls)  # accepted


def test_builder_builds_what_the_constructor_builds() -> None:
    build_segment = keyword_builder(SegmentMap)
    built = build_segment(start_index=0, end_index=15, chunkmap_size=16, bitmap=b"\xff\x00")
    made = SegmentMap(start_index=0, end_index=15, chunkmap_size=16, bitmap=b"\xff\x00")
    assert type(built) is SegmentMap
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.start_index = 1  # type: ignore[misc]
    build_action = keyword_builder(SwarmAction)
    values = {
        field.name: getattr(
            SwarmAction(swarm_id="s1", action=SwarmActionType.JOIN, peer_mode=PeerMode.LEECH),
            field.name,
        )
        for field in dataclasses.fields(SwarmAction)
    }
    assert build_action(**values) == SwarmAction(**values)


def test_builder_applies_the_defaults_and_reads_inherited_fields() -> None:
    build_find = keyword_builder(FindRequest)
    common = {"version": ProtocolVersion.V1_1, "transaction_id": "t", "peer_id": "p"}
    built = build_find(**common, swarm_id="s")
    assert built == FindRequest(**common, swarm_id="s")
    assert built.peer_num is None and built.content_group == ()
    # Keyword arguments only, each once, as the constructor takes them.
    with pytest.raises(TypeError):
        build_find("t")  # type: ignore[misc]
    with pytest.raises(TypeError):
        build_find(transaction_id="t", peer_id="p")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        build_find(**common, swarm_id="s", extra=1)  # type: ignore[call-arg]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Factory:
    values: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True, kw_only=True)
class _Mutable:
    value: int


@pytest.mark.parametrize("cls", [_Checked, _Factory, _Mutable, int], ids=lambda c: c.__name__)
def test_classes_the_builder_would_build_wrongly_are_refused(cls: type[Any]) -> None:
    with pytest.raises(TypeError):
        keyword_builder(cls)


def test_every_builder_in_the_tracker_is_of_a_checked_class() -> None:
    found = set()
    for name in MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if callable(value) and getattr(value, "__name__", "").startswith("build_"):
                found.add(value.__globals__["_cls"])
    assert found, "no keyword builders found: update this test"
    assert found <= set(BUILT)


def test_mypy_checks_each_call_against_the_constructor(tmp_path: Path) -> None:
    """A misspelt, mistyped or positional argument is a type error, as for the constructor."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        textwrap.dedent(
            """
            from ppsp.wire.builder import keyword_builder
            from ppsp.wire.common import PeerInfo

            build = keyword_builder(PeerInfo)
            good: PeerInfo = build(peer_id="p", swarm_id="s")
            build(peer="p")
            build(peer_id=1)
            build("p")
            """
        )
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(sample),
        ],
        capture_output=True,
        text=True,
        env={"MYPYPATH": str(SRC), "PATH": ""},
        timeout=300,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["7", "8", "9"], result.stdout


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Base:
    """A keyword-only base whose field has a default."""

    x: int = 1


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Derived(_Base):
    """A required field declared after a defaulted one (allowed with kw_only)."""

    y: str


def test_required_fields_after_defaulted_ones() -> None:
    build = keyword_builder(_Derived)
    assert build(y="q") == _Derived(y="q")
    assert build(y="r", x=5) == _Derived(x=5, y="r")
