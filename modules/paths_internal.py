"""A1111's ``modules.paths_internal``: the same folders as ``modules.paths``. A thin facade."""
from modules.paths import __getattr__  # noqa: F401
