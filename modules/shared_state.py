"""A1111's ``modules.shared_state``: the class of ``shared.state`` (the running Engine's job state as A1111 shows
it). A thin facade; the code lives in ``modules.scripting.a1111_shared``."""
from modules.scripting.a1111_shared import StateView as State  # noqa: F401
