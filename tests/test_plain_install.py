"""A plain install (``pip install -e .``, no extras) imports every module and runs every command.

The test environment has the extras installed, so a plain install is imitated: a child process
blocks every top-level module that only the project's optional dependencies bring (matplotlib,
PyAV, pytest, ...), then imports each ``ppsp`` module and calls the commands.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.\-]+", requirement)
    assert match is not None, requirement
    return match.group(0).lower().replace("_", "-")


def extra_only_modules() -> set[str]:
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
    return modules


CHILD = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    # A None entry in sys.modules is how Python marks a module as absent: importing it raises
    # ModuleNotFoundError and importlib.util.find_spec answers None, as on a plain install.
    for name in sys.argv[1].split(","):
        sys.modules[name] = None

    import ppsp
    for info in pkgutil.walk_packages(ppsp.__path__, "ppsp."):
        if info.name != "ppsp.__main__":  # runs the command line when imported
            importlib.import_module(info.name)
    from ppsp.app.cli import main
    sys.argv = ["ppsp", *sys.argv[2:]]
    main()
    """
)


def run_plain(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``ppsp ARGS`` as on a plain install."""
    blocked = ",".join(sorted(extra_only_modules()))
    return subprocess.run(
        [sys.executable, "-c", CHILD, blocked, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_extras_are_known() -> None:
    # The imitation is only as good as its list: the lab's modules must be on it.
    modules = extra_only_modules()
    assert {"matplotlib", "av", "pytest", "hypothesis"} <= modules


def test_every_module_imports_and_help_works(tmp_path: Path) -> None:
    result = run_plain("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("tracker", "seed", "get", "watch", "live", "demo", "lab"):
        result = run_plain(command, "--help", cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
    for command in ("vod", "live"):
        result = run_plain("lab", command, "--help", cwd=tmp_path)
        assert result.returncode == 0, (command, result.stderr)


def test_lab_without_its_extra_is_one_line(tmp_path: Path) -> None:
    for command in ("vod", "live"):
        result = run_plain("lab", command, "--out", str(tmp_path / command), cwd=tmp_path)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "pip install 'ppsp[lab]'" in lines[0]
        assert not (tmp_path / command).exists()
