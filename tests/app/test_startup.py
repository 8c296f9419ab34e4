"""Each command imports only what it runs: start-up is paid for every module loaded.

A fresh interpreter (a subprocess, as a user's shell starts one) is asked which modules are
loaded: after the command line itself (what ``ppsp --help`` and every command's option
parsing pay), after the code a peer command's options and callback import, and at the exit of
real ``ppsp tracker``, ``ppsp seed`` and ``ppsp get`` processes (through a ``sitecustomize``
that writes ``sys.modules`` when the process exits).  Adding an eager import of the player,
the live modules, the lab, rich, prometheus, Redis or the tracker's server to these paths
makes a test here fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from e2e.swarm_helpers import Swarm, content, finish

# What no peer command that stores or serves a file (seed, get) may load: the player, the
# live source and viewer, the lab, the tracker's server, and the libraries only they use.
# aiohttp (and yarl and multidict, which come with it) is among them: a peer's HTTP server and
# clients are ppsp.http's, and aiohttp's import alone was most of a peer's start-up.
NOT_FOR_PEERS = (
    "aiohttp",
    "yarl",
    "multidict",
    "ppsp.app.player",
    "ppsp.app.web",
    "ppsp.app.hls",
    "ppsp.app.live_commands",
    "ppsp.app.demo",
    "ppsp.app.demo_swarm",
    "ppsp.lab",
    "ppsp.peer.net.livenode",
    "ppsp.peer.live.source",
    "ppsp.peer.live.ts",
    "ppsp.tracker.core",
    "ppsp.tracker.net.server",
    "ppsp.tracker.net.workers",
    "ppsp.tracker.net.auth",
    "rich",
    "prometheus_client",
    "redis",
    "jwt",
    "uvloop",
    "matplotlib",
    "av",
    "tempfile",  # a nameless temporary file is `ppsp watch`'s only
    # The tracker's half of its XML codec: a peer encodes requests and decodes answers.
    "ppsp.codecs.tracker_xml.requests",
    "ppsp.codecs.tracker_xml.scan",
    "ppsp.codecs.tracker_xml.plain",
    "ppsp.codecs.tracker_xml.templates",
    "ppsp.wire.packed",
)

# What the command line alone (``ppsp --help``, option parsing) may not load.
NOT_FOR_THE_COMMAND_LINE = (
    *NOT_FOR_PEERS,
    "asyncio",
    "cryptography",
    "lxml",
    "orjson",
    "ssl",
    "ppsp.app.commands",
    "ppsp.peer",
    "ppsp.tracker",
    "ppsp.codecs",
    "ppsp.wire",
)

# What the tracker may not load: any peer module, the player, the lab, the peer commands.
NOT_FOR_THE_TRACKER = (
    "ppsp.peer",
    "ppsp.app.commands",
    "ppsp.app.player",
    "ppsp.app.live_commands",
    "ppsp.lab",
    "rich",
    "matplotlib",
    "av",
)


def loaded(names: list[str], forbidden: tuple[str, ...]) -> list[str]:
    """The modules of ``names`` that are, or are inside, a package of ``forbidden``."""
    return sorted(
        name
        for name in names
        if any(name == banned or name.startswith(banned + ".") for banned in forbidden)
    )


def modules_after(code: str) -> list[str]:
    """``sys.modules`` of a fresh interpreter (no terminal) after running ``code``."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    names: list[str] = json.loads(result.stdout.splitlines()[-1])
    return names


def test_the_command_line_loads_click_and_nothing_of_the_commands() -> None:
    names = modules_after("import ppsp.app.cli")
    assert "click" in names
    assert loaded(names, NOT_FOR_THE_COMMAND_LINE) == []


def test_help_of_get_loads_nothing_of_the_peer() -> None:
    names = modules_after(
        """
        import contextlib
        from ppsp.app.cli import main
        with contextlib.suppress(SystemExit):
            main(["get", "--help"])
        """
    )
    assert loaded(names, NOT_FOR_THE_COMMAND_LINE) == []


def test_get_and_seed_load_the_peer_and_nothing_else() -> None:
    # What ``ppsp get SWARM --tracker URL -o FILE`` imports before its event loop starts: the
    # option types' checks, then the implementation the callback imports.
    names = modules_after(
        """
        from ppsp.app.cli.params import SWARM_ID, TRACKER_URL
        SWARM_ID.convert("ab" * 32, None, None)
        TRACKER_URL.convert("http://127.0.0.1:7000", None, None)
        from ppsp.app.commands import PeerOptions, get_main, seed_main, check_output
        from ppsp.process.tuning import tune_allocator, tune_garbage_collector
        """
    )
    assert "ppsp.peer.net.node" in names  # the test looks at the real path
    assert loaded(names, NOT_FOR_PEERS) == []


def test_get_without_a_token_does_not_load_cryptography() -> None:
    names = modules_after("import ppsp.app.commands")
    assert loaded(names, ("cryptography",)) == []


SITECUSTOMIZE = """\
import atexit, os, sys

def _write_modules():
    path = os.path.join(os.environ["PPSP_TEST_MODULES"], sys.argv[1] + ".json")
    with open(path, "w") as out:
        out.write(__import__("json").dumps(sorted(sys.modules)))

if len(sys.argv) > 1:
    atexit.register(_write_modules)
"""


async def test_real_tracker_seed_and_get_load_only_their_layers(tmp_path: Path) -> None:
    # Real processes, the whole code path: serving, the tracker exchange, the transfer, exit.
    hooks, dumps, work = tmp_path / "hooks", tmp_path / "modules", tmp_path / "work"
    for directory in (hooks, dumps, work):
        directory.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    path = os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "PPSP_TEST_MODULES": str(dumps)}
    source = work / "source.bin"
    source.write_bytes(content(200_000))
    async with Swarm(work, env=env) as swarm:
        tracker = await swarm.tracker()
        seeder, swarm_id = await swarm.seed(source)
        getter = await swarm.get(swarm_id, work / "copy.bin", "--log-level", "warning")
        await finish(getter)
        for process in (seeder, tracker):
            process.signal(2)  # SIGINT: a clean exit runs the hook
            assert await process.wait() == 0, process.output()
    assert (work / "copy.bin").read_bytes() == source.read_bytes()
    found = {
        command: json.loads((dumps / f"{command}.json").read_text(encoding="utf-8"))
        for command in ("tracker", "seed", "get")
    }
    assert "ppsp.peer.net.node" in found["get"]
    assert loaded(found["get"], NOT_FOR_PEERS) == []
    assert loaded(found["seed"], NOT_FOR_PEERS) == []
    assert "ppsp.tracker.core" in found["tracker"]
    assert loaded(found["tracker"], NOT_FOR_THE_TRACKER) == []
