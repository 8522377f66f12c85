"""A1111's ``modules.scripts_postprocessing``: the Extras script API. A thin facade; the code lives in
``modules.scripting.postprocessing_scripts``."""
from modules.scripting.postprocessing_scripts import (  # noqa: F401
    ScriptPostprocessing, PostprocessedImage, PostprocessedImageSharedInfo,
)
