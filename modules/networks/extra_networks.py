"""The handlers of extra-network prompt tags (spec §5.1), in a registry keyed by the tag name.

The tags themselves are parsed by :mod:`modules.core.network_tags` (re-exported here under A1111's names).
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from modules.core.network_tags import (  # noqa: F401  (A1111's names for them live here)
    ExtraNetworkParams, add_default_networks, parse_prompt, parse_prompts, re_extra_net,
)

log = logging.getLogger(__name__)

class ExtraNetwork:
    """A handler for one tag name. Subclasses override `activate` and `deactivate`.

    ``activate(context, [])`` means "nothing of mine is asked for": unload whatever is loaded. `activate` may
    return a list of warnings (names not found, files left out) for the result shown to the user.
    """

    def __init__(self, name: str):
        self.name = name

    def activate(self, context: Any, params_list: list[ExtraNetworkParams]) -> list[str] | None:
        raise NotImplementedError

    def deactivate(self, context: Any) -> None:
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"


def _reason(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class ExtraNetworkRegistry:
    """The handlers an app (or a test) knows, by name and alias (``lyco`` → ``lora``)."""

    def __init__(self):
        self._networks: dict[str, ExtraNetwork] = {}
        self._aliases: dict[str, str] = {}

    def register(self, network: ExtraNetwork, aliases: Iterable[str] = ()) -> None:
        self._networks[network.name] = network
        for alias in aliases:
            self._aliases[alias] = network.name

    def get(self, name_or_alias: str) -> ExtraNetwork | None:
        network = self._networks.get(name_or_alias)
        if network is None and name_or_alias in self._aliases:
            network = self._networks.get(self._aliases[name_or_alias])
        return network

    def __iter__(self):
        return iter(list(self._networks.values()))

    def _resolve(self, data: dict[str, list[ExtraNetworkParams]], warnings: list[str] | None):
        """Group the tags by handler: ``{network: (tag names, params)}``; unknown tags become warnings."""
        resolved: dict[ExtraNetwork, tuple[list[str], list[ExtraNetworkParams]]] = {}
        for tag, params in data.items():
            network = self.get(tag)
            if network is None:
                if warnings is not None:
                    warnings.append(f"Unknown extra network <{tag}:...>: no handler is registered for '{tag}'")
                continue
            tags, merged = resolved.setdefault(network, ([], []))
            tags.append(tag)
            merged.extend(params)
        return resolved

    def activate(self, context: Any, data: dict[str, list[ExtraNetworkParams]]) -> list[str]:
        """Activate the mentioned networks with their params, then every other one with ``[]``.

        Returns warnings; a handler that raises does not stop the others. A handler that failed is then
        activated with ``[]`` like an unmentioned one, so that it is left with nothing half-loaded.
        """
        warnings: list[str] = []
        activated = set()
        for network, (tags, params) in self._resolve(data, warnings).items():
            try:
                warnings += network.activate(context, params) or []
                activated.add(network)
            except Exception as e:
                log.exception("activating extra network %s", network.name)
                warnings.append(f"Extra network <{'/'.join(tags)}:...> could not be activated: {_reason(e)}")
        for network in self:
            if network in activated:
                continue
            try:
                warnings += network.activate(context, []) or []
            except Exception as e:
                log.exception("activating unmentioned extra network %s with no params", network.name)
                warnings.append(f"Extra network '{network.name}' could not be reset: {_reason(e)}")
        return warnings

    def deactivate(self, context: Any, data: dict[str, list[ExtraNetworkParams]]) -> list[str]:
        """Call ``deactivate`` on every registered network (mentioned ones first); returns warnings."""
        mentioned = list(self._resolve(data, None))
        others = [n for n in self if n not in mentioned]
        warnings: list[str] = []
        for network in mentioned + others:
            try:
                network.deactivate(context)
            except Exception as e:
                log.exception("deactivating extra network %s", network.name)
                warnings.append(f"Extra network '{network.name}' could not be deactivated: {_reason(e)}")
        return warnings
