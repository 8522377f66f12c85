"""A1111's ``modules.ui_common``: ``plaintext_to_html``, ``save_files`` and the folder-opening helper. A thin
facade; the code lives in ``modules.scripting.a1111_ui`` and ``modules.scripting.a1111_misc``."""
from modules.engine.postprocessing import plaintext_to_html  # noqa: F401
from modules.scripting.a1111_misc import open_folder  # noqa: F401
from modules.scripting.a1111_ui import create_refresh_button, setup_dialog, save_files  # noqa: F401
