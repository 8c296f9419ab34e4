"""Real processes configured without options: a tracker by a file and the environment, peers
by the environment and the per-user file, their logs written as JSON lines.

Every process gets an environment free of its user's settings (no ``PPSP_*`` variable, an
empty ``$XDG_CONFIG_HOME``) plus exactly what the test gives it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from e2e.swarm_helpers import CHUNK_SIZE, ENV, LISTENING, Swarm, content, finish

SWARM = "ab" * 32


def clean_environment(tmp_path: Path) -> dict[str, str]:
    """The test run's environment without any PPSP_* variable, and an empty user directory."""
    home = tmp_path / "xdg"
    home.mkdir(exist_ok=True)
    env = {name: value for name, value in ENV.items() if not name.startswith("PPSP_")}
    return {**env, "XDG_CONFIG_HOME": str(home)}


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON log file (every line must be one object)."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
    return records


async def test_a_tracker_from_a_file_and_peers_from_the_environment(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(content(300_000))
    config = tmp_path / "tracker.toml"
    config.write_text(
        # The port here is one the tracker could not use: the environment's must win.
        'log-level = "debug"\n'
        'log-format = "json"\n'
        "[tracker]\n"
        'host = "127.0.0.1"\n'
        "port = 1\n"
        'max-version = "1.0"\n'
        'limits = "off"\n',
        encoding="utf-8",
    )
    tracker_log, get_log = tmp_path / "tracker.log", tmp_path / "get.log"
    clean = clean_environment(tmp_path)
    async with Swarm(tmp_path) as swarm:
        swarm.env = {
            **clean,
            "PPSP_CONFIG": str(config),
            "PPSP_TRACKER_PORT": "0",
            "PPSP_TRACKER_LOG_FILE": str(tracker_log),
        }
        tracker = await swarm.spawn("tracker", "tracker")
        listening = await tracker.wait_line(LISTENING, stream="stdout")
        url = listening.group(1)
        # From the file: PPSP-TP/1.0 only, per-host limits off.
        assert "(PPSP-TP/1.0, per-host limits off)" in tracker.stdout[0], tracker.output()

        peers = {**clean, "PPSP_PEER_TRACKER": url}
        swarm.env = {**peers, "PPSP_SEED_CHUNK_SIZE": str(CHUNK_SIZE)}
        seeder = await swarm.spawn("seeder", "seed", str(source))
        swarm_id = await seeder.first_stdout_line()
        assert re.fullmatch(r"[0-9a-f]{64}", swarm_id), seeder.output()
        await seeder.wait_line(r"^seeding ")

        # The leecher's settings: its log from the per-user file, its format from a variable.
        user = Path(clean["XDG_CONFIG_HOME"]) / "ppsp" / "config.toml"
        user.parent.mkdir(parents=True)
        user.write_text(f'[get]\nlog-file = "{get_log}"\ntimeout = 20\n', encoding="utf-8")
        swarm.env = {**peers, "PPSP_LOG_FORMAT": "json"}
        getter = await swarm.spawn("get", "get", swarm_id, "-o", str(tmp_path / "copy.bin"))
        await finish(getter)
        tracker.signal(2)
        assert await tracker.wait() == 0, tracker.output()

    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()
    # The tracker logged at debug level (the file's) into the variable's file, as JSON.
    records = json_lines(tracker_log)
    messages = [r["message"] for r in records if r["logger"] == "ppsp.tracker.net.server"]
    assert any("shutting down" in message for message in messages), records
    assert {r["level"] for r in records} >= {"debug"}
    assert not any("Traceback" in line for line in tracker.stderr), tracker.output()
    # The leecher fell back to PPSP-TP/1.0 and said so at info level, in its JSON log file.
    fallback = [r for r in json_lines(get_log) if "falling back to 1.0" in r["message"]]
    assert fallback and fallback[0]["level"] == "info", get_log.read_text(encoding="utf-8")
    assert not any(line.startswith("{") for line in getter.stderr), getter.output()


def test_a_bad_file_stops_a_peer_before_any_network(tmp_path: Path) -> None:
    """``$PPSP_CONFIG`` with an unknown key: one line, exit status 2, the tracker never asked
    (a listening socket that would take the connection counts none)."""
    import socket

    config = tmp_path / "c.toml"
    config.write_text('[peer]\ntracker = "http://127.0.0.1:1"\n[get]\ntimout = 5\n')
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        result = subprocess.run(
            [sys.executable, "-m", "ppsp", "get", SWARM, "-o", "x", "--tracker", url],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
            env={**clean_environment(tmp_path), "PPSP_CONFIG": str(config)},
        )
        try:
            server.accept()
            connected = True
        except BlockingIOError:
            connected = False
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"ppsp: config {config}: unknown key 'timout' in [get] (did you mean 'timeout'?)\n"
    )
    assert not connected
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.part").exists()


def test_the_environment_of_the_test_run_holds_no_user_settings() -> None:
    """tests/conftest.py removes the variables ppsp reads and hides the per-user file."""
    from ppsp.app.cli import main
    from ppsp.app.cli.config import user_config_path, variables

    assert not any(os.environ.get(name) for name in variables(main))
    path = user_config_path()
    assert path is not None and not path.exists()
