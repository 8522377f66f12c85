"""A1111's ``modules.shared_options``: ``options_templates`` and the option helpers (A1111 1.7+ keeps them here). A
thin facade; the code lives in ``modules.scripting.a1111_options`` and ``modules.scripting.a1111_shared``."""
from modules.scripting import runtime as _runtime
from modules.scripting.a1111_options import OptionHTML, OptionInfo, options_section  # noqa: F401
from modules.scripting.a1111_shared import SHARED_RESOLVERS as _RESOLVERS


def __getattr__(name):
    if name != "options_templates":
        raise AttributeError(f"module 'modules.shared_options' has no attribute {name!r}")
    return _RESOLVERS[name](_runtime.current())
