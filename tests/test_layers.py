"""The import contract of the layers (each package's docstring states its part of it).

Sans-I/O packages (``wire``, ``codecs``, ``core``, ``tracker`` without ``tracker.net``,
``peer.protocol``, ``peer.content``, ``peer.download``, ``peer.live``, ``peer.upload``) import
no I/O library, read no clock, and import nothing of the I/O or application layers; I/O layers
never import the application (the command line, which starts the lab, may import it).  Checked
twice: statically, on every module's import statements and calls, and at run time, by importing each
sans-I/O module in a fresh interpreter where the I/O modules cannot be imported at all (which
also catches an I/O module reached through a third-party library).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "ppsp"

IO_MODULES = frozenset(
    {
        "asyncio",
        "aiohttp",
        "socket",
        "ssl",
        "selectors",
        "threading",
        "concurrent",
        "multiprocessing",
        "subprocess",
        "signal",
        "redis",
        "uvloop",
    }
)
"""What a sans-I/O module may not import."""

EXCEPTIONS = {
    ("ppsp.codecs.safexml", "threading"): "one parser per thread (lxml's are not shareable); "
    "it starts no thread and waits on nothing",
}
"""Imports of IO_MODULES a sans-I/O module may make, each with its reason."""

RUNTIME_BLOCKED = IO_MODULES - {"threading"}
"""Blocked in the run-time check (``logging`` and ``random`` import threading themselves)."""

CLOCK_CALLS = frozenset({("time", "time"), ("time", "monotonic"), ("time", "perf_counter")})
"""Clock reads a sans-I/O module may not make (time is passed in)."""

SANS_IO = (
    "ppsp.wire",
    "ppsp.codecs",
    "ppsp.core",
    "ppsp.tracker",
    "ppsp.peer.protocol",
    "ppsp.peer.content",
    "ppsp.peer.download",
    "ppsp.peer.live",
    "ppsp.peer.upload",
    "ppsp.peer.nat",
    "ppsp.peer.ppspp",
)

RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # (package, ppsp packages it may import besides itself and ppsp.errors); first match wins
    ("ppsp.tracker.net", ("*", "-ppsp.peer", "-ppsp.app", "-ppsp.lab")),
    ("ppsp.peer.net", ("*", "-ppsp.app", "-ppsp.lab")),
    ("ppsp.http", ("ppsp.wire", "ppsp.codecs", "ppsp.core")),
    ("ppsp.wire", ()),
    ("ppsp.codecs", ("ppsp.wire",)),
    ("ppsp.core", ("ppsp.wire",)),
    ("ppsp.tracker", ("ppsp.wire", "ppsp.codecs", "ppsp.core", "-ppsp.tracker.net")),
    (
        "ppsp.peer",
        ("ppsp.wire", "ppsp.codecs", "ppsp.core", "-ppsp.peer.net"),
    ),
    ("ppsp.process", ()),
    ("ppsp.app", ("*",)),  # the command line starts the lab too
    ("ppsp.lab", ("*",)),
    ("ppsp", ("*",)),
)


def modules() -> list[tuple[str, Path]]:
    """Every module of the package: (dotted name, path)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def rule_of(name: str) -> tuple[str, tuple[str, ...]]:
    for package, allowed in RULES:
        if within(name, package):
            return package, allowed
    raise AssertionError(f"no layer for {name}")


def is_sans_io(name: str) -> bool:
    return any(within(name, p) for p in SANS_IO) and not within(name, "ppsp.tracker.net")


def imported(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every import, relative ones resolved against ``module``."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level] if node.level else []
                base = ".".join([*parent, base]) if base else ".".join(parent)
            names.append((node.lineno, base))
            # "from ppsp.x import y" may name a module y
            names += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return names


def allowed_import(name: str, target: str, allowed: tuple[str, ...]) -> bool:
    if not target.startswith("ppsp"):
        return True
    own_package = rule_of(name)[0]
    if within(target, own_package) or within(target, "ppsp.errors"):
        excluded = [a[1:] for a in allowed if a.startswith("-")]
        return not any(within(target, e) for e in excluded)
    excluded = [a[1:] for a in allowed if a.startswith("-")]
    if any(within(target, e) for e in excluded):
        return False
    if "*" in allowed:
        return True
    if target in ("ppsp", "ppsp.__version__"):
        return True
    return any(within(target, a) for a in allowed if not a.startswith("-"))


@pytest.mark.parametrize(("name", "path"), modules(), ids=[n for n, _ in modules()])
def test_module_keeps_to_its_layer(name: str, path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    _, allowed = rule_of(name)
    problems = []
    for line, target in imported(tree, name):
        top = target.split(".")[0]
        if is_sans_io(name) and top in IO_MODULES and (name, top) not in EXCEPTIONS:
            problems.append(f"line {line}: sans-I/O module imports {target}")
        if not allowed_import(name, target, allowed):
            problems.append(f"line {line}: {name} may not import {target}")
    if is_sans_io(name):
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and (node.func.value.id, node.func.attr) in CLOCK_CALLS
            ):
                problems.append(f"line {node.lineno}: sans-I/O module reads the clock")
    assert not problems, "\n".join(problems)


def test_sans_io_modules_import_without_any_io_module() -> None:
    names = [name for name, _ in modules() if is_sans_io(name)]
    child = textwrap.dedent(
        """
        import importlib, sys
        for blocked in sys.argv[1].split(","):
            sys.modules[blocked] = None  # importing it now raises ModuleNotFoundError
        for name in sys.argv[2].split(","):
            importlib.import_module(name)
        print("ok")
        """
    )
    blocked = ",".join(sorted(RUNTIME_BLOCKED))
    result = subprocess.run(
        [sys.executable, "-c", child, blocked, ",".join(names)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_each_sans_io_module_imports_first_in_a_fresh_interpreter() -> None:
    """No import cycle depends on which module a program imports first: each sans-I/O module
    is imported before any other module of the package (in a forked child of an interpreter
    that holds only the libraries, so that each costs its own modules only)."""
    names = [name for name, _ in modules() if is_sans_io(name)]
    child = textwrap.dedent(
        """
        import importlib, os, sys, traceback
        for library in ("dataclasses", "enum", "ipaddress", "re", "struct", "typing",
                        "lxml.etree", "orjson"):
            importlib.import_module(library)
        failed = []
        for name in sys.argv[1].split(","):
            pid = os.fork()
            if pid == 0:
                try:
                    importlib.import_module(name)
                except BaseException:
                    traceback.print_exc(limit=-3)
                    os._exit(1)
                os._exit(0)
            if os.waitpid(pid, 0)[1] != 0:
                failed.append(name)
        print("failed:", ",".join(failed))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", child, ",".join(names)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.strip() == "failed:", (
        result.stdout + result.stderr[-3000:]
    )


def test_every_package_states_its_layer() -> None:
    for init in sorted(PACKAGE.rglob("__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert "Layer" in docstring or init.parent.name in ("ppsp", "lab", "live", "storage"), (
            f"{init.relative_to(SRC)} does not say what its layer may import"
        )


def test_the_lean_http_layer_never_imports_aiohttp() -> None:
    # ppsp.http exists so that peer commands start without aiohttp's import.
    for name, path in modules():
        if within(name, "ppsp.http"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for line, dotted in imported(tree, name):
                assert not within(dotted, "aiohttp"), f"{name}:{line} imports {dotted}"
