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


def _thp_mode() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "absent"
    return text.split("[", 1)[1].split("]", 1)[0] if "[" in text else "absent"


def _faults_per_64mib_tensor(env_value: str | None) -> int:
    """Start the app's entry module in a fresh interpreter, then count the page faults of touching 64 MiB
    tensors: with huge pages a few hundred, without them 16384 (one per 4 KiB page)."""
    code = ("import resource, webui, torch\n"
            "f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(4):\n"
            "    t = torch.empty(64 << 20, dtype=torch.uint8); t.fill_(1); del t\n"
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) // 4)")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    if env_value is not None:
        env["THP_MEM_ALLOC_ENABLE"] = env_value
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return int(out.strip().splitlines()[-1])


def test_request_huge_pages_keeps_a_users_value():
    from modules.engine.host_memory import request_huge_pages

    env: dict[str, str] = {}
    request_huge_pages(env)
    assert env == ({"THP_MEM_ALLOC_ENABLE": "1"} if sys.platform.startswith("linux") else {})
    env = {"THP_MEM_ALLOC_ENABLE": "0"}
    request_huge_pages(env)
    assert env == {"THP_MEM_ALLOC_ENABLE": "0"}


@pytest.mark.skipif(_thp_mode() not in ("always", "madvise"), reason="the kernel gives no transparent huge pages")
def test_webui_asks_for_huge_pages_before_torch_allocates():
    """PyTorch reads the variable at its first allocation: webui must set it before anything imports torch."""
    assert _faults_per_64mib_tensor(None) < 4096
    assert _faults_per_64mib_tensor("0") >= 16384
