"""The lab's processes are configured by the lab alone: no user variables, no user file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_lab_processes_see_no_ppsp_variables_and_no_user_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The environment is read when the lab's runner is imported: a fresh interpreter, as a
    # user's `ppsp lab` starts, with a token, a setting and a per-user file of their own.
    code = "from ppsp.lab.process import ENV\nimport os, json\nprint(json.dumps(ENV))\n"
    user = tmp_path / "config"
    (user / "ppsp").mkdir(parents=True)
    (user / "ppsp" / "config.toml").write_text("[get]\ntimeout = 1\n")
    env = dict(
        os.environ,
        PPSP_TOKEN="a.b.c",
        PPSP_GET_TIMEOUT="1",
        PPSP_CONFIG=str(user / "ppsp" / "config.toml"),
        XDG_CONFIG_HOME=str(user),
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    seen = json.loads(out)
    assert not [name for name in seen if name.startswith("PPSP_")]
    assert not os.path.exists(os.path.join(seen["XDG_CONFIG_HOME"], "ppsp", "config.toml"))
