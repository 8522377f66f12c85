"""A1111's ``modules.shared``: the running app's globals (``opts``, ``cmd_opts``, ``state``, ``sd_model``...).

A thin facade: every name is looked up on the running Engine when it is read (see
``modules.scripting.runtime`` and ``modules.scripting.a1111_shared``); nothing is stored here."""
from modules.core.fileio import natural_sort_key  # noqa: F401
from modules.scripting import runtime as _runtime
from modules.scripting.a1111_misc import log, total_tqdm, hide_dirs, xformers_available, reload_gradio_theme  # noqa: F401
from modules.scripting.a1111_options import OptionInfo, OptionHTML, options_section  # noqa: F401
from modules.scripting.a1111_shared import SHARED_RESOLVERS as _RESOLVERS, walk_files  # noqa: F401


def __getattr__(name):
    resolver = _RESOLVERS.get(name)
    if resolver is None:
        raise AttributeError(f"module 'modules.shared' has no attribute {name!r}")
    return resolver(_runtime.current())
