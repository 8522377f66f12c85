"""Extensions (spec §12.1): discovery and order, metadata, enable/disable, git version, preload.py, install.py,
the web files route. No model is loaded here."""
from __future__ import annotations

import subprocess
import zlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from modules.settings import cmd_args
from modules.scripting import extensions
from modules.settings.options import Options
from modules.settings.paths import Paths

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "extensions-examples" / "sd-webui-example"


def _paths(tmp_path: Path) -> Paths:
    repo = tmp_path / "repo"
    (repo / "extensions-builtin").mkdir(parents=True)
    (repo / "extensions").mkdir()
    data = tmp_path / "data"
    (data / "extensions").mkdir(parents=True)
    return Paths.from_args(SimpleNamespace(data_dir=str(data)), repo, environ={})


def _ext(root: Path, name: str, files: dict[str, str] | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for rel, text in (files or {}).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def _manager(paths: Paths, options=None, argv=()) -> extensions.ExtensionManager:
    args = cmd_args.parse_args(["--data-dir", str(paths.data_dir), *argv], environ={})
    return extensions.ExtensionManager(paths, options if options is not None else Options(None), args)


def test_discovery_order_builtin_first_then_repo_then_data_and_duplicates_dropped(tmp_path):
    paths = _paths(tmp_path)
    _ext(paths.extensions_builtin_dir, "Lora")
    _ext(paths.repo_root / "extensions", "zeta")
    _ext(paths.repo_root / "extensions", "Alpha")
    _ext(paths.extensions_dir, "beta")
    _ext(paths.extensions_dir, "alpha")  # same canonical name as repo's "Alpha": left out
    _ext(paths.extensions_dir, ".hidden")
    (paths.extensions_dir / "README.md").write_text("not an extension")
    items = _manager(paths).list()
    assert [(e.name, e.is_builtin) for e in items] == [("Lora", True), ("Alpha", False), ("zeta", False), ("beta", False)]
    assert items[1].path == paths.repo_root / "extensions" / "Alpha"
    assert [e.canonical_name for e in items] == ["lora", "alpha", "zeta", "beta"]


def test_metadata_name_requires_and_script_sections(tmp_path):
    paths = _paths(tmp_path)
    _ext(paths.extensions_dir, "folder-name", {"metadata.ini": (
        "[Extension]\nName = Pretty-Name\nRequires = needed, one|other\n\n"
        "[scripts/a.py]\nBefore = x, y/scripts/b.py\nAfter = z\nRequires = needed\n")})
    _ext(paths.extensions_dir, "needed")
    _ext(paths.extensions_dir, "broken-meta", {"metadata.ini": "this is not ini"})
    manager = _manager(paths)
    ext = manager.find("pretty-name")
    assert ext is not None and ext.name == "folder-name"
    assert ext.metadata.requires == ["needed", "one|other"]
    assert ext.metadata.script_before["scripts/a.py"] == ["x", "y/scripts/b.py"]
    assert ext.metadata.script_after["scripts/a.py"] == ["z"]
    broken = manager.find("broken-meta")
    assert "metadata.ini" in broken.errors[0] and "unreadable" in broken.errors[0]
    # "one|other" is missing: the extension is not active and says why.
    active = [e.name for e in manager.active()]
    assert "folder-name" not in active and "needed" in active
    assert any("requires one|other" in err for err in ext.errors)


def test_disable_setting_flags_and_persistence(tmp_path):
    paths = _paths(tmp_path)
    _ext(paths.extensions_builtin_dir, "builtin-one")
    _ext(paths.extensions_dir, "a")
    _ext(paths.extensions_dir, "b")
    options = Options(paths.config_file)
    manager = _manager(paths, options)
    assert [e.name for e in manager.active()] == ["builtin-one", "a", "b"]
    disabled = manager.set_enabled(["builtin-one", "b"])
    assert disabled == ["a"]
    assert Options(paths.config_file).get("disabled_extensions") == ["a"]  # saved to config.json
    assert [e.name for e in manager.active()] == ["builtin-one", "b"]
    assert "Extensions tab" in manager.disabled_reason(manager.find("a"))
    assert [e.name for e in _manager(paths, options, ["--disable-extra-extensions"]).active()] == ["builtin-one"]
    assert _manager(paths, options, ["--disable-all-extensions"]).active() == []
    options.set("disable_all_extensions", "extra")
    assert [e.name for e in _manager(paths, options).active()] == ["builtin-one"]
    items = {i["name"]: i for i in _manager(paths, options).api_items()}
    assert items["builtin-one"]["enabled"] is True and items["b"]["enabled"] is False
    assert set(items["b"]) == {"name", "remote", "branch", "commit_hash", "version", "commit_date", "enabled"}


def test_git_version_read_without_running_git(tmp_path):
    folder = tmp_path / "ext"
    git = folder / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    commit = "0123456789abcdef0123456789abcdef01234567"
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text(commit + "\n")
    (git / "config").write_text('[remote "origin"]\n\turl = https://example.com/ext.git\n')
    body = b"tree 0\nauthor A <a@b> 1700000000 +0000\ncommitter C <c@d> 1700000123 +0100\n\nmessage\n"
    obj = git / "objects" / commit[:2] / commit[2:]
    obj.parent.mkdir(parents=True)
    obj.write_bytes(zlib.compress(b"commit %d\x00" % len(body) + body))
    info = extensions.read_git_info(folder)
    assert info == extensions.GitInfo("https://example.com/ext.git", "main", commit, 1700000123)
    assert info.version == "01234567"
    # packed ref, detached HEAD, no git at all
    (git / "refs" / "heads" / "main").unlink()
    (git / "packed-refs").write_text(f"# pack-refs with: peeled\n{commit} refs/heads/main\n")
    assert extensions.read_git_info(folder).commit_hash == commit
    (git / "HEAD").write_text(commit)
    assert extensions.read_git_info(folder).branch == ""
    assert extensions.read_git_info(tmp_path) == extensions.GitInfo()


def test_git_version_matches_real_git_when_available(tmp_path):
    try:
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, capture_output=True)
        (tmp_path / "f").write_text("x")
        env = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@b",
               "PATH": "/usr/bin:/bin"}
        subprocess.run(["git", "-C", str(tmp_path), "add", "f"], check=True, capture_output=True, env=env)
        subprocess.run(["git", "-C", str(tmp_path), "commit", "-q", "-m", "m"], check=True, capture_output=True, env=env)
        head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()
        stamp = int(subprocess.run(["git", "-C", str(tmp_path), "log", "-1", "--format=%ct"], check=True,
                                   capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    info = extensions.read_git_info(tmp_path)
    assert info.commit_hash == head and info.commit_date == stamp


def test_preload_adds_flags_and_a_failing_one_is_reported(tmp_path):
    data = tmp_path / "data"
    ext_root = data / "extensions"
    _ext(ext_root, "good", {"preload.py": "def preload(parser):\n    parser.add_argument('--good-flag', default='x')\n"
                                          "    parser.add_argument('--lora-dir', default='ignored')\n"})
    _ext(ext_root, "bad-import", {"preload.py": "raise RuntimeError('nope')\n"})
    _ext(ext_root, "bad-call", {"preload.py": "def preload(parser):\n    raise ValueError('bad')\n"})
    _ext(ext_root, "off", {"preload.py": "def preload(parser):\n    parser.add_argument('--off-flag')\n"})
    (data / "config.json").write_text('{"disabled_extensions": ["off"]}')
    argv = ["--data-dir", str(data), "--good-flag", "y"]
    report = extensions.preload_hooks(argv, environ={}, repo_root=tmp_path / "repo")
    args = cmd_args.parse_args(argv, environ={}, preload=report.hooks)
    assert args.good_flag == "y"
    assert not hasattr(args, "off_flag")
    assert args.lora_dir.endswith("Lora")  # an existing flag is kept
    assert "RuntimeError: nope" in report.errors["bad-import"]
    assert "ValueError: bad" in report.errors["bad-call"]
    assert "good" not in report.errors
    # --disable-all-extensions: no preload runs
    assert extensions.preload_hooks([*argv, "--disable-all-extensions"], environ={}, repo_root=tmp_path / "repo").hooks == []


def test_install_py_runs_once_only_when_allowed(tmp_path):
    paths = _paths(tmp_path)
    marker = tmp_path / "ran.txt"
    folder = _ext(paths.extensions_dir, "needs-install", {
        "install.py": "import os, sys\n"
                      f"open({str(marker)!r}, 'a').write(os.environ.get('PIP_CONSTRAINT', '') + '|' + os.getcwd() + '\\n')\n"})
    _ext(paths.extensions_dir, "fails", {"install.py": "import sys\nprint('broken dependency')\nsys.exit(3)\n"})
    manager = _manager(paths)
    manager.run_installers(allowed=(False, "the server is reachable from the network"))
    assert not marker.exists()
    assert any("install.py not run" in n for n in manager.find("needs-install").notes)
    manager.run_installers(allowed=(True, "local"))
    lines = marker.read_text().splitlines()
    assert len(lines) == 1
    constraint, cwd = lines[0].split("|")
    assert Path(cwd) == folder
    pins = Path(constraint).read_text().splitlines()
    assert any(p.startswith("torch==") for p in pins)  # an installer cannot swap the torch build
    assert any(p.startswith("transformers==") for p in pins)  # nor any other core package
    assert any("exit code 3" in e and "broken dependency" in e for e in manager.find("fails").errors)
    manager.refresh()
    manager.run_installers(allowed=(True, "local"))
    assert len(marker.read_text().splitlines()) == 1  # recorded: not run again
    (folder / "install.py").write_text((folder / "install.py").read_text() + "# changed\n")
    manager.run_installers(allowed=(True, "local"))
    assert len(marker.read_text().splitlines()) == 2  # a changed installer runs again


def test_install_allowed_follows_the_network_flags(tmp_path):
    local = cmd_args.parse_args(["--data-dir", str(tmp_path)], environ={})
    listen = cmd_args.parse_args(["--data-dir", str(tmp_path), "--listen"], environ={})
    assert cmd_args.extension_install_allowed(local)[0] is True
    assert cmd_args.extension_install_allowed(listen)[0] is False


def test_web_files_route_serves_only_declared_files(tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    paths = _paths(tmp_path)
    folder = _ext(paths.extensions_dir, "web", {"javascript/a.js": "console.log(1)", "javascript/m.mjs": "export {}",
                                                 "javascript/notes.txt": "no", "style.css": "body{}", "secret.py": "x=1",
                                                 "other.css": "p{}"})
    _ext(paths.extensions_dir, "off", {"style.css": "b{}"})
    (folder / "javascript" / "link.js").symlink_to(tmp_path / "outside.js")
    (tmp_path / "outside.js").write_text("alert('outside')")
    options = Options(None)
    options.set("disabled_extensions", ["off"])
    manager = _manager(paths, options)
    app = FastAPI()
    extensions.add_routes(app, manager)
    client = TestClient(app)
    assert client.get("/sd_extensions/web/javascript/a.js").text == "console.log(1)"
    assert client.get("/sd_extensions/web/javascript/a.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/sd_extensions/web/style.css").headers["content-type"].startswith("text/css")
    for bad in ("web/secret.py", "web/other.css", "web/javascript/notes.txt", "web/javascript/link.js", "off/style.css",
                "web/%2e%2e/secret.py", "web/javascript%2f..%2f..%2fsecret.py", "nope/style.css"):
        assert client.get(f"/sd_extensions/{bad}").status_code == 404, bad
    head = extensions.head_html(manager)
    assert '<script type="text/javascript" src="/sd_extensions/web/javascript/a.js?v=' in head
    assert '<script type="module" src="/sd_extensions/web/javascript/m.mjs?v=' in head
    assert '<link rel="stylesheet" property="stylesheet" href="/sd_extensions/web/style.css?v=' in head
    assert "off" not in head and "link.js" not in head


def test_example_extension_layout():
    assert (EXAMPLE / "scripts" / "example_note.py").is_file()
    assert (EXAMPLE / "javascript" / "example.js").is_file() and (EXAMPLE / "style.css").is_file()
    meta = extensions.ExtensionMetadata.parse((EXAMPLE / "metadata.ini").read_text())
    assert meta.name == "sd-webui-example"
    # Not loaded by default: it lives outside extensions/.
    paths = Paths.from_args(SimpleNamespace(data_dir=str(REPO)), REPO, environ={})
    roots = [root for root, _ in extensions.extension_roots(paths)]
    assert EXAMPLE.parent not in roots
