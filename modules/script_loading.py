"""A1111's ``modules.script_loading``: loading a script file as a module. A thin facade; the code lives in ``modules.scripting.loading``."""
from modules.scripting.loading import (  # noqa: F401
    module_name_for, load_module,
)
