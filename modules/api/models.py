"""A1111's ``modules.api.models``: the request and response models. A thin facade; the code lives in
``modules.server.api.models``."""
from modules.server.api.models import *  # noqa: F401,F403
