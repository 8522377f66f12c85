"""A1111's ``modules.generation_parameters_copypaste`` (renamed ``infotext_utils`` in 1.8): parsing infotexts
and the "send to" paste buttons. A thin facade; the code lives in ``modules.core.infotext`` and
``modules.scripting.a1111_ui``."""
from modules.infotext_utils import *  # noqa: F401,F403
from modules.infotext_utils import __getattr__  # noqa: F401
