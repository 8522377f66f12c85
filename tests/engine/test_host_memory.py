"""The malloc settings for worker-thread generations are applied once, on Linux with glibc, and can be turned off."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _tune_in_child(env_value: str | None) -> str:
    code = "from modules.engine.host_memory import tune_malloc; print(tune_malloc(), tune_malloc())"
    env = {"PATH": "/usr/bin:/bin"}
    if env_value is not None:
        env["SD_WEBUI_MALLOC_TUNING"] = env_value
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_applied_once_and_can_be_turned_off():
    assert _tune_in_child(None) == "True True"
    assert _tune_in_child("0") == "False False"
