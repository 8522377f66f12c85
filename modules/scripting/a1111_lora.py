"""A1111's built-in Lora extension as extensions see it (``extensions-builtin/Lora``: the modules ``networks``,
``network``, ``network_lora``, ``lora``, ``extra_networks_lora``), over the Engine's ``NetworkManager``.

Extensions such as LoRA block weight work on A1111's objects: ``networks.loaded_networks`` holds one
:class:`Network` per active LoRA, with ``te_multiplier`` / ``unet_multiplier`` / ``dyn_dim`` and ``modules``
({A1111 layer name: :class:`NetworkModule`}); they scale a module's tensors (``up_model.weight``, ``w1a``...),
change multipliers or drop networks, and A1111 applies what they left at the next UNet call. Here:

* the views are made, the first time ``loaded_networks`` is read after a batch's networks were activated, from
  the manager's active LoRAs; their tensors are the loaded file's tensors, which an extension may replace
  (never changed in place: the manager's cache stays as loaded);
* :func:`sync` (after ``after_extra_networks_activate`` / ``process_batch`` and after every ``on_cfg_denoiser``
  callback) hands what changed to :meth:`NetworkManager.adjust_loras`, which patches only the modules whose
  sources or multipliers differ from what is merged;
* :func:`end_generation` puts the LoRAs back as their tags asked, exactly (the patcher restores from its copies).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

import torch

from modules.networks.adapters import create_module
from modules.networks.extra_networks import ExtraNetworkParams
from modules.networks.manager import ActiveNetwork, LoraAdjustment
from modules.scripting import runtime

if TYPE_CHECKING:
    from modules.engine.engine import Engine
    from modules.networks.catalog import NetworkEntry


class SdVersion:
    """A1111's ``network.SdVersion`` enum values."""
    Unknown, SD1, SD2, SDXL = 1, 2, 3, 4


