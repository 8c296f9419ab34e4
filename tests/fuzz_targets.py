"""The fuzz targets of ``fuzz/``, loaded as modules for the tests that run their bounded loops."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
"""The folder of the fuzz targets (each a script, ``fuzz/NAME.py``, beside ``harness.py``)."""


def load_target(name: str) -> ModuleType:
    """The fuzz target ``fuzz/NAME.py`` as a module (it puts ``fuzz/`` on the import path for
    its ``harness``)."""
    spec = importlib.util.spec_from_file_location(name, FUZZ / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
