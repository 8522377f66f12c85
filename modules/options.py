"""A1111's ``modules.options``: OptionInfo and the settings store. A thin facade; the code lives in ``modules.settings.options``."""
from modules.settings.options import (  # noqa: F401
    Choices, OptionInfo, OPTION_TABLE, check_value, Options,
)
