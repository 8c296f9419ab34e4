"""The live source's input checks and the viewer's outputs (``peer/livenode.py``)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from ppsp.peer.net.live_io import LiveInput, LiveOutputs, describe_input_error


def test_players_that_connect_later_begin_at_the_latest_start_point() -> None:
    sink = io.BytesIO()
    outputs = LiveOutputs(sink)
    early = outputs.subscribe()
    outputs.play(b"K1", start=True)
    outputs.play(b"p1", start=False)
    outputs.play(b"K2", start=True)
    outputs.play(b"p2", start=False)
    late = outputs.subscribe()
    outputs.play(b"p3", start=False)
    assert sink.getvalue() == b"K1p1K2p2p3"
    assert [early.get_nowait() for _ in range(early.qsize())] == [b"K1", b"p1", b"K2", b"p2", b"p3"]
    assert [late.get_nowait() for _ in range(late.qsize())] == [b"K2", b"p2", b"p3"]
    outputs.close()


def test_a_backlog_too_long_makes_later_players_wait_for_a_start_point() -> None:
    outputs = LiveOutputs()
    outputs.BACKLOG_BYTES = 10
    outputs.play(b"K" * 6, start=True)
    outputs.play(b"p" * 6, start=False)  # over the bound: dropped
    late = outputs.subscribe()
    assert late.qsize() == 0
    outputs.play(b"K2", start=True)
    assert late.get_nowait() == b"K2"


def test_input_checks(tmp_path: Path) -> None:
    assert LiveInput.open("-") == LiveInput("-", 0, False)
    with pytest.raises(FileNotFoundError) as missing:
        LiveInput.open(str(tmp_path / "missing.ts"))
    message = describe_input_error(str(tmp_path / "missing.ts"), missing.value)
    assert (
        message
        == f"cannot read the live input {tmp_path / 'missing.ts'}: No such file or directory"
    )
    with pytest.raises(IsADirectoryError):
        LiveInput.open(str(tmp_path))
    regular = tmp_path / "stream.ts"
    regular.write_bytes(b"\x47" * 188)
    opened = LiveInput.open(str(regular))
    assert opened.fd is not None and opened.follow
    opened.close()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    piped = LiveInput.open(str(fifo))  # does not wait for a writer
    assert piped.fd is None and not piped.follow
    if os.geteuid() != 0:  # root reads anything
        fifo.chmod(0)
        with pytest.raises(PermissionError):
            LiveInput.open(str(fifo))
