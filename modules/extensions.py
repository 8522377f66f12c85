"""A1111's ``modules.extensions``: the installed extensions of the running app (``extensions``, ``active()``,
``extensions_dir``, ``extensions_builtin_dir``). A thin facade; the code lives in ``modules.scripting.extensions``."""
from modules.scripting.extensions import Extension, ExtensionMetadata  # noqa: F401
from modules.scripting import runtime as _runtime


def active():
    return _runtime.host().extensions.active()


def list_extensions():
    """A1111 re-reads the extension folders here."""
    _runtime.host().extensions.refresh()


def __getattr__(name):
    engine = _runtime.current()
    if name == "extensions":
        return _runtime.host(engine).extensions.list()
    if name == "extensions_dir":
        return str(engine.paths.extensions_dir)
    if name == "extensions_builtin_dir":
        return str(engine.paths.extensions_builtin_dir)
    raise AttributeError(f"module 'modules.extensions' has no attribute {name!r}")
