"""The `<lora:...>` tag (alias `<lyco:...>`): hands the prompt's LoRA tags to the engine's NetworkManager."""
from __future__ import annotations

from typing import Any

from modules.networks.extra_networks import ExtraNetwork, ExtraNetworkParams


class ExtraNetworkLora(ExtraNetwork):
    aliases = ("lyco",)

    def __init__(self, manager: Any):
        super().__init__("lora")
        self.manager = manager

    def activate(self, context: Any, params_list: list[ExtraNetworkParams]) -> list[str]:
        return self.manager.activate_loras(params_list)

    def deactivate(self, context: Any) -> None:
        """LoRAs stay merged after a generation: the next request's activation changes only what differs."""
