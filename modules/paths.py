"""A1111's ``modules.paths``: the data folders. A thin facade; the code lives in ``modules.settings.paths``."""
from modules.settings.paths import (  # noqa: F401
    OUTPUT_SUBDIRS, expand_styles_files, Paths,
)
