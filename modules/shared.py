"""A1111's ``modules.shared``: the running app's globals (``opts``, ``cmd_opts``, ``state``, ``sd_model``...).

A thin facade: every name is looked up on the running Engine when it is read (see
``modules.scripting.runtime`` and ``modules.scripting.a1111_shared``); nothing is stored here."""
import logging

from modules.core.fileio import natural_sort_key  # noqa: F401
from modules.scripting import runtime as _runtime
from modules.scripting.a1111_options import OptionInfo, OptionHTML, options_section  # noqa: F401
from modules.scripting.a1111_shared import SHARED_RESOLVERS as _RESOLVERS, TotalTqdm as _TotalTqdm, walk_files  # noqa: F401

log = logging.getLogger("sd")
total_tqdm = _TotalTqdm()
hide_dirs = {"visible": True}
xformers_available = False


def reload_gradio_theme(theme_name=None):
    """A1111 rebuilds the Gradio theme; this app's page has its own."""


def __getattr__(name):
    resolver = _RESOLVERS.get(name)
    if resolver is None:
        raise AttributeError(f"module 'modules.shared' has no attribute {name!r}")
    return resolver(_runtime.current())
