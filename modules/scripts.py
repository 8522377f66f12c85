"""A1111's ``modules.scripts``: the Script API, ``basedir()`` and the running app's script runners
(``scripts_txt2img``, ``scripts_img2img``, ``scripts_data``). A thin facade; the code lives in
``modules.scripting.scripts`` and ``modules.scripting.a1111_scripts``."""
from modules import script_callbacks  # noqa: F401 - A1111's scripts module re-exports it
from modules.scripting.scripts import (  # noqa: F401
    AlwaysVisible, MaskBlendArgs, PostProcessMaskOverlayArgs, PostprocessImageArgs, PostprocessBatchListArgs,
    PostSampleArgs, Script, ScriptFile, ScriptClassData, ScriptRunner,
)
from modules.scripting.a1111_scripts import (  # noqa: F401
    OnComponent, basedir, list_scripts, list_files_with_name, RESOLVERS as _RESOLVERS,
)
from modules.scripting import runtime as _runtime


def __getattr__(name):
    resolver = _RESOLVERS.get(name)
    if resolver is None:
        raise AttributeError(f"module 'modules.scripts' has no attribute {name!r}")
    return resolver(_runtime.current())
