"""A plain install (``pip install -e .``, no extras) imports every module and runs every command.

The test environment has the extras installed, so a plain install is imitated: a child process
blocks every top-level module that only the project's optional dependencies bring (matplotlib,
PyAV, pytest, ...), then imports each ``ppsp`` module and calls the commands.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.\-]+", requirement)
    assert match is not None, requirement
    return match.group(0).lower().replace("_", "-")


@cache
def extra_only_modules() -> frozenset[str]:
    """Top-level modules that only the optional dependencies provide."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    required = {_requirement_name(r) for r in project["dependencies"]}
    extras = {
        _requirement_name(r)
        for group in project["optional-dependencies"].values()
        for r in group
        if _requirement_name(r) != project["name"]
    }
    only_extra = extras - required
    modules = set()
    for module, dists in packages_distributions().items():
        names = {d.lower().replace("_", "-") for d in dists}
        if names & only_extra and not names & required:
            modules.add(module)
    return frozenset(modules)


CHILD = textwrap.dedent(
    """
    import contextlib, importlib, io, json, pkgutil, sys

    # A None entry in sys.modules is how Python marks a module as absent: importing it raises
    # ModuleNotFoundError and importlib.util.find_spec answers None, as on a plain install.
    for name in sys.argv[1].split(","):
        sys.modules[name] = None

    import ppsp
    for info in pkgutil.walk_packages(ppsp.__path__, "ppsp."):
        if info.name != "ppsp.__main__":  # runs the command line when imported
            importlib.import_module(info.name)
    from ppsp.app.cli import main

    # Every module is imported above, so one process serves every command line: each is run
    # as ``ppsp ARGS`` would run it, its exit status and output kept apart.
    results = []
    for args in json.loads(sys.argv[2]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(args, prog_name="ppsp")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
    print(json.dumps(results))
    """
)


@dataclass(frozen=True)
class Outcome:
    """What one ``ppsp ARGS`` did on the imitated plain install."""

    returncode: int
    stdout: str
    stderr: str


def run_plain(commands: list[list[str]], cwd: Path) -> list[Outcome]:
    """Run each ``ppsp ARGS`` of ``commands`` as on a plain install (one child process)."""
    blocked = ",".join(sorted(extra_only_modules()))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, blocked, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    return [Outcome(r["code"], r["stdout"], r["stderr"]) for r in json.loads(done.stdout)]


HELPS = [
    ["--help"],
    *[[c, "--help"] for c in ("tracker", "seed", "get", "watch", "live", "demo", "lab")],
    *[["lab", c, "--help"] for c in ("vod", "live")],
]
"""The help of the group, of every command and of every lab command."""

LABS = ("vod", "live")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Outcome]]:
    """Every command line of the tests below, run once in one imitated plain install."""
    tmp_path = tmp_path_factory.mktemp("plain")
    labs = [["lab", c, "--out", str(tmp_path / c)] for c in LABS]
    return tmp_path, run_plain([*HELPS, *labs], cwd=tmp_path)


def test_extras_are_known() -> None:
    # The imitation is only as good as its list: the lab's modules must be on it.
    modules = extra_only_modules()
    assert {"matplotlib", "av", "pytest", "hypothesis"} <= modules


def test_every_module_imports_and_help_works(plain: tuple[Path, list[Outcome]]) -> None:
    _, outcomes = plain
    for args, result in zip(HELPS, outcomes[: len(HELPS)], strict=True):
        assert result.returncode == 0, (args, result.stderr)
        assert "Usage: ppsp" in result.stdout, (args, result.stdout)


def test_lab_without_its_extra_is_one_line(plain: tuple[Path, list[Outcome]]) -> None:
    tmp_path, outcomes = plain
    for command, result in zip(LABS, outcomes[len(HELPS) :], strict=True):
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "pip install 'ppsp[lab]'" in lines[0]
        assert not (tmp_path / command).exists()
