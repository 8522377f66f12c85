"""A1111's ``extra_networks.register_extra_network``: an extension's handler for its own ``<name:...>`` prompt tags.

A1111 hands its handlers ``p``; the Engine's registry hands its handlers the Engine. So an extension's handler is
registered wrapped (:class:`ExtensionNetwork`): when the pipeline activates the batch's tags, the wrapper calls the
extension's ``activate(p, params_list)`` with the ``p`` of the generation running on that Engine (pushed by the
script layer's hooks while a generation runs), and its ``deactivate(p)`` when the generation ends, as A1111 does
at the end of ``process_images``."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from modules.networks.extra_networks import ExtraNetwork
from modules.scripting import runtime

if TYPE_CHECKING:
    from modules.engine.engine import Engine

log = logging.getLogger(__name__)


def _stack(engine: "Engine") -> list:
    return runtime.engine_state(engine).setdefault("running_p", [])


def push_p(engine: "Engine", p: Any) -> None:
    _stack(engine).append(p)


def pop_p(engine: "Engine", p: Any) -> None:
    stack = _stack(engine)
    stack[:] = [q for q in stack if q is not p]


def running_p(engine: "Engine") -> Any:
    stack = _stack(engine)
    return stack[-1] if stack else None


class ExtensionNetwork(ExtraNetwork):
    """An extension's A1111 handler in the Engine's registry."""

    def __init__(self, handler: Any) -> None:
        super().__init__(str(handler.name))
        self.handler = handler

    def activate(self, context: Any, params_list: list) -> list[str] | None:
        p = running_p(context)
        if p is None:  # a generation without the script layer: A1111's handlers need p
            return None
        self.handler.activate(p, params_list)
        return None

    def deactivate(self, context: Any) -> None:
        p = running_p(context)
        if p is not None:
            self.handler.deactivate(p)


def _as_registered(extra_network: Any) -> ExtraNetwork:
    """The app's own handlers (A1111's built-in Lora names re-register ours) go in as they are; an extension's is
    wrapped to get ``p``."""
    if isinstance(extra_network, ExtraNetwork) and type(extra_network).__module__.startswith("modules."):
        return extra_network
    return ExtensionNetwork(extra_network)


def register_extra_network(extra_network: Any) -> None:
    runtime.current().extra_networks.register(_as_registered(extra_network))


def register_extra_network_alias(extra_network: Any, alias: str) -> None:
    registry = runtime.current().extra_networks
    if registry.get(extra_network.name) is None:
        registry.register(_as_registered(extra_network))
    registry.register(registry.get(extra_network.name), aliases=[alias])


def deactivate_extension_networks(engine: "Engine", p: Any) -> None:
    """Every extension handler's ``deactivate(p)`` (the generation is over); a failing one is logged."""
    for network in engine.extra_networks:
        if isinstance(network, ExtensionNetwork):
            try:
                network.handler.deactivate(p)
            except Exception:  # noqa: BLE001 - an extension's failure must not fail the finished generation
                log.exception("Extra network %r: deactivate() failed", network.name)
