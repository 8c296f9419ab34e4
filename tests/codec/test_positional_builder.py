"""The positional builders the tracker uses on its hot path build what the constructors build."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ppsp.tracker.storage.base import PeerRecord, SwarmMember
from ppsp.wire.tracker import (
    ConnectRequest,
    ContentMap,
    DisconnectRequest,
    FindRequest,
    JoinRequest,
    PeerInfo,
    PeerMode,
    RepresentationMap,
    SegmentMap,
    StatReportRequest,
    StreamStatistics,
    SwarmAction,
    SwarmActionType,
    TrackerResponse,
    positional_builder,
)

BUILT = [
    ConnectRequest,
    ContentMap,
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
"""Every class the tracker builds with :func:`positional_builder`."""


@pytest.mark.parametrize("cls", BUILT, ids=lambda cls: cls.__name__)
def test_built_classes_have_no_post_init_to_skip(cls: type[Any]) -> None:
    assert dataclasses.is_dataclass(cls)
    assert not hasattr(cls, "__post_init__"), f"{cls.__name__}: the builder would skip it"
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_builder_builds_what_the_constructor_builds() -> None:
    build_segment = positional_builder(SegmentMap)
    built = build_segment(0, 15, 16, b"\xff\x00")
    made = SegmentMap(start_index=0, end_index=15, chunkmap_size=16, bitmap=b"\xff\x00")
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.start_index = 1  # type: ignore[misc]
    build_action = positional_builder(SwarmAction)
    values = {
        field.name: getattr(
            SwarmAction(swarm_id="s1", action=SwarmActionType.JOIN, peer_mode=PeerMode.LEECH),
            field.name,
        )
        for field in dataclasses.fields(SwarmAction)
    }
    assert build_action(*values.values()) == SwarmAction(**values)


def test_every_builder_in_the_tracker_is_of_a_checked_class() -> None:
    import importlib

    modules = [
        "ppsp.tracker.core",
        "ppsp.tracker.peerlist",
        "ppsp.codecs.tracker_xml",
        "ppsp.codecs.tracker_json",
        "ppsp.tracker.storage.memory",
    ]
    found = set()
    for name in modules:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if callable(value) and getattr(value, "__name__", "") == "build":
                found.add(value.__globals__["_cls"])
    assert found, "no positional builders found: update this test"
    assert found <= set(BUILT)
