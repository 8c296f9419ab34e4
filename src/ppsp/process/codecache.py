"""Compiled code of the methods ``dataclasses`` writes, kept between runs like ``.pyc`` files.

On Python 3.11 the ``@dataclass`` decorator writes each class's ``__init__``, ``__repr__``,
``__eq__``, ``__setattr__`` ... as source text and compiles it with ``exec`` while the module
is imported: about 400 functions for ``ppsp get``, 70 microseconds of compiling each, a fifth
of the command's start-up.  The text is the same on every run, and compiling the same text
gives the same code, so the code objects are kept in a file (``marshal``, as ``.pyc`` files
keep module code) and reused: :func:`install` gives the ``dataclasses`` module an ``exec`` of
its own that looks the text up before compiling it.  What runs is exactly what would have run;
only the compiling is skipped.

The file lives in the user's cache directory (``$XDG_CACHE_HOME/ppsp``, else
``~/.cache/ppsp``), one per Python version and bytecode format; it is written at exit when new
code was compiled, atomically, and never grows past :data:`MAX_ENTRIES`.  An unreadable,
corrupt or foreign file is ignored, and nothing here ever fails a command: without a
writable cache directory, dataclasses compile as they always do.

Layer: process helpers, standard library only.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import dataclasses
import importlib.util
import marshal
import os
import sys
from pathlib import Path
from types import CodeType
from typing import Any

__all__ = ["MAX_ENTRIES", "CodeCache", "cache_path", "install"]

MAX_ENTRIES = 8192
"""Most code objects a cache file keeps (ppsp's commands write about 600 between them)."""

FORMAT = 2
"""The file's layout, in its name: 2 keeps each code object marshalled on its own."""

MAX_FILE_BYTES = 32 << 20
"""A cache file larger than this is not read."""

_installed: CodeCache | None = None


def cache_path() -> Path | None:
    """Where this Python's cache file is; None without a home or cache directory."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    try:
        root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    except RuntimeError:
        return None
    tag = sys.implementation.cache_tag or "python"
    magic = importlib.util.MAGIC_NUMBER.hex()
    return root / "ppsp" / f"dataclass-code-{FORMAT}.{tag}-{magic}.marshal"


class CodeCache:
    """Source text -> compiled code, loaded from and saved to one file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.code: dict[str, bytes] = {}
        """Source text -> its code, marshalled: each is unmarshalled when a class asks for it,
        so a command pays for the code it uses, not for every command's (the file holds
        about 1,800 entries: unmarshalling them all took 24 ms, a sixth of ``ppsp get``'s
        start-up; reading them as bytes takes about 2 ms)."""
        self.added = 0
        """Code compiled by this process and not in the file it read."""
        if path is not None:
            self.code = _read(path)

    def exec(self, source: Any, globals: Any = None, locals: Any = None) -> None:
        """``exec`` as ``dataclasses`` calls it, the compiling skipped for known text."""
        if not isinstance(source, str):
            builtins.exec(source, globals, locals)
            return
        code = self._known(source)
        if code is None:
            # As dataclasses' own exec compiles it: no __future__ flags of this module.
            code = compile(source, "<string>", "exec", dont_inherit=True)
            if len(self.code) < MAX_ENTRIES:
                self.code[source] = marshal.dumps(code)
                self.added += 1
        builtins.exec(code, globals, locals)

    def _known(self, source: str) -> CodeType | None:
        """The kept code of ``source``, unmarshalled now (None: unknown or unreadable)."""
        data = self.code.get(source)
        if data is None:
            return None
        try:
            code = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            code = None
        if isinstance(code, CodeType):
            return code
        del self.code[source]
        return None

    def save(self) -> None:
        """Write the file when this process compiled something new (atomically)."""
        if self.path is None or not self.added:
            return
        with contextlib.suppress(OSError, ValueError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            try:
                temporary.write_bytes(marshal.dumps(self.code))
                os.replace(temporary, self.path)
            finally:
                with contextlib.suppress(OSError):
                    temporary.unlink()
            self.added = 0


def _read(path: Path) -> dict[str, bytes]:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            return {}
        loaded = marshal.loads(data)
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {
        source: code
        for source, code in loaded.items()
        if isinstance(source, str) and isinstance(code, bytes)
    }


def install() -> CodeCache | None:
    """Give ``dataclasses`` the cached ``exec`` (once per process, Python 3.11 only, where its
    generated methods are compiled one by one); the file is saved at exit."""
    global _installed
    if _installed is not None:
        return _installed
    if sys.version_info[:2] != (3, 11) or not hasattr(dataclasses, "_create_fn"):
        return None  # later versions compile a class's methods together, or differently
    cache = CodeCache(cache_path())
    # The module's own global shadows the builtin for the module's code alone.
    dataclasses.exec = cache.exec  # type: ignore[attr-defined]
    atexit.register(cache.save)
    _installed = cache
    return cache
