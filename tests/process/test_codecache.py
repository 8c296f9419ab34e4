"""The dataclass code cache: the same methods as without it, kept between runs, never a failure."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ppsp.process import codecache
from ppsp.process.codecache import CodeCache


def _define(cache: CodeCache | None) -> type:
    previous = dataclasses.__dict__.get("exec")
    if cache is not None:
        dataclasses.exec = cache.exec  # type: ignore[attr-defined]
    try:

        @dataclasses.dataclass(frozen=True, slots=True)
        class Point:
            x: int
            y: str = "b"

        return Point
    finally:
        if previous is None:
            dataclasses.__dict__.pop("exec", None)
        else:
            dataclasses.exec = previous  # type: ignore[attr-defined]


def test_methods_made_from_the_cache_are_the_methods_dataclasses_makes(tmp_path: Path) -> None:
    plain = _define(None)
    first = CodeCache(tmp_path / "cache")
    fresh = _define(first)
    assert first.added > 0
    first.save()
    second = CodeCache(tmp_path / "cache")
    cached = _define(second)
    assert second.added == 0  # every method came from the file
    for kind in (fresh, cached):
        point = kind(1)
        assert repr(point) == repr(plain(1))
        assert point == kind(1) and point != kind(2)
        assert hash(point) == hash(kind(1))
        with pytest.raises(dataclasses.FrozenInstanceError):
            point.x = 3  # type: ignore[misc]
        # Annotations are the objects dataclasses puts there, not strings (no __future__
        # flags leak from the cache's own module into the compiled code).
        assert kind.__init__.__annotations__ == plain.__init__.__annotations__


def test_a_corrupt_or_foreign_file_is_ignored(tmp_path: Path) -> None:
    for content in (b"", b"\x00garbage", b"\xe9" * 100):
        path = tmp_path / "cache"
        path.write_bytes(content)
        cache = CodeCache(path)
        assert cache.code == {}
        _define(cache)
        assert cache.added > 0


def test_an_unwritable_cache_never_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cache = CodeCache(blocker / "ppsp" / "cache")
    _define(cache)
    cache.save()  # the directory cannot be made: nothing raised
    assert not (blocker / "ppsp").exists()


def test_the_cache_lives_in_the_users_cache_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere")
    path = codecache.cache_path()
    assert path is not None and path.parent == Path("/somewhere/ppsp")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as the XDG rules say
    path = codecache.cache_path()
    assert path is not None and path.parent == Path.home() / ".cache" / "ppsp"


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="installed on Python 3.11 only")
def test_a_command_writes_the_cache_once_and_later_runs_read_it(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    code = (
        "import ppsp.app.cli, ppsp.wire.peer, ppsp.wire.tracker\n"
        "from ppsp.process import codecache\n"
        "print(codecache._installed.added)\n"
    )
    counts = [
        int(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(2)
    ]
    assert counts[0] > 50  # the wire model's methods, compiled and kept
    assert counts[1] == 0  # all read from the file
    assert codecache.cache_path() is not None
    assert list((tmp_path / "ppsp").iterdir())


def test_entries_are_unmarshalled_only_when_asked_for_and_a_bad_one_is_compiled_again(
    tmp_path: Path,
) -> None:
    first = CodeCache(tmp_path / "cache")
    _define(first)
    first.save()
    second = CodeCache(tmp_path / "cache")
    # Read as marshalled bytes: a command pays only for the classes it defines.
    assert second.code and all(isinstance(data, bytes) for data in second.code.values())
    for source in second.code:
        second.code[source] = b"\x00not code"
    cached = _define(second)
    assert second.added > 0  # the unreadable entries were compiled again ...
    assert repr(cached(1)) == repr(_define(None)(1))  # ... into the same methods
