"""Shared test fixtures: offline mode, paths to the team's real fixtures."""
import os
from pathlib import Path

import pytest

# The hub must never be asked, not even by accident in a test.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
REAL_FIXTURES = SHARED / "fixtures" / "real"


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    if not REAL_FIXTURES.is_dir():
        pytest.skip(f"real fixtures not found at {REAL_FIXTURES}")
    return REAL_FIXTURES


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_engine(tmp_path_factory):
    """An Engine over a data folder holding one tiny SD1 single-file checkpoint."""
    import webui
    from modules.settings import cmd_args
    from tests import tiny_models

    data = tmp_path_factory.mktemp("tiny-engine")
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=3), ckpt_dir / "tiny-session.safetensors", "sd1")
    engine = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data)], environ={}))
    engine.ensure_model()
    return engine


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium (headless), one per browser-test module; skips where Playwright or Chromium is missing."""
    from tests.browser_harness import launch_chromium, require_playwright

    with launch_chromium(require_playwright()) as b:
        yield b
