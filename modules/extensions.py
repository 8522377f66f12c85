"""A1111's ``modules.extensions``: the installed extensions. A thin facade; the code lives in ``modules.scripting.extensions``."""
from modules.scripting.extensions import (  # noqa: F401
    INSTALL_TIMEOUT_S, INSTALL_RECORD, WEB_ROUTE, WEB_SUFFIXES, ExtensionMetadata, GitInfo, read_git_info,
    Extension, extension_roots, discover, disable_mode, ExtensionManager, PreloadReport, preload_hooks,
    add_routes, head_html,
)
