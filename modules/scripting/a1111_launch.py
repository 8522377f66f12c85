"""A1111's ``launch`` / ``launch_utils`` helpers for extensions' ``install.py``: ``is_installed``, ``run_pip``,
``run``, ``git``, ``git_tag``, ``args``.

Installers run in a child process (see :mod:`modules.scripting.installers`), whose environment carries the
pip constraints that pin the app's own packages (``PIP_CONSTRAINT``), so ``run_pip`` - and any pip the
installer starts itself - cannot change them."""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import logging
import os
import shlex
import subprocess
import sys
from typing import Any

log = logging.getLogger("launch")

python = sys.executable
git = os.environ.get("GIT", "git")
index_url = os.environ.get("INDEX_URL", "")
dir_repos = "repositories"
default_command_live = os.environ.get("WEBUI_LAUNCH_LIVE_OUTPUT") == "1"


def _args() -> argparse.Namespace:
    """The flags the app was started with, as far as installers care (``--skip-install`` and the like)."""
    from modules.settings import cmd_args

    try:
        ns, _ = cmd_args.build_parser().parse_known_args(shlex.split(os.environ.get("COMMANDLINE_ARGS", "")))
    except SystemExit:
        ns = argparse.Namespace()
    for name in ("skip_install", "skip_torch_cuda_test", "reinstall_torch", "reinstall_xformers", "update_check"):
        if not hasattr(ns, name):
            setattr(ns, name, False)
    return ns


args = _args()


def is_installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return importlib.util.find_spec(package) is not None
    except (ModuleNotFoundError, ValueError):
        return False


def run(command: Any, desc: str | None = None, errdesc: str | None = None, custom_env: dict | None = None,
        live: bool = default_command_live) -> str:
    if desc:
        print(desc)
    result = subprocess.run(command, shell=isinstance(command, str), env=custom_env or os.environ,
                            capture_output=not live, text=True)
    if result.returncode != 0:
        message = f"{errdesc or 'Error running command'}.\nCommand: {command}\nError code: {result.returncode}"
        if not live:
            message += f"\nstdout: {result.stdout or '<empty>'}\nstderr: {result.stderr or '<empty>'}"
        raise RuntimeError(message)
    return (result.stdout or "") if not live else ""


def run_pip(command: str, desc: str | None = None, live: bool = default_command_live) -> str:
    if getattr(args, "skip_install", False):
        return ""
    index = f" --index-url {index_url}" if index_url else ""
    return run(f'"{python}" -m pip {command} --prefer-binary{index}', desc=f"Installing {desc}",
               errdesc=f"Couldn't install {desc}", live=live)


def check_run_python(code: str) -> bool:
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def git_tag() -> str:
    try:
        return subprocess.check_output([git, "describe", "--tags"], stderr=subprocess.DEVNULL, text=True).strip()
    except Exception:  # noqa: BLE001 - no git or no tag: A1111 answers "<none>"
        return "<none>"


def commit_hash() -> str:
    try:
        return subprocess.check_output([git, "rev-parse", "HEAD"], stderr=subprocess.DEVNULL, text=True).strip()
    except Exception:  # noqa: BLE001
        return "<none>"


def repo_dir(name: str) -> str:
    return os.path.join(os.getcwd(), dir_repos, name)


def git_clone(url: str, dir: str, name: str, commithash: str | None = None) -> None:  # noqa: A002 - A1111's name
    if os.path.exists(dir):
        return
    run(f'"{git}" clone "{url}" "{dir}"', f"Cloning {name} into {dir}...", f"Couldn't clone {name}")
    if commithash:
        run(f'"{git}" -C "{dir}" checkout {commithash}', None, f"Couldn't checkout {name}'s hash: {commithash}")
