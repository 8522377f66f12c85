"""The Extensions tab's actions: install from a git URL (local repositories here: no network), check for
updates and update, the "Available" list from a local index file, backup and restore; refused with --listen
unless --enable-insecure-extension-access; an unreachable remote gives a plain "offline?" message."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from modules.scripting import extension_admin as admin
from modules.scripting import extensions
from modules.settings import cmd_args
from modules.settings.options import Options
from modules.settings.paths import Paths

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True).stdout


def _origin(tmp_path: Path, name: str = "sd-webui-origin") -> Path:
    repo = tmp_path / "remote" / name
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts" / "hello.py").write_text("X = 1\n")
    _git("init", "-q", "-b", "main", cwd=repo)
    _git("add", ".", cwd=repo)
    _git("commit", "-q", "-m", "first", cwd=repo)
    return repo


def _manager(tmp_path: Path, flags: list[str] | None = None) -> extensions.ExtensionManager:
    repo = tmp_path / "app"
    (repo / "extensions-builtin").mkdir(parents=True)
    data = tmp_path / "data"
    (data / "extensions").mkdir(parents=True)
    args = cmd_args.parse_args(["--data-dir", str(data), *(flags or [])], environ={})
    paths = Paths.from_args(SimpleNamespace(data_dir=str(data)), repo, environ={})
    return extensions.ExtensionManager(paths, Options(data / "config.json"), args)


def test_install_from_url_check_update_and_update(tmp_path):
    origin = _origin(tmp_path)
    manager = _manager(tmp_path)
    target = admin.install_from_url(manager, str(origin))
    assert (target / "scripts" / "hello.py").is_file()
    ext = manager.find("sd-webui-origin")
    first = ext.git.commit_hash
    assert [s.state for s in admin.check_for_updates(manager)] == ["latest"]
    (origin / "scripts" / "hello.py").write_text("X = 2\n")
    _git("commit", "-q", "-am", "second", cwd=origin)
    status = admin.check_for_updates(manager)
    assert status[0].state == "behind" and "1 new commit" in status[0].message
    version = admin.update(manager, "sd-webui-origin")
    assert version and version != first[:8]
    assert (target / "scripts" / "hello.py").read_text() == "X = 2\n"
    with pytest.raises(admin.ExtensionActionError, match="already exists"):
        admin.install_from_url(manager, str(origin))


def test_installing_is_refused_when_listening_unless_insecure_access_is_allowed(tmp_path):
    origin = _origin(tmp_path)
    manager = _manager(tmp_path, ["--listen"])
    with pytest.raises(admin.ExtensionActionError, match="--enable-insecure-extension-access"):
        admin.install_from_url(manager, str(origin))
    assert not (Path(manager.paths.extensions_dir) / "sd-webui-origin").exists()
    allowed = _manager(tmp_path / "b", ["--listen", "--enable-insecure-extension-access"])
    assert admin.install_from_url(allowed, str(origin)).is_dir()


def test_offline_gives_a_clear_message(tmp_path):
    manager = _manager(tmp_path)
    with pytest.raises(admin.ExtensionActionError, match="git clone failed"):
        admin.install_from_url(manager, "http://127.0.0.1:9/nobody/sd-webui-offline.git")
    assert not any(Path(manager.paths.extensions_dir).iterdir())  # nothing half-cloned is left
    origin = _origin(tmp_path)
    admin.install_from_url(manager, str(origin))
    ext_path = Path(manager.paths.extensions_dir) / "sd-webui-origin"
    _git("remote", "set-url", "origin", "http://127.0.0.1:9/nobody/sd-webui-origin.git", cwd=ext_path)
    status = admin.check_for_updates(manager)
    assert status[0].state == "error" and "could not reach" in status[0].message and "offline?" in status[0].message


def test_available_list_from_a_local_index_file(tmp_path):
    origin = _origin(tmp_path)
    manager = _manager(tmp_path)
    admin.install_from_url(manager, str(origin))
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"extensions": [
        {"name": "Origin", "url": str(origin), "description": "already here", "tags": ["script"]},
        {"name": "Other", "url": "https://github.com/someone/sd-webui-other.git", "description": "new", "tags": []},
    ]}))
    items = admin.available(manager, str(index))
    assert [(i.name, i.installed) for i in items] == [("Origin", True), ("Other", False)]
    assert [i.name for i in admin.available(manager, str(index), hide_installed=True)] == ["Other"]
    with pytest.raises(admin.ExtensionActionError, match="offline"):
        admin.available(manager, "http://127.0.0.1:9/index.json")


def test_backup_and_restore_the_extensions_state(tmp_path):
    origin = _origin(tmp_path)
    manager = _manager(tmp_path)
    admin.install_from_url(manager, str(origin))
    first = manager.find("sd-webui-origin").git.commit_hash
    saved = admin.backup(manager, "before update")
    assert saved in admin.list_backups(manager)
    (origin / "scripts" / "hello.py").write_text("X = 3\n")
    _git("commit", "-q", "-am", "third", cwd=origin)
    admin.update(manager, "sd-webui-origin")
    manager.set_enabled([])  # switched off after the backup
    lines = admin.restore(manager, saved)
    assert manager.find("sd-webui-origin").git.commit_hash == first
    assert manager.is_enabled(manager.find("sd-webui-origin"))
    assert any("back on" in line for line in lines)
