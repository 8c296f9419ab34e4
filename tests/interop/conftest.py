"""The ``swift`` binary of libswift (the reference RFC 7574 peer), built once per machine.

Where libswift's shared folder is missing or the build fails, the interop tests are skipped on a
developer's machine and fail in CI (``CI`` set), where ``.ci/run`` installs the build tools and
builds it before the tests.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from interop.libswift import Unavailable, build


@pytest.fixture(scope="session")
def swift() -> Path:
    """Path of a built libswift ``swift`` binary (built into ~/.cache/ppsp-interop on first use)."""
    try:
        return build()
    except Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI runs the interop tests: .ci/run builds libswift)")
        pytest.skip(str(exc))
