"""Bad values on the command line: one line on stderr, exit status 2, before any network.

Every case names a tracker at a port where a silent server listens, so a command that went to
the network before refusing would hang there instead of exiting at once.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.cli_runner import run_lines
from e2e.swarm_helpers import run_ppsp

SWARM = "ab" * 32


@pytest.fixture(scope="module")
def tracker_url() -> Iterator[str]:
    """A URL whose server accepts connections and never answers (in a thread of its own)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def assert_usage_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ppsp: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def make_files(directory: Path) -> dict[str, Path]:
    """The files the cases name, in ``directory``."""
    movie = directory / "movie.bin"
    movie.write_bytes(b"x" * 1000)
    empty = directory / "empty.bin"
    empty.write_bytes(b"")
    fifo = directory / "fifo"
    os.mkfifo(fifo)
    existing = directory / "existing.bin"
    existing.write_bytes(b"complete")
    return {"movie": movie, "empty": empty, "fifo": fifo, "existing": existing, "dir": directory}


CASES = {
    "seed port negative": (["seed", "{movie}", "--port", "-5"], ["--port"]),
    "seed port too large": (["seed", "{movie}", "--port", "65536"], ["--port"]),
    "watch player port": (["watch", SWARM, "--player-port", "70000"], ["--player-port"]),
    "get timeout negative": (["get", SWARM, "-o", "{dir}/o", "--timeout", "-1"], ["--timeout"]),
    "watch timeout zero": (["watch", SWARM, "--timeout", "0"], ["--timeout"]),
    "chunk size too large": (["seed", "{movie}", "--chunk-size", "16777217"], ["--chunk-size"]),
    "chunk size too small": (["seed", "{movie}", "--chunk-size", "1"], ["--chunk-size"]),
    "swarm ID malformed": (["get", "abc", "-o", "{dir}/o"], ["not a swarm ID"]),
    "swarm ID upper case": (["watch", SWARM.upper()], ["lower case", SWARM]),
    "seed a directory": (["seed", "{dir}"], ["directory"]),
    "seed a named pipe": (["seed", "{fifo}"], ["named pipe"]),
    "seed a device": (["seed", "/dev/zero"], ["not a regular file"]),
    "seed an empty file": (["seed", "{empty}"], ["empty"]),
    "seed a missing file": (["seed", "{dir}/missing"], ["No such file"]),
    "get over an existing file": (["get", SWARM, "-o", "{existing}"], ["--force"]),
    "get into a directory": (["get", SWARM, "-o", "{dir}"], ["directory"]),
    "watch over an existing file": (["watch", SWARM, "-o", "{existing}"], ["--force"]),
    "advertise a wildcard": (["seed", "{movie}", "--advertise", "0.0.0.0"], ["wildcard"]),
    "advertise a name": (["seed", "{movie}", "--advertise", "example.org"], ["IP address"]),
    "advertise a bad port": (["seed", "{movie}", "--advertise", "10.0.0.1:0"], ["port"]),
    "demo leechers negative": (["demo", "--leechers", "-1"], ["--leechers"]),
    "report in a missing directory": (
        ["seed", "{movie}", "--report", "{dir}/missing/r.json"],
        ["--report", "no directory"],
    ),
    "report to standard output": (["get", SWARM, "-o", "{dir}/o", "--report", "-"], ["'-'"]),
    "lab chunk size": (["lab", "vod", "--chunk-size", "5"], ["--chunk-size"]),
    "lab PPSPP chunk size without NAT": (
        ["lab", "vod", "--ppspp-chunk-size", "32768"],
        ["--ppspp-chunk-size", "--nat"],
    ),
    "tracker port": (["tracker", "--port", "99999"], ["--port"]),
    "live chunk-ms zero": (["live", "--chunk-ms", "0"], ["--chunk-ms"]),
    "live window zero": (["live", "--window", "0"], ["--window"]),
    "ca file missing": (["get", SWARM, "-o", "{dir}/o", "--ca-file", "{dir}/no.pem"], ["no.pem"]),
    "ca file not PEM": (["seed", "{movie}", "--ca-file", "{movie}"], ["no usable PEM"]),
    "token not a JWT": (["watch", SWARM, "--token", "abc"], ["--token", "not a JWT"]),
    "token with spaces": (["live", "--token", "a b"], ["--token", "characters"]),
    "tracker cert without key": (["tracker", "--tls-cert", "{movie}"], ["--tls-key"]),
    "tracker key without cert": (["tracker", "--tls-key", "{movie}"], ["--tls-cert"]),
    "tracker cert not PEM": (
        ["tracker", "--tls-cert", "{movie}", "--tls-key", "{movie}"],
        ["--tls-cert", "not a PEM file"],
    ),
    "tracker auth key missing": (["tracker", "--auth-key", "{dir}/no.pem"], ["--auth-key"]),
    "tracker auth key not PEM": (["tracker", "--auth-key", "{movie}"], ["--auth-key", "PEM"]),
    "tracker limits": (["tracker", "--limits", "maybe"], ["--limits"]),
    "tracker proxy": (["tracker", "--trusted-proxy", "10.0.0.1/8"], ["--trusted-proxy"]),
    "token key missing": (["token", "--key", "{dir}/no.pem", "--peer-id", "p"], ["--key"]),
    "token peer ID": (["token", "--key", "{movie}", "--peer-id", "a b"], ["--peer-id"]),
    "token swarm": (["token", "--key", "{movie}", "--peer-id", "p", "--swarm", "nil"], ["--swarm"]),
    "token ttl": (["token", "--key", "{movie}", "--peer-id", "p", "--ttl", "0"], ["--ttl"]),
    "keygen missing directory": (["keygen", "--out", "{dir}/missing/k"], ["--out"]),
}


