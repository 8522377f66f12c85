"""A1111's ``networks`` module (its built-in Lora extension): ``loaded_networks``, ``available_networks``,
``load_networks``... over the Engine's LoRA manager. A thin facade; the code lives in
``modules.scripting.a1111_lora``."""
from modules.networks.extra_networks_lora import ExtraNetworkLora  # noqa: F401
from modules.scripting import runtime as _runtime
from modules.scripting.a1111_lora import (  # noqa: F401
    MODULE_CLASSES as module_types, Network, NetworkModule, NetworkOnDisk, list_available_networks, load_networks,
    network_apply_weights, network_restore_weights_from_backup, purge_networks_from_memory,
    NETWORKS_RESOLVERS as _RESOLVERS,
)


def __getattr__(name):
    resolver = _RESOLVERS.get(name)
    if resolver is None:
        raise AttributeError(f"module 'networks' has no attribute {name!r}")
    return resolver(_runtime.current())
