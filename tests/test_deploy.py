"""The deployment files (deploy/) are what the tools that read them accept, and what the docs show.

- systemd's own checker (``systemd-analyze verify``) passes every unit without a warning, with
  ExecStart pointed at this environment's ``ppsp`` (the units name ``/opt/ppsp/bin/ppsp``,
  where docs/OPERATIONS.md installs it), and ``systemd-analyze security`` rates each unit's
  exposure "OK" (2.0 or less out of 10);
- every option a unit passes to ``ppsp`` is one the command has;
- the sysusers file makes the user the units run as, and the configuration files the units
  read (deploy/config/) configure real processes: a tracker trusting its proxy, a seeder with
  its chunk size, a live source;
- the Containerfile installs the package from its sources on ``python:3.11-slim``, and a
  non-editable install (what the image holds) gets every file of the package, not only its
  Python modules;
- docs/OPERATIONS.md quotes the tracker's unit and the nginx configuration exactly.

Where systemd's tools are missing, their tests are skipped on a developer's machine and fail in
CI (``CI`` set).  The image itself is built only on request (``PPSP_BUILD_IMAGE=1`` and a running
Docker daemon): it downloads the dependencies.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from e2e.swarm_helpers import Swarm
from e2e.tracker_probe import probe

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
INSTALLED = "/opt/ppsp/bin/ppsp"
"""Where the units expect the ppsp command (docs/OPERATIONS.md installs it there)."""
PPSP = Path(sys.executable).with_name("ppsp")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def need(tool: str | None, name: str, package: str) -> str:
    """``tool``'s path; skip (fail in CI) when it is missing."""
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: install {package}")
        pytest.skip(f"{name} is missing (apt-get install {package})")
    return tool


def instance(unit: Path) -> str:
    """The unit's file name, with an instance name for a template (``ppsp-seed@test.service``)."""
    return unit.name.replace("@.", "@test.")


def local_copy(unit: Path, directory: Path) -> Path:
    """A copy of ``unit`` whose commands point at this environment's ppsp."""
    text = unit.read_text(encoding="utf-8")
    assert INSTALLED in text, f"{unit.name} does not run {INSTALLED}"
    copy = directory / unit.name
    copy.write_text(text.replace(INSTALLED, str(PPSP)), encoding="utf-8")
    return directory / instance(unit)


def exec_start(unit: Path) -> list[str]:
    """The words of the unit's ExecStart line (systemd's quoting is the shell's here)."""
    lines = [
        line.split("=", 1)[1]
        for line in unit.read_text(encoding="utf-8").splitlines()
        if line.startswith("ExecStart=")
    ]
    assert len(lines) == 1, unit.name
    return shlex.split(lines[0])


