"""A1111's ``modules.extra_networks``: <name:args> tags and the ExtraNetwork base. A thin facade; the code lives in ``modules.networks.extra_networks``."""
from modules.networks.extra_networks import (  # noqa: F401
    re_extra_net, ExtraNetworkParams, parse_prompt, add_default_networks, parse_prompts, ExtraNetwork,
    ExtraNetworkRegistry,
)
from modules.scripting.a1111_extra_networks import register_extra_network, register_extra_network_alias  # noqa: F401,E402
