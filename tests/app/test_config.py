"""Options from files and the environment: precedence, bad files, logging options.

Precedence is checked for each kind of option (an integer, a choice, a flag, an option given
several times) on a probe group built with the same mechanism as ``ppsp``
(:class:`ConfiguredGroup`, the same ``--config``), and on the real commands where their names
matter (``PPSP_TRACKER_PORT``, ``[peer]``, ``$PPSP_TOKEN``, ``[lab.vod]``).  Each level is
shown to beat the one below it: command line > environment > ``--config`` file > per-user
file > default.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from ppsp.app.cli import main
from ppsp.app.cli.config import (
    CONFIG_ENVVAR,
    ConfiguredGroup,
    remember_group_config,
    schema_of,
    variables,
)
from ppsp.app.cli.logs import configure_logging
from ppsp.peer.upload.connections import MAX_CONNECTIONS_PER_HOST
from ppsp.tracker.limits import DEFAULT_LIMITS

SWARM = "ab" * 32


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No variable ppsp reads, an empty per-user directory, logging restored afterwards."""
    for name in variables(main):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("PPSP_PROBE_")]:
        monkeypatch.delenv(name)
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield home
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if isinstance(handler, logging.FileHandler):
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def user_file(home: Path, text: str) -> Path:
    """Write the per-user file under ``home`` ($XDG_CONFIG_HOME)."""
    path = home / "ppsp" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path``; the path."""
    path.write_text(text, encoding="utf-8")
    return path


# --- the mechanism, on a probe group -------------------------------------------------------


def probe_group(seen: dict[str, Any]) -> click.Group:
    """A group shaped like ``ppsp`` with one command, ``probe``, that records its values."""

    @click.group(cls=ConfiguredGroup)
    @click.option(
        "--config",
        type=click.Path(path_type=Path),
        envvar=CONFIG_ENVVAR,
        expose_value=False,
        is_eager=True,
        callback=remember_group_config,
    )
    def root() -> None:
        """The probe's ``ppsp``."""

    @root.command()
    @click.option("--count", type=click.IntRange(0, 100), default=1)
    @click.option("--mode", type=click.Choice(["fast", "slow"]), default="fast")
    @click.option("--flag/--no-flag", default=False)
    @click.option("--item", "items", multiple=True)
    def probe(**values: Any) -> None:
        """Record what the options resolved to, and the log level logging got."""
        seen.update(values, level=logging.getLogger().level)

    return root


def run_probe(*argv: str) -> dict[str, Any]:
    """Run ``probe`` with ``argv`` (after ``ppsp``); the values it received."""
    seen: dict[str, Any] = {}
    probe_group(seen).main(list(argv), prog_name="ppsp", standalone_mode=False)
    return seen


LEVELS = ["default", "user file", "config file", "environment", "command line"]

