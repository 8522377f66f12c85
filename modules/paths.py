"""A1111's ``modules.paths``: the program and data folders of the running Engine (``script_path``,
``data_path``, ``models_path``, ``extensions_dir``...). A thin facade; the code lives in
``modules.settings.paths`` and ``modules.scripting.a1111_shared``."""
from modules.settings.paths import OUTPUT_SUBDIRS, expand_styles_files, Paths  # noqa: F401
from modules.scripting import runtime as _runtime
from modules.scripting.a1111_shared import resolve_path_attr as _resolve


def __getattr__(name):
    return _resolve(_runtime.current(), name)
