"""A1111's ``extra_networks_lora`` module (built-in Lora extension): the ``<lora:...>`` tag's handler. A thin
facade; the code lives in ``modules.networks.extra_networks_lora``."""
from modules.networks.extra_networks_lora import ExtraNetworkLora  # noqa: F401
