"""Importing a script or preload file of an extension by path (A1111's ``script_loading.load_module``)."""
from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType


def module_name_for(prefix: str, path: Path) -> str:
    """A unique, importable module name: scripts of different extensions may share a file name."""
    stem = re.sub(r"\W", "_", f"{prefix}_{path.stem}")
    return f"webui_ext_{stem}"


def load_module(path: str | os.PathLike, name: str, basedir: str | os.PathLike | None = None) -> ModuleType:
    """Execute ``path`` as module ``name`` and return it.

    ``basedir`` (the extension's folder) goes to the front of ``sys.path`` and stays there, as in A1111:
    extensions import their own helper packages by plain name, also later, from inside callbacks. The
    module is put in ``sys.modules`` while it runs (dataclasses and pickling look it up there) and removed
    again if it fails."""
    path = Path(path)
    if basedir is not None:
        base = str(Path(basedir))
        if base not in sys.path:
            sys.path.insert(0, base)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path}: not a loadable Python file")
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is not None:
            sys.modules[name] = previous
        else:
            sys.modules.pop(name, None)
        raise
    return module
