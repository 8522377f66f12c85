"""A1111's ``modules.extensions``: the installed extensions of the running app (``extensions``, ``active()``,
``extensions_dir``, ``extensions_builtin_dir``). A thin facade; the code lives in ``modules.scripting.extensions``
and ``modules.scripting.a1111_misc``."""
from modules.scripting.extensions import Extension, ExtensionMetadata  # noqa: F401
from modules.scripting.a1111_misc import active_extensions as active, list_extensions  # noqa: F401
from modules.scripting.a1111_shared import extensions_attr as _resolve


def __getattr__(name):
    return _resolve(name)
