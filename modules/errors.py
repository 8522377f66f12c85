"""A1111's ``modules.errors``: reporting an extension's error in the log. A thin facade; the code lives in
``modules.scripting.a1111_errors``."""
from modules.scripting.a1111_errors import report, display, display_once, print_error_explanation, run  # noqa: F401
