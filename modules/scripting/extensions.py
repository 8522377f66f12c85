"""Extensions (spec §12.1): every folder in ``extensions-builtin/``, ``extensions/`` and ``<data>/extensions``.

An extension folder may hold ``scripts/*.py`` (loaded by :mod:`modules.scripts`), ``javascript/*.js`` /
``*.mjs`` and ``style.css`` (given to the page through :func:`add_routes` and ``head_html``),
``preload.py`` (``preload(parser)`` adds launch flags, see :func:`preload_hooks`), ``install.py`` (run once,
see :meth:`ExtensionManager.run_installers`) and ``metadata.ini`` (name, requirements, script order).

Which ones run: all of them except those named in the ``disabled_extensions`` setting; the setting
``disable_all_extensions`` ("all" / "extra") and the flags ``--disable-all-extensions`` /
``--disable-extra-extensions`` switch off all of them / all but the built-in ones. The version is the
git commit, read from the ``.git`` folder (git itself is never run, nothing is fetched).
"""
from __future__ import annotations

import argparse
import configparser
import hashlib
import logging
import os
import re
import shlex
import subprocess
import sys
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from modules.core import fileio

log = logging.getLogger(__name__)

INSTALL_TIMEOUT_S = 900
INSTALL_RECORD = "extensions-installed.json"
WEB_ROUTE = "/sd_extensions"
PAGE_ROUTE = "/sd_extensions_page"  # A1111's page helpers for extensions' scripts, and the settings they read
COMPAT_JS = Path(__file__).resolve().parents[2] / "javascript" / "a1111_compat.js"
WEB_SUFFIXES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}


# --- metadata.ini ---------------------------------------------------------------------------------

def _split_list(text: str | None) -> list[str]:
    return [x.strip() for x in (text or "").split(",") if x.strip()]


@dataclass
class ExtensionMetadata:
    """``metadata.ini``: ``[Extension] Name=, Requires=a, b|c``; ``[scripts/foo.py] Requires=, Before=, After=``.

    ``Requires`` items are extension names; ``b|c`` means either. ``Before``/``After`` name an extension
    (all of its scripts) or one script as ``<extension>/scripts/<file>.py``."""

    name: str | None = None
    requires: list[str] = field(default_factory=list)
    script_requires: dict[str, list[str]] = field(default_factory=dict)  # "scripts/foo.py" -> names
    script_before: dict[str, list[str]] = field(default_factory=dict)
    script_after: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> "ExtensionMetadata":
        cp = configparser.ConfigParser(interpolation=None)
        cp.read_string(text)
        meta = cls()
        if cp.has_section("Extension"):
            meta.name = (cp.get("Extension", "Name", fallback="") or "").strip() or None
            meta.requires = _split_list(cp.get("Extension", "Requires", fallback=""))
        for section in cp.sections():
            if section == "Extension":
                continue
            key = section.strip().replace("\\", "/")
            meta.script_requires[key] = _split_list(cp.get(section, "Requires", fallback=""))
            meta.script_before[key] = _split_list(cp.get(section, "Before", fallback=""))
            meta.script_after[key] = _split_list(cp.get(section, "After", fallback=""))
        return meta


# --- git, read from the .git folder ---------------------------------------------------------------

@dataclass(frozen=True)
class GitInfo:
    remote: str = ""
    branch: str = ""
    commit_hash: str = ""
    commit_date: int = 0

    @property
    def version(self) -> str:
        return self.commit_hash[:8]


def _git_dir(folder: Path) -> Path | None:
    dot = folder / ".git"
    if dot.is_dir():
        return dot
    if dot.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = dot.read_text(encoding="utf-8", errors="replace").strip()
        if text.startswith("gitdir:"):
            target = Path(text[len("gitdir:"):].strip())
            target = target if target.is_absolute() else (folder / target)
            return target if target.is_dir() else None
    return None


def _resolve_ref(git: Path, ref: str) -> str:
    for base in (git, _common_dir(git)):
        loose = base / ref
        if loose.is_file():
            return loose.read_text(encoding="utf-8", errors="replace").strip()
        packed = base / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.strip().split(" ", 1)
                if len(parts) == 2 and parts[1] == ref and re.fullmatch(r"[0-9a-f]{40,64}", parts[0]):
                    return parts[0]
    return ""


def _common_dir(git: Path) -> Path:
    common = git / "commondir"
    if common.is_file():
        target = Path(common.read_text(encoding="utf-8", errors="replace").strip())
        return target if target.is_absolute() else (git / target)
    return git


