"""A1111's ``modules.ui_extra_networks``: ``ExtraNetworksPage`` and ``register_page`` for an extension's own card
page (a tab of the extra networks browser), ``quote_js``; ``extra_pages`` and ``allowed_dirs`` are read from the
running Engine. A thin facade; the code lives in ``modules.scripting.a1111_ui_extra_networks``."""
from modules.scripting.a1111_ui_extra_networks import (  # noqa: F401
    ExtraNetworksPage, register_page, quote_js, initialize, intialize, pages_in_preferred_order,
    RESOLVERS as _RESOLVERS,
)
from modules.scripting import runtime as _runtime


def __getattr__(name):
    resolver = _RESOLVERS.get(name)
    if resolver is None:
        raise AttributeError(f"module 'modules.ui_extra_networks' has no attribute {name!r}")
    return resolver(_runtime.current())
