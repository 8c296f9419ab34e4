"""``--turn``, ``--turn-user`` and ``--turn-password``: one definition for ``seed``, ``get``,
``watch`` and ``live``, read from the command line or the environment, checked before anything
runs."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ppsp.app import commands
from ppsp.app.cli import main, peer

SWARM = "a" * 64


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What ``get_main`` and ``seed_main`` were given (nothing runs)."""
    seen: dict[str, Any] = {}

    def fake(*args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(commands, "get_main", fake)
    monkeypatch.setattr(commands, "seed_main", fake)
    monkeypatch.setattr(commands, "watch_main", fake)
    monkeypatch.setattr(peer, "run_peer", lambda coro: 0)
    return seen


def _get(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    command = ["get", SWARM, "--tracker", "http://127.0.0.1:1", "-o", str(tmp_path / "out")]
    return CliRunner().invoke(main, [*command, *args], env=env)


def test_get_turn_gives_the_download_a_relay(tmp_path: Path, started: dict[str, Any]) -> None:
    result = _get(
        tmp_path, "--transport", "ppspp", "--turn", "10.0.0.1", "--turn-user", "u",
        env={"PPSP_GET_TURN_PASSWORD": "secret"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    turn = started["turn"]
    assert turn.address == ("10.0.0.1", 3478) and turn.username == "u"
    assert turn.password == "secret" and "secret" not in repr(turn)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--turn", "10.0.0.1", "--turn-user", "u"], "needs --transport ppspp"),
        (["--transport", "ppspp", "--turn", "10.0.0.1"], "needs --turn-user and --turn-password"),
    ],
)
def test_get_turn_without_what_it_needs_is_a_usage_error(
    tmp_path: Path, started: dict[str, Any], args: list[str], message: str
) -> None:
    result = _get(tmp_path, *args, env={"PPSP_GET_TURN_PASSWORD": "secret"})
    assert result.exit_code == 2 and message in result.output, result.output
    assert not started


def test_turn_from_the_environment_without_ppspp_is_left_unused(
    tmp_path: Path, started: dict[str, Any]
) -> None:
    result = _get(tmp_path, env={"PPSP_GET_TURN": "10.0.0.1", "PPSP_GET_TURN_USER": "u"})
    assert result.exit_code == 0, result.output
    assert started["turn"] is None


def test_get_turn_goes_with_a_tracker_not_peer(tmp_path: Path, started: dict[str, Any]) -> None:
    result = CliRunner().invoke(
        main,
        ["get", "b" * 40, "--peer", "ppspp://127.0.0.1:7000", "-o", str(tmp_path / "out"),
         "--turn", "10.0.0.1"],
    )  # fmt: skip
    assert result.exit_code == 2 and "--turn goes with --tracker" in result.output, result.output


def test_seed_reads_the_same_options(tmp_path: Path, started: dict[str, Any]) -> None:
    content = tmp_path / "file.bin"
    content.write_bytes(b"x" * 1000)
    base = ["seed", str(content), "--tracker", "http://127.0.0.1:1"]
    result = CliRunner().invoke(main, [*base, "--turn", "10.0.0.1"])
    assert result.exit_code == 2 and "needs --ppspp-port" in result.output, result.output
    result = CliRunner().invoke(
        main,
        [*base, "--ppspp-port", "0", "--turn", "10.0.0.1:3479", "--turn-user", "v"],
        env={"PPSP_SEED_TURN_PASSWORD": "pw"},
    )
    assert result.exit_code == 0, result.output
    assert started["turn"].address == ("10.0.0.1", 3479)


def test_watch_reads_the_same_options(tmp_path: Path, started: dict[str, Any]) -> None:
    base = ["watch", SWARM, "--tracker", "http://127.0.0.1:1", "--turn", "10.0.0.1"]
    result = CliRunner().invoke(main, [*base, "--turn-user", "v"])
    assert result.exit_code == 2 and "needs --transport ppspp" in result.output, result.output
    result = CliRunner().invoke(
        main,
        [*base, "--transport", "ppspp", "--turn-user", "v"],
        env={"PPSP_WATCH_TURN_PASSWORD": "pw"},
    )
    assert result.exit_code == 0, result.output
    assert started["turn"].username == "v" and started["turn"].password == "pw"


def test_live_reads_the_same_options(
    tmp_path: Path, started: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ppsp.app import live_commands

    live_cli = importlib.import_module("ppsp.app.cli.live")  # the package names a command so
    monkeypatch.setattr(live_commands, "live_main", lambda *a, **kw: started.update(kw))
    monkeypatch.setattr(live_cli, "run_peer", lambda coro: 0)
    base = ["live", "--tracker", "http://127.0.0.1:1", "--turn", "10.0.0.1", "--turn-user", "v"]
    result = CliRunner().invoke(main, base, env={"PPSP_LIVE_TURN_PASSWORD": "pw"})
    assert result.exit_code == 2 and "needs --ppspp-port" in result.output, result.output
    assert not started
    result = CliRunner().invoke(
        main, [*base, "--ppspp-port", "0"], env={"PPSP_LIVE_TURN_PASSWORD": "pw"}
    )
    assert result.exit_code == 0, result.output
    turn = started["turn"]
    assert turn.address == ("10.0.0.1", 3478) and turn.username == "v" and turn.password == "pw"