def _commit_date(git: Path, commit: str) -> int:
    """Committer time of a loose commit object (0 when it is packed: reading packs is not worth it here)."""
    path = _common_dir(git) / "objects" / commit[:2] / commit[2:]
    try:
        raw = zlib.decompress(path.read_bytes())
    except (OSError, zlib.error):
        return 0
    header, _, body = raw.partition(b"\x00")
    if not header.startswith(b"commit"):
        return 0
    for line in body.split(b"\n"):
        if line.startswith(b"committer "):
            m = re.search(rb"> (\d+) [+-]\d{4}$", line)
            return int(m.group(1)) if m else 0
        if not line:
            break
    return 0


def _remote_url(git: Path) -> str:
    config = _common_dir(git) / "config"
    if not config.is_file():
        return ""
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cp.read_string(config.read_text(encoding="utf-8", errors="replace"))
    except configparser.Error:
        return ""
    for section in cp.sections():
        if section.startswith("remote "):
            url = cp.get(section, "url", fallback="")
            if url:
                return url
    return ""


def read_git_info(folder: Path) -> GitInfo:
    """Remote, branch, commit and commit time of the git checkout at ``folder`` (empty when it is none)."""
    try:
        git = _git_dir(folder)
        if git is None:
            return GitInfo()
        head = (git / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
        if head.startswith("ref:"):
            ref = head[4:].strip()
            branch = ref.removeprefix("refs/heads/")
            commit = _resolve_ref(git, ref)
        else:
            branch, commit = "", head
        if not re.fullmatch(r"[0-9a-f]{40,64}", commit):
            commit = ""
        return GitInfo(_remote_url(git), branch, commit, _commit_date(git, commit) if commit else 0)
    except OSError as exc:
        log.warning("Could not read git information of %s: %s", folder, exc)
        return GitInfo()


# --- extensions -----------------------------------------------------------------------------------

@dataclass
class Extension:
    name: str  # the folder name (what ``disabled_extensions`` lists)
    path: Path
    is_builtin: bool
    canonical_name: str = ""
    metadata: ExtensionMetadata = field(default_factory=ExtensionMetadata)
    git: GitInfo = field(default_factory=GitInfo)
    errors: list[str] = field(default_factory=list)  # why (part of) it did not load, for the Extensions tab
    notes: list[str] = field(default_factory=list)  # things worth knowing that are not failures
    scripts_loaded: list[str] = field(default_factory=list)
    loaded: bool = False  # active when the scripts were imported (this run of the program)

    @property
    def version(self) -> str:
        return self.git.version

    # A1111's Extension attributes, read by other extensions.
    remote = property(lambda self: self.git.remote)
    commit_hash = property(lambda self: self.git.commit_hash)
    branch = property(lambda self: self.git.branch)

    def files(self, subdir: str, suffixes: Sequence[str]) -> list[Path]:
        """Files of ``subdir`` ending with one of ``suffixes``, sorted by name, that really live in the folder."""
        folder = self.path / subdir if subdir else self.path
        if not folder.is_dir():
            return []
        root = os.path.realpath(self.path)
        out = []
        for item in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
            if item.suffix.lower() in suffixes and item.is_file() and _within(os.path.realpath(item), root):
                out.append(item)
        return out


def _within(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


def extension_roots(paths: Any) -> list[tuple[Path, bool]]:
    """(folder, is_builtin) in A1111's order: built-in ones, the program's ``extensions/``, ``<data>/extensions``."""
    repo = Path(paths.repo_root)
    candidates = [(Path(getattr(paths, "extensions_builtin_dir", repo / "extensions-builtin")), True),
                  (repo / "extensions", False), (Path(paths.extensions_dir), False)]
    seen: set[str] = set()
    out = []
    for folder, builtin in candidates:
        key = os.path.normcase(os.path.abspath(folder))
        if key not in seen:
            seen.add(key)
            out.append((folder, builtin))
    return out


def discover(roots: Iterable[tuple[Path, bool]]) -> list[Extension]:
    """Every folder under the roots, sorted by name within a root; a second folder with the same canonical
    name (its metadata Name, else its lower-cased folder name) is left out with a warning."""
    found: list[Extension] = []
    names: dict[str, Extension] = {}
    for root, builtin in roots:
        if not root.is_dir():
            continue
        for folder in sorted(root.iterdir(), key=lambda p: p.name.lower()):
            if not folder.is_dir() or folder.name.startswith("."):
                continue
            ext = Extension(folder.name, folder, builtin)
            meta_file = folder / "metadata.ini"
            if meta_file.is_file():
                try:
                    ext.metadata = ExtensionMetadata.parse(meta_file.read_text(encoding="utf-8", errors="replace"))
                except configparser.Error as exc:
                    ext.errors.append(f"{meta_file}: unreadable metadata ({exc.__class__.__name__}: {exc})")
            ext.canonical_name = (ext.metadata.name or folder.name).lower().strip()
            if ext.canonical_name in names:
                log.warning("Extension %s: the same name as %s; left out", folder, names[ext.canonical_name].path)
                continue
            names[ext.canonical_name] = ext
            ext.git = read_git_info(folder)
            found.append(ext)
    return found


def disable_mode(args: Any, options: Any) -> str:
    """"all", "extra" or "none": the flags win over the setting."""
    if getattr(args, "disable_all_extensions", False):
        return "all"
    if getattr(args, "disable_extra_extensions", False):
        return "extra"
    setting = options.get("disable_all_extensions", "none") if options is not None else "none"
    return setting if setting in ("all", "extra") else "none"


def _disabled_names(options: Any) -> list[str]:
    value = options.get("disabled_extensions", []) if options is not None else []
    return [str(x) for x in value] if isinstance(value, list) else []


class ExtensionManager:
    """The extensions of one Engine: discovery, enable/disable, installers, web files."""

    def __init__(self, paths: Any, options: Any, args: Any) -> None:
        self.paths = paths
        self.options = options
        self.args = args
        self._lock = threading.RLock()
        self._items: list[Extension] | None = None
        self.preload_errors: dict[str, str] = {}  # extension name -> why its preload.py failed
        self.install_failed: set[str] = set()  # installers that failed in this run: switched off until the next start

    # -- listing ---------------------------------------------------------------------------------
    def refresh(self) -> list[Extension]:
        with self._lock:
            self._items = discover(extension_roots(self.paths))
            for ext in self._items:
                if ext.name in self.preload_errors:
                    ext.errors.append(f"preload.py: {self.preload_errors[ext.name]}")
            return list(self._items)

    def record_preload_errors(self, errors: Mapping[str, str]) -> None:
        """Failures of ``preload.py`` files (they run before the Engine exists), for the Extensions tab."""
        with self._lock:
            self.preload_errors.update(errors)
            for name, error in errors.items():
                ext = self.find(name)
                if ext is not None and f"preload.py: {error}" not in ext.errors:
                    ext.errors.append(f"preload.py: {error}")

    def list(self) -> list[Extension]:
        with self._lock:
            return list(self._items) if self._items is not None else self.refresh()

    def find(self, name: str) -> Extension | None:
        low = name.lower()
        return next((e for e in self.list() if e.name == name or e.canonical_name == low), None)

    def disabled_reason(self, ext: Extension) -> str | None:
        """Why ``ext`` does not run, or None when it does."""
        mode = disable_mode(self.args, self.options)
        if mode == "all":
            return "all extensions are disabled (--disable-all-extensions or the setting)"
        if mode == "extra" and not ext.is_builtin:
            return "extensions other than the built-in ones are disabled (--disable-extra-extensions or the setting)"
        if ext.name in _disabled_names(self.options):
            return "disabled in the Extensions tab"
        if ext.name in self.install_failed:
            return "its installer failed (see the errors); switched off until the next start"
        return None

    def is_enabled(self, ext: Extension) -> bool:
        return ext.name not in _disabled_names(self.options)

    def active(self) -> list[Extension]:
        """The extensions that run, in load order; an unmet ``Requires`` is recorded as an error and left out."""
        candidates = [e for e in self.list() if self.disabled_reason(e) is None]
        names = {e.canonical_name for e in candidates}
        out = []
        for ext in candidates:
            missing = [req for req in ext.metadata.requires
                       if not any(alt.strip().lower() in names for alt in req.split("|"))]
            if missing:
                message = f"requires {', '.join(missing)}, which is not installed or is disabled"
                if message not in ext.errors:
                    ext.errors.append(message)
                continue
            out.append(ext)
        return out

    def set_enabled(self, enabled_names: Iterable[str]) -> list[str]:
        """Persist ``disabled_extensions`` = every listed extension not in ``enabled_names``; returns it.

        Takes effect at the next start (scripts are imported once)."""
        enabled = set(enabled_names)
        known = [e.name for e in self.list()]
        unknown_disabled = [n for n in _disabled_names(self.options) if n not in known]  # kept: maybe on another disk
        disabled = [n for n in known if n not in enabled] + unknown_disabled
        self.options.set("disabled_extensions", disabled)
        if getattr(self.options, "path", None) is not None:
            self.options.save()
        return disabled

    # -- installers ------------------------------------------------------------------------------
    def run_installers(self, allowed: tuple[bool, str] | None = None,
                       runner: Callable[[Extension, Path], tuple[int, str]] | None = None) -> None:
        """Run each active extension's ``install.py`` once (again only when the file or the commit changes).

        ``allowed`` is :func:`modules.cmd_args.extension_install_allowed`'s answer; when it says no, the
        installer is not run and the extension says why. Done installs are recorded in
        ``<cache>/extensions-installed.json``."""
        from modules.settings import cmd_args

        allowed = allowed if allowed is not None else cmd_args.extension_install_allowed(self.args)
        record_path = Path(self.paths.cache_dir) / INSTALL_RECORD
        try:
            record = fileio.read_json(record_path, {})
            record = record if isinstance(record, dict) else {}
        except (ValueError, OSError):
            record = {}
        changed = False
        for ext in self.active():
            script = ext.path / "install.py"
            if not script.is_file():
                script = ext.path / "requirements.txt"
            if not script.is_file():
                continue
            key = f"{hashlib.sha256(script.read_bytes()).hexdigest()[:16]}:{ext.git.commit_hash}"
            if record.get(ext.name) == key:
                continue
            if not allowed[0]:
                ext.notes.append(f"install.py not run: {allowed[1]}")
                continue
            log.info("Running install.py of extension %s", ext.name)
            code, output = (runner or self._run_install)(ext, script)
            if code == 0:
                record[ext.name] = key
                changed = True
                ext.notes.append("install.py ran")
            else:
                from modules.scripting import installers

                message = installers.explain_failure(code, output)
                log.error("Extension %s: %s", ext.name, message)
                ext.errors.append(message)
                self.install_failed.add(ext.name)
        if changed:
            fileio.atomic_write_json(record_path, record)

    def _run_install(self, ext: Extension, script: Path) -> tuple[int, str]:
        from modules.scripting import installers

        constraints = installers.write_constraints(Path(self.paths.repo_root), Path(self.paths.cache_dir))
        return installers.run_installer(ext.path, Path(self.paths.repo_root), constraints)

    # -- web files -------------------------------------------------------------------------------
    def web_files(self) -> list[tuple[Extension, str, Path]]:
        """(extension, relative path, file) of every script and stylesheet the page loads, in load order."""
        out = []
        for ext in self.active():
            for item in ext.files("javascript", (".js", ".mjs")):
                out.append((ext, f"javascript/{item.name}", item))
            for item in ext.files("", (".css",)):
                if item.name == "style.css":
                    out.append((ext, item.name, item))
        return out

    def web_file(self, name: str, relpath: str) -> Path | None:
        """The file ``/sd_extensions/<name>/<relpath>`` names, only if it is one of :meth:`web_files`."""
        for ext, rel, path in self.web_files():
            if ext.name == name and rel == relpath:
                return path
        return None

    # -- API -------------------------------------------------------------------------------------
    def api_items(self) -> list[dict[str, Any]]:
        return [{"name": e.name, "remote": e.git.remote, "branch": e.git.branch, "commit_hash": e.git.commit_hash,
                 "version": e.version, "commit_date": e.git.commit_date, "enabled": self.disabled_reason(e) is None}
                for e in self.list()]


# --- preload.py -----------------------------------------------------------------------------------

@dataclass
class PreloadReport:
    hooks: list[Callable[[Any], None]]
    errors: dict[str, str]  # extension name -> reason


def _pre_args(argv: Sequence[str]) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--data-dir", default=None)
    pre.add_argument("--ui-settings-file", default=None)
    pre.add_argument("--disable-all-extensions", action="store_true")
    pre.add_argument("--disable-extra-extensions", action="store_true")
    ns, _ = pre.parse_known_args(list(argv))
    return ns


def preload_hooks(argv: Sequence[str] | None, environ: Mapping[str, str] = os.environ,
                  repo_root: str | os.PathLike | None = None) -> PreloadReport:
    """The ``preload(parser)`` functions of the active extensions, to pass to ``cmd_args.parse_args``.

    Flags are not parsed yet, so the data folder, the settings file and the disable flags are read
    here the way ``parse_args`` will read them. A ``preload.py`` that fails to import, or whose
    ``preload`` raises, is reported and skipped: the program still starts."""
    from types import SimpleNamespace

    from modules.settings import cmd_args
    from modules.scripting import loading as script_loading

    args = list(sys.argv[1:] if argv is None else argv) + shlex.split(environ.get("COMMANDLINE_ARGS", ""))
    ns = _pre_args(args)
    repo = Path(repo_root) if repo_root is not None else cmd_args.REPO_ROOT
    data = Path(ns.data_dir).absolute() if ns.data_dir else Path(cmd_args.default_data_dir())
    settings_file = Path(ns.ui_settings_file) if ns.ui_settings_file else data / "config.json"
    try:
        raw = fileio.read_json(settings_file, {})
        raw = raw if isinstance(raw, dict) else {}
    except (ValueError, OSError):
        raw = {}
    settings = {"disabled_extensions": raw.get("disabled_extensions", []),
                "disable_all_extensions": raw.get("disable_all_extensions", "none")}
    paths = SimpleNamespace(repo_root=repo, extensions_builtin_dir=repo / "extensions-builtin",
                            extensions_dir=data / "extensions", cache_dir=data / "cache")
    manager = ExtensionManager(paths, settings, ns)
    report = PreloadReport([], {})
    for ext in manager.active():
        script = ext.path / "preload.py"
        if not script.is_file():
            continue
        try:
            module = script_loading.load_module(script, f"preload_{ext.canonical_name}", ext.path)
        except Exception as exc:
            report.errors[ext.name] = f"{type(exc).__name__}: {exc}"
            log.error("Extension %s: preload.py failed: %s", ext.name, exc)
            continue
        fn = getattr(module, "preload", None)
        if callable(fn):
            report.hooks.append(_guarded_preload(ext.name, fn, report.errors))
    return report


def _guarded_preload(name: str, fn: Callable[[Any], None], errors: dict[str, str]) -> Callable[[Any], None]:
    def hook(parser: Any) -> None:
        try:
            fn(parser)
        except Exception as exc:
            errors[name] = f"preload() raised {type(exc).__name__}: {exc}"
            log.error("Extension %s: preload() failed: %s", name, exc)

    return hook


# --- web routes -----------------------------------------------------------------------------------

def add_routes(app: Any, manager: "ExtensionManager") -> None:
    """``GET /sd_extensions/<extension>/<javascript/x.js | style.css>``: only the files the page is told to load
    (an active extension's ``javascript/*.js|*.mjs`` and ``style.css`` whose real path stays in its folder).
    Call before the Gradio mount at ``/``."""
    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse

    @app.get(PAGE_ROUTE + "/a1111.js", include_in_schema=False)
    def a1111_helpers():
        return FileResponse(COMPAT_JS, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    @app.get(PAGE_ROUTE + "/opts", include_in_schema=False)
    def opts_for_scripts():
        # A1111's global `opts` in the page: every setting's value (the page is behind the same auth).
        try:
            return JSONResponse(jsonable_encoder(manager.options.data()))
        except (TypeError, ValueError):
            return JSONResponse({k: v for k, v in manager.options.data().items()
                                 if isinstance(v, (str, int, float, bool, list, type(None)))})

    @app.get(WEB_ROUTE + "/{name}/{relpath:path}", include_in_schema=False)
    def extension_file(name: str, relpath: str):
        path = manager.web_file(name, relpath)
        if path is None:
            return PlainTextResponse("Not found", status_code=404)
        return FileResponse(path, media_type=WEB_SUFFIXES.get(path.suffix.lower(), "text/plain"),
                            headers={"Cache-Control": "no-cache"})


def head_html(manager: ExtensionManager) -> str:
    """``<script>`` / ``<link>`` tags for the active extensions' web files."""
    from html import escape
    from urllib.parse import quote

    # A1111's page helpers (gradioApp, onUiLoaded, opts...) first: extensions' scripts call them as they load.
    try:
        helpers_stamp = int(COMPAT_JS.stat().st_mtime)
    except OSError:
        helpers_stamp = 0
    tags = [f'<script type="text/javascript" src="{PAGE_ROUTE}/a1111.js?v={helpers_stamp}"></script>']
    for ext, rel, path in manager.web_files():
        try:
            stamp = int(path.stat().st_mtime)
        except OSError:
            continue
        url = escape(f"{WEB_ROUTE}/{quote(ext.name)}/{quote(rel)}?v={stamp}", quote=True)
        if rel.endswith(".css"):
            tags.append(f'<link rel="stylesheet" property="stylesheet" href="{url}">')
        elif rel.endswith(".mjs"):
            tags.append(f'<script type="module" src="{url}"></script>')
        else:
            tags.append(f'<script type="text/javascript" src="{url}"></script>')
    return "\n".join(tags)
