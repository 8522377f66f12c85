"""A1111's ``modules.options``: ``OptionInfo(default, label, component, component_args, ...)``, ``options_section``
and the settings store. A thin facade; the code lives in ``modules.scripting.a1111_options`` (A1111's forms) and
``modules.settings.options`` (this app's typed settings)."""
from modules.scripting.a1111_options import OptionInfo, OptionHTML, options_section  # noqa: F401
from modules.settings.options import Options  # noqa: F401