def test_there_is_a_unit_for_the_tracker_a_seeder_and_a_live_source() -> None:
    commands = {exec_start(unit)[1] for unit in UNITS}
    assert commands == {"tracker", "seed", "live"}, [u.name for u in UNITS]


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_systemd_accepts_the_unit(unit: Path, tmp_path: Path) -> None:
    tool = need(SYSTEMD_ANALYZE, "systemd-analyze", "systemd")
    copy = local_copy(unit, tmp_path)
    result = subprocess.run([tool, "verify", str(copy)], capture_output=True, text=True, timeout=60)
    # verify exits 0 on unknown keys and bad values too: its warnings are the finding.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_the_unit_is_hardened(unit: Path, tmp_path: Path) -> None:
    tool = need(SYSTEMD_ANALYZE, "systemd-analyze", "systemd")
    copy = local_copy(unit, tmp_path)
    # --threshold is on systemd's internal scale, ten times the one it prints: 20 is "2.0".
    result = subprocess.run(
        [tool, "security", "--offline=true", "--threshold=20", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert level is not None and float(level.group(1)) <= 2.0, result.stdout


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_the_unit_passes_only_options_the_command_has(unit: Path) -> None:
    words = exec_start(unit)
    assert words[0] == INSTALLED
    command = words[1]
    result = subprocess.run(
        [sys.executable, "-m", "ppsp", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    for word in words[2:]:
        if word.startswith("--"):
            assert re.search(rf"(^|[\s,]){re.escape(word)}\b", result.stdout), (word, unit.name)


def test_sysusers_makes_the_units_user(tmp_path: Path) -> None:
    tool = need(shutil.which("systemd-sysusers"), "systemd-sysusers", "systemd")
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        [tool, f"--root={tmp_path}", str(DEPLOY / "systemd" / "ppsp.sysusers.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text(encoding="utf-8")
    assert re.search(r"^ppsp:x:\d+:\d+:[^:]*:/var/lib/ppsp:", passwd, re.MULTILINE), passwd
    users = {
        line.split("=", 1)[1]
        for unit in UNITS
        for line in unit.read_text(encoding="utf-8").splitlines()
        if line.startswith(("User=", "Group="))
    }
    assert users == {"ppsp"}


async def test_the_configuration_files_configure_the_commands(tmp_path: Path) -> None:
    """deploy/config/*.toml as the units use them (host, port and tracker URL replaced on the
    command line, which beats the file)."""
    config = DEPLOY / "config"
    (tmp_path / "movie.bin").write_bytes(os.urandom(3 << 20))
    async with Swarm(tmp_path) as swarm:
        # The file's trusted proxy (127.0.0.1/32) names the client; the port is the test's.
        await swarm.tracker("--config", str(config / "tracker.toml"))
        local = ("--tracker", swarm.tracker_url, "--host", "127.0.0.2")
        seeder = await swarm.spawn(
            "seeder", "seed", "--config", str(config / "peer.toml"), *local,
            str(tmp_path / "movie.bin"),
        )  # fmt: skip
        swarm_id = await seeder.first_stdout_line()
        # The [seed] table's chunk size (1 MiB), not the default for 3 MiB (256 KiB).
        await seeder.wait_line(r"^seeding .* in 3 chunks of 1 MiB")
        seen = await probe(swarm.tracker_url, swarm_id, headers={"X-Forwarded-For": "192.0.2.9"})
        assert seen.requester == "192.0.2.9", seen  # from 127.0.0.1: trusted by the file
        seeder.signal(signal.SIGINT)
        assert await seeder.wait() == 0, seeder.output()
        # A live source of an input that ends at once: it starts, ends the stream and exits 0.
        live = await swarm.spawn(
            "live", "live", "--config", str(config / "peer.toml"), *local,
            "--input", "/dev/null", "--key", str(tmp_path / "live.key"),
        )  # fmt: skip
        assert await live.wait() == 0, live.output()
        assert any("live source stopped" in line for line in live.stderr), live.output()


def containerfile_lines() -> list[str]:
    """The Containerfile's instructions, continuation lines joined, comments left out."""
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_the_containerfile_installs_the_package_on_python_slim() -> None:
    lines = containerfile_lines()
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases and all(base == "python:3.11-slim" for base in bases), bases
    copies = [
        line.split()[1:-1] for line in lines if line.startswith("COPY ") and "--from" not in line
    ]
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), source
    # The package from the copied sources (``pip install ... .``), not from an index.
    assert any(re.search(r"pip install .*\s\.(\s|$)", line) for line in lines), lines
    assert any(re.fullmatch(r"USER (?!root\b|0\b)\S+", line) for line in lines), lines
    assert 'ENTRYPOINT ["ppsp"]' in lines


def test_a_plain_install_gets_every_file_of_the_package() -> None:
    """What ``pip install .`` (the image's install) copies beside the modules: the files that
    ``[tool.setuptools.package-data]`` names; an editable install would hide a missing one."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns: dict[str, list[str]] = config["tool"]["setuptools"].get("package-data", {})
    source = ROOT / "src"
    included: set[Path] = set()
    for directory in (source / "ppsp").rglob("*"):
        if not directory.is_dir() or directory.name == "__pycache__":
            continue
        package = ".".join(directory.relative_to(source).parts)
        for pattern in [*patterns.get(package, []), *patterns.get("*", [])]:
            matches = glob.glob(str(directory / pattern), recursive=True)
            included.update(Path(match) for match in matches)
    for pattern in patterns.get("ppsp", []):
        included.update(Path(m) for m in glob.glob(str(source / "ppsp" / pattern), recursive=True))
    missing = [
        str(path.relative_to(source))
        for path in sorted((source / "ppsp").rglob("*"))
        if path.is_file()
        and path.suffix not in {".py", ".pyc"}
        and "__pycache__" not in path.parts
        and path not in included
    ]
    assert not missing, f"not installed by pip install . (pyproject.toml package-data): {missing}"


def test_operations_quotes_the_deployment_files() -> None:
    doc = (ROOT / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```$", doc, re.MULTILINE | re.DOTALL)
    for path in (
        DEPLOY / "nginx" / "ppsp-tracker.conf",
        DEPLOY / "systemd" / "ppsp-tracker.service",
    ):
        assert path.read_text(encoding="utf-8") in blocks, f"OPERATIONS.md does not quote {path}"


def test_the_image_builds_and_runs(tmp_path: Path) -> None:
    if os.environ.get("PPSP_BUILD_IMAGE") != "1":
        pytest.skip("set PPSP_BUILD_IMAGE=1 to build the image (downloads its dependencies)")
    docker = shutil.which("docker") or shutil.which("podman")
    if docker is None or subprocess.run([docker, "info"], capture_output=True).returncode:
        pytest.skip("no container engine running")
    tag = f"ppsp-test:{os.getpid()}"
    build = subprocess.run(
        [docker, "build", "-f", str(DEPLOY / "Containerfile"), "-t", tag, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    try:
        run = subprocess.run(
            [docker, "run", "--rm", tag, "tracker", "--help"], capture_output=True, text=True
        )
        assert run.returncode == 0 and "--trusted-proxy" in run.stdout, run.stderr
    finally:
        subprocess.run([docker, "rmi", "-f", tag], capture_output=True)
