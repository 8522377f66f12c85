"""The `<hypernet:NAME:M>` tag: hands the prompt's hypernetwork tags to the engine's NetworkManager."""
from __future__ import annotations

from typing import Any

from modules.networks.extra_networks import ExtraNetwork, ExtraNetworkParams


class ExtraNetworkHypernet(ExtraNetwork):
    aliases = ()

    def __init__(self, manager: Any):
        super().__init__("hypernet")
        self.manager = manager

    def activate(self, context: Any, params_list: list[ExtraNetworkParams]) -> list[str]:
        return self.manager.activate_hypernets(params_list)

    def deactivate(self, context: Any) -> None:
        """Hypernetworks stay installed until the next request asks for a different set."""
