"""Running extensions' installers without letting them change the app (A1111's ``install.py`` runs with the
app's Python and may call pip freely; one real installer downgraded transformers and broke model loading).

Every installer runs in a child process whose environment holds ``PIP_CONSTRAINT`` = a constraints file that
pins every *core* distribution to its installed version: the app's own requirements (``pyproject.toml``) and,
transitively, everything they require. Any pip the installer starts (``launch.run_pip`` or its own
``subprocess`` call) reads that variable, so it may add packages but cannot upgrade, downgrade or swap a core
one: pip refuses the whole requirement instead. An extension whose installer fails is reported (its pip output's
last lines) and switched off for this run; the next start tries again.

An extension with ``requirements.txt`` and no ``install.py`` gets ``pip install -r requirements.txt`` under the
same constraints.
"""
from __future__ import annotations

import importlib.metadata as metadata
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

from modules.core import fileio

log = logging.getLogger(__name__)

INSTALL_TIMEOUT_S = 900
CONSTRAINTS_FILE = "extension-install-constraints.txt"
# Always pinned, whatever pyproject says: what a model load needs and pip may not swap under the app.
ALWAYS_CORE = ("torch", "diffusers", "transformers", "huggingface_hub", "tokenizers", "safetensors", "accelerate",
               "gradio", "gradio_client", "fastapi", "starlette", "pydantic", "uvicorn", "numpy", "pillow", "spandrel",
               "pip", "setuptools")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str | None:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    return m.group(1) if m else None


def declared_requirements(repo_root: Path) -> list[str]:
    """Names in ``[project].dependencies`` of the app's ``pyproject.toml``."""
    path = Path(repo_root) / "pyproject.toml"
    try:
        import tomllib

        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, ImportError):
        return []
    deps = data.get("project", {}).get("dependencies", [])
    return [n for n in (_requirement_name(d) for d in deps) if n]


def core_distributions(roots: Iterable[str]) -> dict[str, str]:
    """{canonical name: installed version} of ``roots`` and everything they require (extras left out)."""
    out: dict[str, str] = {}
    todo = [_canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in out:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        out[name] = dist.version
        for req in dist.requires or []:
            if "extra ==" in req.replace('"', "").replace("'", ""):
                continue
            dep = _requirement_name(req)
            if dep:
                todo.append(_canonical(dep))
    return out


def write_constraints(repo_root: Path, cache_dir: Path) -> Path:
    pins = core_distributions([*declared_requirements(repo_root), *ALWAYS_CORE])
    path = Path(cache_dir) / CONSTRAINTS_FILE
    text = "# Written by the app: extension installers may not change these (see modules/scripting/installers.py)\n"
    text += "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))
    fileio.atomic_write_text(path, text)
    return path


def installer_env(repo_root: Path, constraints: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if environ is None else environ)
    env["PYTHONPATH"] = str(repo_root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PIP_CONSTRAINT"] = str(constraints)
    env.pop("PIP_BUILD_CONSTRAINT", None)
    return env


def run_installer(ext_path: Path, repo_root: Path, constraints: Path) -> tuple[int, str]:
    """Run ``install.py`` (or ``pip install -r requirements.txt``) of the extension at ``ext_path``."""
    ext_path = Path(ext_path)
    if (ext_path / "install.py").is_file():
        command = [sys.executable, str(ext_path / "install.py")]
    elif (ext_path / "requirements.txt").is_file():
        command = [sys.executable, "-m", "pip", "install", "--prefer-binary", "-r", str(ext_path / "requirements.txt")]
    else:
        return 0, ""
    try:
        done = subprocess.run(command, cwd=str(ext_path), env=installer_env(Path(repo_root), constraints),
                              capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, f"did not finish in {INSTALL_TIMEOUT_S} s"
    except OSError as exc:
        return -1, str(exc)
    return done.returncode, (done.stdout or "") + (done.stderr or "")


def explain_failure(code: int, output: str) -> str:
    """One line for the Extensions tab: a core-package conflict is named as such."""
    tail = "\n".join(output.strip().splitlines()[-5:])
    if "ResolutionImpossible" in output or "conflicting dependencies" in output or "Cannot install" in output:
        return f"its requirements conflict with the app's own packages (pinned for installers); switched off: {tail}"
    return f"install.py failed (exit code {code}); switched off: {tail}"
