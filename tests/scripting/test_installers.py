"""Extension installers cannot change the app's own packages: every core distribution is pinned in the pip
constraints their environment carries. An installer that tries to downgrade one is refused by pip, reported by
name with the reason, and its extension is switched off; the installed version stays as it was."""
from __future__ import annotations

import base64
import hashlib
import importlib.metadata as metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from modules.scripting import extensions as ext_mod
from modules.scripting import installers

REPO = Path(__file__).resolve().parents[2]
CORE = "safetensors"  # a core package (the app loads every checkpoint with it)
FAKE_VERSION = "0.0.1"

INSTALLER = '''
import subprocess, sys
# Like sd-dynamic-prompts' installer: pip is called directly, not through launch.run_pip.
subprocess.check_call([sys.executable, "-m", "pip", "install", "--no-index", "--find-links", {wheels!r},
                       "--target", {target!r}, "{core}=={version}"])
'''


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def fake_wheel(folder: Path, name: str, version: str) -> Path:
    """A pure-Python wheel claiming to be ``name`` ``version`` (empty module): a downgrade pip could do offline."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"FAKE = True\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "\n".join([_record_line(n, d) for n, d in files.items()] + [f"{dist}/RECORD,,"]) + "\n"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
        zf.writestr(f"{dist}/RECORD", record)
    return path


@pytest.fixture()
def downgrading_extension(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    fake_wheel(wheels, CORE, FAKE_VERSION)
    target = tmp_path / "target"
    ext = tmp_path / "data" / "extensions" / "downgrader"
    (ext / "scripts").mkdir(parents=True)
    (ext / "install.py").write_text(INSTALLER.format(wheels=str(wheels), target=str(target), core=CORE,
                                                     version=FAKE_VERSION), encoding="utf-8")
    (ext / "scripts" / "s.py").write_text("LOADED = True\n", encoding="utf-8")
    return SimpleNamespace(path=ext, target=target, data=tmp_path / "data")


def test_the_constraints_pin_the_core_packages(tmp_path):
    path = installers.write_constraints(REPO, tmp_path)
    pins = dict(line.strip().split("==", 1) for line in path.read_text().splitlines() if "==" in line)
    for name in ("torch", "diffusers", "transformers", "huggingface-hub", "gradio", "fastapi", "safetensors",
                 "accelerate", "numpy", "pillow"):
        assert pins.get(name) == metadata.version(name), name


def test_without_the_constraints_the_installer_would_downgrade(downgrading_extension):
    """The control: the same installer, run bare, does install the old version (into its target folder)."""
    env = {k: v for k, v in os.environ.items() if k != "PIP_CONSTRAINT"}
    done = subprocess.run([sys.executable, str(downgrading_extension.path / "install.py")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (downgrading_extension.target / f"{CORE}-{FAKE_VERSION}.dist-info").is_dir()


def test_an_installer_that_downgrades_a_core_package_changes_nothing_and_is_switched_off(downgrading_extension):
    before = metadata.version(CORE)
    paths = SimpleNamespace(repo_root=REPO, extensions_builtin_dir=REPO / "extensions-builtin",
                            extensions_dir=downgrading_extension.data / "extensions",
                            cache_dir=downgrading_extension.data / "cache")
    manager = ext_mod.ExtensionManager(paths, {"disabled_extensions": []}, SimpleNamespace())
    manager.run_installers(allowed=(True, ""))
    ext = manager.find("downgrader")
    assert any("conflict with the app's own packages" in e for e in ext.errors), ext.errors
    assert ext not in manager.active()
    assert "installer failed" in manager.disabled_reason(ext)
    assert not (downgrading_extension.target / f"{CORE}-{FAKE_VERSION}.dist-info").exists()
    assert metadata.version(CORE) == before