URLS = ["localhost:7000", "http://", "ftp://example.org/", "127.0.0.1", "http://[::1"]
"""Tracker URLs without a scheme or a host."""

Ran = dict[str, tuple[subprocess.CompletedProcess[str], dict[str, Path]]]


@pytest.fixture(scope="module")
def usage_errors(tmp_path_factory: pytest.TempPathFactory, tracker_url: str) -> Ran:
    """Every case of :data:`CASES` and :data:`URLS`, each in a directory of its own with its
    own files, run by one child process (:func:`~e2e.cli_runner.run_lines`)."""
    cases = []
    for case, (args, _) in sorted(CASES.items()):
        files = make_files(tmp_path_factory.mktemp("case"))
        argv = [arg.format(**{k: str(v) for k, v in files.items()}) for arg in args]
        if argv[0] in ("seed", "get", "watch", "live"):
            argv += ["--tracker", tracker_url]
        cases.append((case, argv, files))
    for url in URLS:
        directory = tmp_path_factory.mktemp("url")
        argv = ["get", SWARM, "-o", str(directory / "o"), "--tracker", url]
        cases.append((url, argv, {"dir": directory}))
    results = run_lines(
        [(argv, files["dir"], {}) for _, argv, files in cases],
        env={**os.environ, "COLUMNS": "200"},
    )
    return {case: (result, files) for (case, _, files), result in zip(cases, results, strict=True)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_value_is_one_line_usage_error(case: str, usage_errors: Ran) -> None:
    result, files = usage_errors[case]
    assert_usage_error(result, *CASES[case][1])
    assert files["existing"].read_bytes() == b"complete"


@pytest.mark.parametrize("url", URLS)
def test_tracker_url_without_scheme_or_host_is_refused_at_once(url: str, usage_errors: Ran) -> None:
    assert_usage_error(usage_errors[url][0])


def test_unreachable_tracker_reads_as_a_sentence(tmp_path: Path) -> None:
    from e2e.swarm_helpers import closed_port

    port = closed_port()
    result = run_ppsp(
        "get", SWARM, "-o", str(tmp_path / "o"), "--tracker", f"http://127.0.0.1:{port}",
        "--timeout", "5", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ppsp: "), lines[0]
    assert f"127.0.0.1:{port}" in lines[0] and "refused" in lines[0], lines[0]
    for internal in ("ClientConnectorError", "ConnectionKey", "Error(", "errno"):
        assert internal not in lines[0], lines[0]
