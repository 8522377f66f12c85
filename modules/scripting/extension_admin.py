"""The Extensions tab's actions, as in A1111: install from a git URL, check for updates and update, the
"Available" list from an index, and backup / restore of the extensions' state.

Every action that fetches code (install, update, restore to another commit) is refused unless
:func:`modules.settings.cmd_args.extension_install_allowed` says yes (off with ``--listen`` and friends unless
``--enable-insecure-extension-access``). git runs as a child process with a time limit and no prompt for
credentials; when it cannot reach a remote the message says so plainly. Installed or changed extensions take
effect at the next start (scripts are imported once).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modules.core import fileio

log = logging.getLogger(__name__)

GIT_TIMEOUT_S = 120
INDEX_TIMEOUT_S = 20
DEFAULT_INDEX_URL = "https://raw.githubusercontent.com/AUTOMATIC1111/stable-diffusion-webui-extensions/master/index.json"
STATES_DIR = "config_states"


class ExtensionActionError(Exception):
    """An action could not be done; the message says why, for the page."""


def _git(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="echo")
    try:
        return subprocess.run(["git", *args], cwd=str(cwd) if cwd else None, env=env, capture_output=True,
                              text=True, timeout=GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise ExtensionActionError("git is not installed: install git to install or update extensions") from None
    except subprocess.TimeoutExpired:
        raise ExtensionActionError(f"git {args[0]} did not finish in {GIT_TIMEOUT_S} s (is the network reachable?)") from None


def _offline_hint(stderr: str) -> str:
    text = stderr.strip().splitlines()[-1] if stderr.strip() else "git failed"
    if re.search(r"could not resolve host|unable to access|connection refused|network is unreachable|"
                 r"could not read from remote|timed out|failed to connect", stderr, re.IGNORECASE):
        return f"could not reach the extension's repository (offline?): {text}"
    return text


def _check_allowed(manager: Any) -> None:
    from modules.settings import cmd_args

    allowed, reason = cmd_args.extension_install_allowed(manager.args)
    if not allowed:
        raise ExtensionActionError(reason)


def folder_name_for(url: str) -> str:
    name = url.rstrip("/").split("/")[-1]
    name = name[:-4] if name.endswith(".git") else name
    name = re.sub(r"[^\w.-]", "_", name).strip(".")
    if not name:
        raise ExtensionActionError(f"cannot name a folder after {url!r}: give a folder name")
    return name


def install_from_url(manager: Any, url: str, branch: str | None = None, dirname: str | None = None) -> Path:
    """``git clone`` ``url`` into ``<extensions>/<dirname>`` (cloned beside it first, moved in when complete)."""
    _check_allowed(manager)
    url = (url or "").strip()
    if not url:
        raise ExtensionActionError("URL: give the extension's git URL")
    name = folder_name_for(dirname.strip() if dirname and dirname.strip() else url)
    root = Path(manager.paths.extensions_dir)
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    if target.exists():
        raise ExtensionActionError(f"an extension folder named {name!r} already exists: {target}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        args = ["clone", "--filter=blob:none", url, str(tmp / name)]
        if branch and branch.strip():
            args[1:1] = ["--branch", branch.strip()]
        done = _git(args)
        if done.returncode != 0:
            raise ExtensionActionError(f"git clone failed: {_offline_hint(done.stderr)}")
        os.replace(tmp / name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    manager.refresh()
    return target


@dataclass
class UpdateStatus:
    name: str
    state: str  # "behind", "latest", "error", "not a git checkout"
    message: str


def check_for_updates(manager: Any, names: list[str] | None = None) -> list[UpdateStatus]:
    """``git fetch`` each extension (all by default) and compare its HEAD with its upstream branch."""
    out = []
    for ext in manager.list():
        if names is not None and ext.name not in names:
            continue
        if not (ext.path / ".git").exists():
            out.append(UpdateStatus(ext.name, "not a git checkout", "not installed with git: nothing to check"))
            continue
        done = _git(["fetch", "--quiet"], ext.path)
        if done.returncode != 0:
            out.append(UpdateStatus(ext.name, "error", _offline_hint(done.stderr)))
            continue
        behind = _git(["rev-list", "--count", "HEAD..@{u}"], ext.path)
        if behind.returncode != 0:
            out.append(UpdateStatus(ext.name, "error", f"no upstream branch to compare with: {behind.stderr.strip()}"))
        elif int(behind.stdout.strip() or 0) > 0:
            out.append(UpdateStatus(ext.name, "behind", f"{behind.stdout.strip()} new commit(s)"))
        else:
            out.append(UpdateStatus(ext.name, "latest", "up to date"))
    return out


def update(manager: Any, name: str) -> str:
    """``git pull --ff-only`` one extension; returns its new version."""
    _check_allowed(manager)
    ext = manager.find(name)
    if ext is None:
        raise ExtensionActionError(f"no extension named {name!r}")
    done = _git(["pull", "--ff-only", "--quiet"], ext.path)
    if done.returncode != 0:
        raise ExtensionActionError(f"{name}: update failed: {_offline_hint(done.stderr)}")
    manager.refresh()
    return manager.find(name).version


# --- the "Available" list -------------------------------------------------------------------------------

@dataclass
class AvailableExtension:
    name: str
    url: str
    description: str
    tags: list[str]
    installed: bool


def read_index(source: str, timeout: float = INDEX_TIMEOUT_S) -> dict[str, Any]:
    """A1111's extension index (``{"extensions": [{name, url, description, tags}...]}``) from a URL or a file."""
    source = (source or "").strip()
    try:
        if re.match(r"https?://", source):
            with urllib.request.urlopen(source, timeout=timeout) as resp:  # noqa: S310 - the user's URL
                raw = resp.read()
        else:
            raw = Path(source.removeprefix("file://")).expanduser().read_bytes()
        data = json.loads(raw)
    except OSError as exc:
        raise ExtensionActionError(f"could not read the extension index {source!r} (offline?): {exc}") from None
    except ValueError as exc:
        raise ExtensionActionError(f"the extension index {source!r} is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("extensions"), list):
        raise ExtensionActionError(f"the extension index {source!r} has no \"extensions\" list")
    return data


def available(manager: Any, source: str, hide_installed: bool = False) -> list[AvailableExtension]:
    index = read_index(source)
    installed_urls = {_norm_url(e.git.remote) for e in manager.list() if e.git.remote}
    installed_names = {e.name.lower() for e in manager.list()}
    out = []
    for item in index["extensions"]:
        if not isinstance(item, dict) or not item.get("url"):
            continue
        url = str(item["url"])
        installed = _norm_url(url) in installed_urls or folder_name_for(url).lower() in installed_names
        if installed and hide_installed:
            continue
        out.append(AvailableExtension(str(item.get("name") or folder_name_for(url)), url,
                                      str(item.get("description") or ""), [str(t) for t in item.get("tags") or []],
                                      installed))
    return out


def _norm_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return (url[:-4] if url.endswith(".git") else url).lower()


# --- backup / restore -------------------------------------------------------------------------------------

def states_dir(manager: Any) -> Path:
    return Path(manager.paths.extensions_dir).parent / STATES_DIR


def backup(manager: Any, name: str | None = None) -> Path:
    """Save every extension's remote, branch, commit and enabled state as ``config_states/<name>.json``."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    label = re.sub(r"[^\w.-]", "_", name.strip()) if name and name.strip() else stamp
    state = {"name": label, "created_at": stamp, "extensions": {
        e.name: {"remote": e.git.remote, "branch": e.git.branch, "commit_hash": e.git.commit_hash,
                 "enabled": manager.is_enabled(e)} for e in manager.list()}}
    path = states_dir(manager) / f"{label}.json"
    fileio.atomic_write_json(path, state, indent=4)
    return path


def list_backups(manager: Any) -> list[Path]:
    folder = states_dir(manager)
    return sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []


def restore(manager: Any, path: str | Path, checkout: bool = True) -> list[str]:
    """Enable/disable as saved and (with ``checkout``) put each git checkout back on its saved commit.
    Returns one line per change or problem."""
    try:
        state = json.loads(Path(path).read_text(encoding="utf-8"))
        saved = state["extensions"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ExtensionActionError(f"not a backup of the extensions' state: {path} ({exc})") from None
    lines = []
    enabled = [n for n, s in saved.items() if s.get("enabled", True)]
    enabled += [e.name for e in manager.list() if e.name not in saved and manager.is_enabled(e)]
    manager.set_enabled(enabled)
    lines.append(f"enabled: {', '.join(sorted(enabled)) or 'none'}")
    if checkout:
        for ext in manager.list():
            commit = (saved.get(ext.name) or {}).get("commit_hash")
            if not commit or commit == ext.git.commit_hash:
                continue
            _check_allowed(manager)
            done = _git(["checkout", "--quiet", commit], ext.path)
            lines.append(f"{ext.name}: {'back on ' + commit[:8] if done.returncode == 0 else _offline_hint(done.stderr)}")
        missing = [n for n in saved if manager.find(n) is None]
        if missing:
            lines.append(f"not installed (install them from their URL): {', '.join(missing)}")
        manager.refresh()
    return lines
