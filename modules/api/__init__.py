"""A1111's ``modules.api`` package (``modules.api.api``, ``modules.api.models``): thin facades over this app's
HTTP API in ``modules.server.api``."""