_SD_VERSIONS = {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL"}


class NetworkOnDisk:
    """A1111's ``network.NetworkOnDisk``: one LoRA file of the catalog."""

    def __init__(self, engine: "Engine", entry: "NetworkEntry") -> None:
        self._engine = engine
        self._entry = entry
        self.name = entry.name
        self.filename = str(entry.path)
        self.alias = entry.alias
        self.is_safetensors = self.filename.lower().endswith(".safetensors")
        self.metadata = entry.light_metadata
        self.sd_version = getattr(SdVersion, _SD_VERSIONS.get(str(entry.family).lower(), "Unknown"))

    @property
    def hash(self) -> str | None:
        return self._engine.networks.loras.sha256(self._entry)

    @property
    def shorthash(self) -> str | None:
        return self._engine.networks.loras.shorthash(self._entry)

    def read_hash(self) -> None:
        """Hashing happens when the hash is read."""

    def get_alias(self) -> str:
        forbidden = self._engine.networks.loras.alias_forbidden(self.alias)
        return self.name if forbidden or self._engine.options.get("lora_preferred_name") == "Filename" else self.alias


class _Holder:
    """``up_model`` / ``down_model`` / ``mid_model`` of a LoRA module: A1111 keeps them as torch layers; extensions
    read and assign their ``weight``."""

    __slots__ = ("_module", "_key")

    def __init__(self, module: "NetworkModule", key: str) -> None:
        self._module = module
        self._key = key

    @property
    def weight(self) -> torch.Tensor:
        return self._module._tensors[self._key]

    @weight.setter
    def weight(self, value: Any) -> None:
        self._module._replace(self._key, value)


class NetworkModule:
    """A1111's ``network.NetworkModule``: one module of a loaded network. The attributes named in ``TENSORS``
    (and the ``.weight`` of those in ``LAYERS``) are the file's tensors under A1111's names; assigning one
    replaces that tensor for this generation. The object is also the delta source the manager merges."""

    TENSORS: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    LAYERS: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def __init__(self, net: "Network", key: str, target: Any, adapter: Any, sd_module: Any) -> None:
        set_ = object.__setattr__
        set_(self, "_tensors", dict(adapter.tensors))
        set_(self, "_adapter", adapter)
        set_(self, "_built", adapter)
        set_(self, "version", 0)
        self.network = net
        self.network_key = key
        self.sd_key = key
        self.target = target
        self.sd_module = sd_module
        self.dim = adapter.dim
        self.alpha = adapter.alpha
        self.scale = adapter.scale

    def _key(self, names: tuple[str, ...]) -> str | None:
        return next((n for n in names if n in self._tensors), None)

    def __getattr__(self, name: str) -> Any:
        cls = type(self)
        if name in cls.TENSORS:
            key = self._key(cls.TENSORS[name])
            return self._tensors[key] if key is not None else None
        if name in cls.LAYERS:
            key = self._key(cls.LAYERS[name])
            if key is not None:
                return _Holder(self, key)
        raise AttributeError(f"{cls.__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        names = type(self).TENSORS.get(name)
        if names is not None:
            self._replace(self._key(names) or names[0], value)
        else:
            object.__setattr__(self, name, value)

    def _replace(self, key: str, value: Any) -> None:
        tensor = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        self._tensors[key] = tensor
        object.__setattr__(self, "_built", None)
        object.__setattr__(self, "version", self.version + 1)
        self.network.version += 1

    # --- A1111's methods ------------------------------------------------------------------------------
    def multiplier(self) -> float:
        return self.network.te_multiplier if self.target.is_text_encoder else self.network.unet_multiplier

    def calc_scale(self) -> float:
        return self.source().calc_scale()

    def calc_updown(self, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(Δweight, Δbias) for ``target`` (the module's current weight), scaled by the multiplier."""
        return self.source().delta(target, self.multiplier(), dyn_dim=self.network.dyn_dim)

    # --- the manager's delta source ---------------------------------------------------------------------
    def source(self) -> Any:
        if self._built is None:
            object.__setattr__(self, "_built", create_module(self._adapter.key, self._tensors))
        return self._built

    def delta(self, weight: torch.Tensor, multiplier: float, *, dyn_dim: int | None = None,
              bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.source().delta(weight, multiplier, dyn_dim=dyn_dim, bias=bias)

    def low_rank(self, shape: tuple[int, ...], multiplier: float, *, dyn_dim: int | None = None,
                 device: torch.device | None = None) -> Any:
        factors = getattr(self.source(), "low_rank", None)
        return factors(shape, multiplier, dyn_dim=dyn_dim, device=device) if factors is not None else None


class NetworkModuleLora(NetworkModule):
    LAYERS = {"up_model": ("lora_up.weight", "lora_B.weight"), "down_model": ("lora_down.weight", "lora_A.weight"),
              "mid_model": ("lora_mid.weight",)}


class NetworkModuleHada(NetworkModule):
    TENSORS = {"w1a": ("hada_w1_a",), "w1b": ("hada_w1_b",), "w2a": ("hada_w2_a",), "w2b": ("hada_w2_b",),
               "t1": ("hada_t1",), "t2": ("hada_t2",)}


class NetworkModuleIa3(NetworkModule):
    TENSORS = {"w": ("weight",)}


class NetworkModuleLokr(NetworkModule):
    TENSORS = {"w1": ("lokr_w1",), "w1a": ("lokr_w1_a",), "w1b": ("lokr_w1_b",), "w2": ("lokr_w2",),
               "w2a": ("lokr_w2_a",), "w2b": ("lokr_w2_b",), "t2": ("lokr_t2",)}


class NetworkModuleFull(NetworkModule):
    TENSORS = {"weight": ("diff",), "ex_bias": ("diff_b",)}


class NetworkModuleNorm(NetworkModule):
    TENSORS = {"w_norm": ("w_norm",), "b_norm": ("b_norm",)}


class NetworkModuleGLora(NetworkModule):
    TENSORS = {"w1a": ("a1.weight",), "w1b": ("b1.weight",), "w2a": ("a2.weight",), "w2b": ("b2.weight",)}


class NetworkModuleOFT(NetworkModule):
    TENSORS = {"oft_blocks": ("oft_blocks", "oft_diag")}


MODULE_CLASSES: Mapping[str, type[NetworkModule]] = {
    "lora": NetworkModuleLora, "loha": NetworkModuleHada, "ia3": NetworkModuleIa3, "lokr": NetworkModuleLokr,
    "full": NetworkModuleFull, "norm": NetworkModuleNorm, "glora": NetworkModuleGLora, "oft": NetworkModuleOFT,
}


class Network:
    """A1111's ``network.Network``: one active LoRA with its multipliers and modules."""

    def __init__(self, engine: "Engine", item: ActiveNetwork) -> None:
        request, loaded = item.request, item.network
        self.item = item
        self.name = request.name
        self.mentioned_name = request.name
        self.network_on_disk = NetworkOnDisk(engine, item.entry)
        self.te_multiplier = request.te
        self.unet_multiplier = request.unet
        self.dyn_dim = request.dyn
        self.mtime = loaded.mtime
        self.bundle_embeddings: dict = {}  # bundled embeddings are registered by the manager itself
        self.version = 0
        mapper = engine.networks.mapper
        self.modules: dict[str, NetworkModule] = {}
        for target, adapter in loaded.modules.items():
            key = mapper.a1111_layer_name(target)
            cls = MODULE_CLASSES.get(adapter.kind, NetworkModule)
            self.modules[key] = cls(self, key, target, adapter, mapper.target_module(target))

    def __repr__(self) -> str:
        return f"Network({self.name!r}, te={self.te_multiplier}, unet={self.unet_multiplier})"


@dataclass
class _State:
    """Per Engine: A1111's module-level lists, and what the views were when last merged."""
    loaded_networks: list = field(default_factory=list)
    networks_in_memory: dict = field(default_factory=dict)
    stale: bool = False          # the manager's active LoRAs changed since the views were made
    merged: tuple | None = None  # the views' signature when last merged (None: no views)


def _state(engine: "Engine") -> _State:
    store = runtime.engine_state(engine)
    state = store.get("a1111_lora")
    if state is None:
        state = store["a1111_lora"] = _State()
    return state


def _signature(state: _State) -> tuple:
    return tuple((id(n), n.te_multiplier, n.unet_multiplier, n.dyn_dim, n.version)
                 for n in state.loaded_networks if isinstance(n, Network))


# --- the generation's side (ScriptHooks) ---------------------------------------------------------------------
def networks_activated(engine: "Engine") -> None:
    """A batch's networks were activated: the views are made again from them when next read."""
    state = _state(engine)
    state.stale = True


def loaded_networks(engine: "Engine") -> list:
    state = _state(engine)
    if state.stale:
        state.stale = False
        state.loaded_networks[:] = [Network(engine, item) for item in engine.networks.active_loras]
        state.merged = _signature(state)
    return state.loaded_networks


def sync(engine: "Engine") -> None:
    """Merge what extensions changed in the views since the last merge (A1111 does it at the next UNet call)."""
    state = _state(engine)
    if state.merged is None or state.stale:
        return
    signature = _signature(state)
    if signature == state.merged:
        return
    active = {id(item) for item in engine.networks.active_loras}
    if any(isinstance(n, Network) and id(n.item) not in active for n in state.loaded_networks):
        state.stale = True  # the LoRAs were activated again (the hires pass's own tags): these views are old
        return
    adjustments = [
        LoraAdjustment(item=n.item, te=float(n.te_multiplier), unet=float(n.unet_multiplier), dyn=n.dyn_dim,
                       modules={m.target: m for m in n.modules.values() if m.version}, version=n.version)
        for n in state.loaded_networks if isinstance(n, Network)]
    engine.networks.adjust_loras(adjustments)
    state.merged = signature


def end_generation(engine: "Engine") -> None:
    """The LoRAs as their tags asked, whatever extensions did to the views."""
    state = _state(engine)
    if state.merged is not None:
        engine.networks.clear_adjustments()
        state.merged = _signature(state) if not state.stale else None


# --- A1111's functions ---------------------------------------------------------------------------------------
def available_networks(engine: "Engine") -> dict[str, NetworkOnDisk]:
    return {e.name: NetworkOnDisk(engine, e) for e in engine.networks.loras.items()}


def available_network_aliases(engine: "Engine") -> dict[str, NetworkOnDisk]:
    out: dict[str, NetworkOnDisk] = {}
    for name, on_disk in available_networks(engine).items():
        out[name] = on_disk
        out.setdefault(on_disk.alias, on_disk)
    return out


def forbidden_network_aliases(engine: "Engine") -> dict[str, int]:
    return {e.alias.lower(): 1 for e in engine.networks.loras.items()
            if engine.networks.loras.alias_forbidden(e.alias)}


def list_available_networks() -> None:
    runtime.current().networks.refresh(("lora",))


def load_networks(names: list[str], te_multipliers: list[float] | None = None,
                  unet_multipliers: list[float] | None = None, dyn_dims: list[int | None] | None = None) -> None:
    """A1111's ``networks.load_networks``: make exactly these LoRAs active (outside a generation's tags)."""
    engine = runtime.current()
    params = []
    for i, name in enumerate(names):
        te = te_multipliers[i] if te_multipliers else 1.0
        unet = unet_multipliers[i] if unet_multipliers else te
        items = [name, str(te), str(unet)]
        if dyn_dims and dyn_dims[i] is not None:
            items.append(str(int(dyn_dims[i])))
        params.append(ExtraNetworkParams(items))
    engine.networks.activate_loras(params)
    networks_activated(engine)


def network_apply_weights(module: Any) -> None:
    """A1111 merges lazily from its patched forward; here the Engine merges before the UNet call."""
    engine = runtime.current(required=False)
    if engine is not None:
        sync(engine)


def network_restore_weights_from_backup(module: Any) -> None:
    """The manager keeps the originals and restores them whenever a module's LoRAs change."""


def purge_networks_from_memory() -> None:
    """The manager's cache is bounded by the ``lora_in_memory_limit`` setting."""


NETWORKS_RESOLVERS = {
    "loaded_networks": loaded_networks,
    "networks_in_memory": lambda engine: _state(engine).networks_in_memory,
    "available_networks": available_networks,
    "available_network_aliases": available_network_aliases,
    "forbidden_network_aliases": forbidden_network_aliases,
    "available_network_hash_lookup": lambda engine: {
        h: n for n in available_networks(engine).values() for h in (n.shorthash,) if h},
    "loaded_bundle_embeddings": lambda engine: {},
}
LORA_RESOLVERS = {
    "loaded_loras": loaded_networks,
    "available_loras": available_networks,
    "available_lora_aliases": available_network_aliases,
    "forbidden_lora_aliases": forbidden_network_aliases,
    "available_lora_hash_lookup": NETWORKS_RESOLVERS["available_network_hash_lookup"],
}
