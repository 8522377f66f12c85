"""A1111's ``modules.scripts``: the Script API. A thin facade; the code lives in ``modules.scripting.scripts``."""
from modules.scripting.scripts import (  # noqa: F401
    AlwaysVisible, HOOKS, PostprocessImageArgs, PostprocessBatchListArgs, PostSampleArgs, Script, ScriptFile,
    ScriptClassData, LoadError, order_script_files, ScriptManager, title_of, arg_info, ScriptRunner,
)