# Per kind of option: its key, the value each level gives, the variable, and how the command
# line says it.
KINDS: dict[str, dict[str, Any]] = {
    "integer": {
        "key": "count",
        "name": "count",
        "values": [1, 2, 3, 4, 5],
        "toml": str,
        "env": "PPSP_PROBE_COUNT",
        "env_value": str,
        "argv": lambda v: ["--count", str(v)],
    },
    "choice": {
        "key": "mode",
        "name": "mode",
        "values": ["fast", "slow", "fast", "slow", "fast"],
        "toml": lambda v: f'"{v}"',
        "env": "PPSP_PROBE_MODE",
        "env_value": str,
        "argv": lambda v: ["--mode", v],
    },
    "flag": {
        "key": "flag",
        "name": "flag",
        "values": [False, True, False, True, False],
        "toml": lambda v: "true" if v else "false",
        "env": "PPSP_PROBE_FLAG",
        "env_value": lambda v: "1" if v else "0",
        "argv": lambda v: ["--flag" if v else "--no-flag"],
    },
    "multiple": {
        "key": "item",
        "name": "items",
        "values": [(), ("u",), ("c1", "c2"), ("e1", "e2"), ("a",)],
        "toml": lambda v: "[" + ", ".join(f'"{x}"' for x in v) + "]",
        "env": "PPSP_PROBE_ITEM",
        "env_value": " ".join,
        "argv": lambda v: [arg for x in v for arg in ("--item", x)],
    },
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("top", range(len(LEVELS)))
def test_each_level_beats_the_ones_below_it(
    kind: str, top: int, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every level up to ``top`` giving a value, the value of ``top`` wins."""
    spec = KINDS[kind]
    values: list[Any] = spec["values"]
    line = f"{spec['key']} = {spec['toml'](values[1])}"
    argv: list[str] = []
    if top >= 1:
        user_file(isolated, f"[probe]\n{line}\n")
    if top >= 2:
        config = write(tmp_path / "c.toml", f"[probe]\n{spec['key']} = {spec['toml'](values[2])}\n")
        argv += ["--config", str(config)]
    if top >= 3:
        monkeypatch.setenv(spec["env"], spec["env_value"](values[3]))
    argv.append("probe")
    if top >= 4:
        argv += spec["argv"](values[4])
    assert run_probe(*argv)[spec["name"]] == values[top], LEVELS[top]


def test_a_commands_own_config_replaces_ppsps_and_ppsp_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_env = write(tmp_path / "env.toml", "[probe]\ncount = 7\n")
    group = write(tmp_path / "group.toml", "[probe]\ncount = 8\n")
    own = write(tmp_path / "own.toml", "[probe]\nmode = 'slow'\n")
    monkeypatch.setenv(CONFIG_ENVVAR, str(from_env))
    assert run_probe("probe")["count"] == 7
    assert run_probe("--config", str(group), "probe")["count"] == 8
    seen = run_probe("--config", str(group), "probe", "--config", str(own))
    assert (seen["count"], seen["mode"]) == (1, "slow")  # own.toml alone: count's default


def test_the_config_file_is_layered_over_the_user_file(isolated: Path, tmp_path: Path) -> None:
    user_file(isolated, "[probe]\ncount = 5\nmode = 'slow'\n")
    config = write(tmp_path / "c.toml", "[probe]\ncount = 6\n")
    seen = run_probe("--config", str(config), "probe")
    assert (seen["count"], seen["mode"]) == (6, "slow")


def test_logging_options_come_from_the_top_level_and_the_commands_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "c.toml", 'log-level = "warning"\n')
    assert run_probe("--config", str(config), "probe")["level"] == logging.WARNING
    write(config, 'log-level = "warning"\n[probe]\nlog-level = "error"\n')
    assert run_probe("--config", str(config), "probe")["level"] == logging.ERROR
    monkeypatch.setenv("PPSP_LOG_LEVEL", "debug")
    assert run_probe("--config", str(config), "probe")["level"] == logging.DEBUG
    monkeypatch.setenv("PPSP_PROBE_LOG_LEVEL", "info")  # the command's variable first
    assert run_probe("--config", str(config), "probe")["level"] == logging.INFO
    assert run_probe("probe", "--log-level", "error")["level"] == logging.ERROR


# --- the real commands ---------------------------------------------------------------------


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], dict[str, Any]]:
    """Replace a real command's callback by one that records its values (nothing runs)."""
    commands = dict(_commands_by_path())

    def record(path: str) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        monkeypatch.setattr(commands[path], "callback", lambda **values: seen.update(values))
        return seen

    return record


def _commands_by_path() -> Iterator[tuple[str, click.Command]]:
    from ppsp.app.cli.config import commands

    schema_of(main)  # every command gets its options before any callback is replaced
    for path, command in commands(main):
        yield " ".join(path), command


def run(*argv: str) -> None:
    """Run ``ppsp ARGV`` in this process, errors raised rather than printed."""
    main.main(list(argv), prog_name="ppsp", standalone_mode=False)


def test_the_tracker_reads_its_table_and_its_variables(
    recorded: Callable[[str], dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = recorded("tracker")
    config = write(
        tmp_path / "t.toml",
        "[tracker]\nport = 7100\nmax-version = '1.0'\nlimits = 'off'\n"
        "trusted-proxy = ['10.0.0.0/8', '192.0.2.0/24']\ninit-timeout = 5\n",
    )
    monkeypatch.setenv("PPSP_TRACKER_PORT", "7200")
    monkeypatch.setenv("PPSP_TRACKER_TRUSTED_PROXY", "127.0.0.1/32 ::1/128")
    run("tracker", "--config", str(config), "--limits", "on")
    assert seen["port"] == 7200
    assert seen["max_version"] == "1.0"
    assert seen["limits"] == "on"
    assert seen["trusted_proxies"] == ("127.0.0.1/32", "::1/128")
    assert seen["init_timeout"] == 5.0
    assert seen["max_peers"] == 20  # the default
    # The per-host bounds' defaults are the tracker's own (written as literals in the command
    # line, which imports no tracker module).
    assert seen["peers_per_host"] == DEFAULT_LIMITS.peers_per_host
    assert seen["connections_per_host"] == DEFAULT_LIMITS.connections_per_host
    assert seen["requests_per_host"] == DEFAULT_LIMITS.requests_per_second_per_host
    assert DEFAULT_LIMITS.request_burst_per_host == 2 * DEFAULT_LIMITS.requests_per_second_per_host
    monkeypatch.setenv("PPSP_TRACKER_PEERS_PER_HOST", "1000")
    run("tracker", "--config", str(config), "--connections-per-host", "1000")
    assert (seen["peers_per_host"], seen["connections_per_host"]) == (1000, 1000)


def test_peer_commands_share_the_peer_table_and_variables(
    recorded: Callable[[str], dict[str, Any]],
    isolated: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = recorded("get")
    user_file(isolated, "[peer]\ntracker = 'http://127.0.0.1:7000'\nupload-rate = '1MiB'\n")
    config = write(
        tmp_path / "c.toml",
        "[peer]\ntracker-encoding = 'json'\ndownload-rate = '2MiB'\n"
        "[get]\ndownload-rate = '3MiB'\nseed-after = true\ntimeout = 12\noutput = 'x.bin'\n",
    )
    monkeypatch.setenv("PPSP_PEER_HOST_SHARE", "0.25")
    run("--config", str(config), "get", SWARM)
    assert seen["tracker_url"] == "http://127.0.0.1:7000"  # [peer] of the user's file
    assert seen["upload_rate"] == 1 << 20
    assert seen["tracker_encoding"] == "json"  # [peer] of the --config file
    assert seen["download_rate"] == 3 << 20  # [get] beats [peer] in one file
    assert seen["seed_after"] is True
    assert seen["timeout"] == 12.0
    assert seen["output"] == Path("x.bin")
    assert seen["host_share"] == 0.25
    # The literal default of the command line is the peer's own bound.
    assert seen["connections_per_host"] == MAX_CONNECTIONS_PER_HOST
    monkeypatch.setenv("PPSP_PEER_CONNECTIONS_PER_HOST", "300")
    monkeypatch.setenv("PPSP_GET_HOST_SHARE", "0.75")  # the command's variable first
    monkeypatch.setenv("PPSP_PEER_DOWNLOAD_RATE", "4MiB")  # any variable beats any file
    run("--config", str(config), "get", SWARM, "--force")
    assert seen["host_share"] == 0.75
    assert seen["connections_per_host"] == 300
    assert seen["download_rate"] == 4 << 20
    assert seen["force"] is True


def test_the_token_is_still_read_from_ppsp_token(
    recorded: Callable[[str], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ppsp.tracker.net.auth import issue_token
    from ppsp.tracker.net.client import check_token

    token = _token_for("alice", issue_token)
    seen = recorded("seed")
    monkeypatch.setenv("PPSP_TOKEN", token)
    monkeypatch.setenv("PPSP_PEER_TRACKER", "http://127.0.0.1:7000")
    run("seed", __file__)
    assert seen["token"] == check_token(token)
    other = _token_for("bob", issue_token)
    monkeypatch.setenv("PPSP_SEED_TOKEN", other)  # the systematic name comes first
    run("seed", __file__)
    assert seen["token"] == check_token(other)


def _token_for(peer_id: str, issue: Callable[..., str]) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return issue(Ed25519PrivateKey.generate(), peer_id, swarms=None, ttl=60, now=time.time())


def test_lab_commands_read_their_nested_table(
    recorded: Callable[[str], dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = recorded("lab vod")
    config = write(tmp_path / "c.toml", "[lab.vod]\npeers = 3\ncompare = false\n")
    monkeypatch.setenv("PPSP_LAB_VOD_ATTACK", "tarpit flood")
    run("lab", "vod", "--config", str(config))
    assert (seen["peers"], seen["compare"], seen["attacks"]) == (3, False, ("tarpit", "flood"))


def test_required_options_may_come_from_a_file(
    recorded: Callable[[str], dict[str, Any]], tmp_path: Path
) -> None:
    seen = recorded("token")
    config = write(tmp_path / "c.toml", "[token]\nkey = 'k.pem'\npeer-id = 'alice'\n")
    run("token", "--config", str(config), "--swarm", SWARM)
    assert (seen["key_path"], seen["peer_id"], seen["swarms"]) == (Path("k.pem"), "alice", (SWARM,))


def test_variable_names_are_unique_per_command() -> None:
    """No two options of one command, or of two commands, read the same systematic name."""
    schema = schema_of(main)
    owners: dict[str, set[tuple[str, ...]]] = {}
    for path, table in schema.tables.items():
        if len(path) == 0 or path == ("peer",):
            continue
        names = [_own_variable(setting.option) for setting in table.values()]
        assert len(names) == len(set(names)), path
        for name in names:
            owners.setdefault(name, set()).add(path)
    assert {name: paths for name, paths in owners.items() if len(paths) > 1} == {}


def _own_variable(option: click.Option) -> str:
    """The variable of an option for its command alone (the first of its list)."""
    assert isinstance(option.envvar, list), option.envvar
    return str(option.envvar[0])


def test_peer_commands_are_the_commands_with_a_tracker_url() -> None:
    from ppsp.app.cli.config import PEER_COMMANDS, commands

    with_url = {
        " ".join(path)
        for path, command in commands(main)
        if any(param.name == "tracker_url" for param in command.params)
    }
    assert with_url == set(PEER_COMMANDS)


# --- files and values ppsp cannot use ------------------------------------------------------

BAD_FILES = [
    ("[tracker\nport = 1\n", "Expected ']' at the end of a table declaration (at line 1"),
    ("[tracker]\nport = \n", "Invalid value (at line 2, column 8)"),
    ("[tracker]\nprot = 7000\n", "unknown key 'prot' in [tracker] (did you mean 'port'?)"),
    ("colour = 'blue'\n", "unknown key 'colour'"),
    ("[trakcer]\nport = 1\n", "unknown table [trakcer] (did you mean 'tracker'?)"),
    ("[lab.vdo]\npeers = 1\n", "unknown table [lab.vdo] (did you mean 'vod'?)"),
    ("[peer]\nchunk-size = 1024\n", "unknown key 'chunk-size' in [peer]"),
    ("tracker = 'http://x:1'\n", "tracker must be a table: [tracker] holds the options of"),
    ("[tracker]\nport = '7000'\n", "[tracker] port: expected an integer, not a string"),
    ("[tracker]\nport = 7000.0\n", "[tracker] port: expected an integer, not a float"),
    ("[tracker]\nport = true\n", "[tracker] port: expected an integer, not a boolean"),
    ("[tracker]\ninit-timeout = '5'\n", "init-timeout: expected a number, not a string"),
    ("[tracker]\nlimits = false\n", "[tracker] limits: expected a string, not a boolean"),
    ("[get]\nforce = 'yes'\n", "[get] force: expected a boolean, not a string"),
    ("[tracker]\ntrusted-proxy = '10.0.0.0/8'\n", "expected an array of strings, not a string"),
    ("[tracker]\ntrusted-proxy = [1]\n", "expected an array of strings, with an integer"),
    ("[peer]\nport = 1979-05-27\n", "[peer] port: expected an integer, not a date or time"),
    ("log-level = 3\n", "log-level: expected a string, not an integer"),
    ("[tracker]\n[tracker.port]\n", "[tracker] port: expected an integer, not a table"),
]


@pytest.mark.parametrize(("text", "words"), BAD_FILES)
def test_a_bad_file_is_one_line_and_exit_status_2_before_anything_runs(
    text: str,
    words: str,
    recorded: Callable[[str], dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The whole file is checked, whichever command runs: here ppsp get, which would reach the
    # tracker if its callback ran.
    seen = recorded("get")
    config = write(tmp_path / "bad.toml", text)
    with pytest.raises(SystemExit) as stop:
        main(["get", SWARM, "-o", "x", "--tracker", "http://127.0.0.1:9", "--config", str(config)])
    lines = capsys.readouterr().err.splitlines()
    assert stop.value.code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"ppsp: config {config}: "), lines[0]
    assert words in lines[0]
    assert seen == {}


def test_the_per_user_file_is_checked_too(
    isolated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = user_file(isolated, "[keygen]\nout = 1\n")
    with pytest.raises(SystemExit) as stop:
        main(["keygen", "--out", str(tmp_path / "k")])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error == f"ppsp: config {path}: [keygen] out: expected a string, not an integer\n"
    assert not (tmp_path / "k-private.pem").exists()


@pytest.mark.parametrize("problem", ["missing", "directory", "not utf-8"])
def test_a_config_file_that_cannot_be_read(
    problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    if problem == "directory":
        path.mkdir()
    elif problem == "not utf-8":
        path.write_bytes(b"name = '\xff'\n")
    words = {"missing": "No such file", "directory": "directory", "not utf-8": "not UTF-8"}
    with pytest.raises(SystemExit) as stop:
        main(["--config", str(path), "keygen", "--out", str(tmp_path / "k")])
    line = capsys.readouterr().err
    assert stop.value.code == 2
    assert line.startswith(f"ppsp: config {path}: ") and words[problem] in line, line
    assert line.count("\n") == 1


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (
            "[tracker]\nport = 70000\n",
            {},
            "ppsp: config {config}: [tracker] port: 70000 is not in the range 0<=x<=65535.",
        ),
        (
            "[tracker]\nstorage = 'mongodb://x'\n",
            {},
            "ppsp: config {config}: [tracker] storage: ",
        ),
        ("", {"PPSP_TRACKER_PORT": "99999"}, "ppsp: $PPSP_TRACKER_PORT: 99999 is not in the"),
        ("", {"PPSP_TRACKER_LIMITS": "maybe"}, "ppsp: $PPSP_TRACKER_LIMITS: 'maybe' is not one"),
        (
            "log-file = '/nonexistent/dir/ppsp.log'\n",
            {},
            "ppsp: config {config}: log-file: cannot write /nonexistent/dir/ppsp.log: No such",
        ),
    ],
)
def test_a_bad_value_names_the_file_or_variable_it_came_from(
    text: str,
    env: dict[str, str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write(tmp_path / "c.toml", text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Should the tracker get as far as listening, it fails at once on an address not here.
    monkeypatch.setenv("PPSP_TRACKER_HOST", "192.0.2.1")
    with pytest.raises(SystemExit) as stop:
        main(["tracker", "--config", str(config)])
    lines = capsys.readouterr().err.splitlines()
    assert stop.value.code == 2
    assert len(lines) == 1 and lines[0].startswith(expected.format(config=config)), lines


def test_a_token_from_a_variable_is_named_in_its_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PPSP_GET_TOKEN", "not-a-jwt")
    with pytest.raises(SystemExit) as stop:
        main(["get", SWARM, "-o", "x", "--tracker", "https://127.0.0.1:9"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("ppsp: $PPSP_GET_TOKEN: the token is not a JWT")


# --- the logs ------------------------------------------------------------------------------


def test_json_log_lines_have_time_level_logger_message(tmp_path: Path) -> None:
    path = tmp_path / "ppsp.log"
    configure_logging("info", file=path, fmt="json")
    log = logging.getLogger("ppsp.test")
    log.debug("left out")
    log.info("hello %s", "world")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("it failed")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["message"] for r in records] == ["hello world", "it failed"]
    first = records[0]
    assert first["level"] == "info" and first["logger"] == "ppsp.test"
    assert first["pid"] == os.getpid()
    assert first["time"].endswith("Z") and first["time"][10] == "T"
    assert "ValueError: boom" in records[1]["exception"]
    assert records[1]["level"] == "error"


def test_a_command_appends_its_log_to_the_file_in_text_or_json(tmp_path: Path) -> None:
    path = tmp_path / "probe.log"
    path.write_text("earlier line\n", encoding="utf-8")

    @click.group(cls=ConfiguredGroup)
    def root() -> None:
        """The probe's ``ppsp``."""

    @root.command()
    def probe() -> None:
        """Log one line."""
        logging.getLogger("ppsp.probe").warning("from the probe")

    for fmt in ("text", "json"):
        root.main(
            ["probe", "--log-file", str(path), "--log-format", fmt],
            prog_name="ppsp",
            standalone_mode=False,
        )
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "earlier line"
    assert lines[1].endswith(" WARNING ppsp.probe: from the probe")
    assert json.loads(lines[2])["message"] == "from the probe"
    assert len(lines) == 3


def test_the_peer_options_bound_the_nodes_connections_per_host() -> None:
    from ppsp.app.commands import PeerOptions

    node = PeerOptions(tracker_url="http://127.0.0.1:9/", connections_per_host=300).node()
    assert node.guard.budget.per_host == 300
    assert PeerOptions(tracker_url="http://127.0.0.1:9/").node().guard.budget.per_host == (
        MAX_CONNECTIONS_PER_HOST
    )
