"""`NetworkManager`: the adapters of one Engine: catalogs, loaded files, what is active, and the patching.

The Engine owns one manager. Before each generation the prompt's tags are handed to `activate_loras` and
`activate_hypernets` (through the extra-network handlers); they resolve names in the catalogs, load files (cached
by path and mtime), and make the model hold exactly the asked-for set: LoRA deltas merged into the weights by the
`WeightPatcher`, hypernetworks installed as attention processors. Whatever cannot be found or applied becomes a
warning and is left out; the generation goes on with the rest.

Embeddings are kept in an `EmbeddingDatabase` reloaded (when its files changed) before conditioning.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

import torch

from modules.networks.extra_networks import ExtraNetworkParams
from modules.networks.catalog import NetworkCatalog, NetworkEntry
from modules.networks.embeddings import Embedding, EmbeddingDatabase, embedding_from_data
from modules.networks.hypernet_attention import HypernetworkPatch
from modules.networks.hypernetwork import Hypernetwork
from modules.networks.lora_file import LoraNetwork, load_lora
from modules.networks.lora_keys import KeyMapper, ModuleTarget
from modules.networks.weight_patcher import Contribution, DeltaSource, WeightPatcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoraRequest:
    """One `<lora:...>` tag, parsed as A1111 does (spec 3.2)."""
    name: str
    te: float = 1.0
    unet: float = 1.0
    dyn: int | None = None

    @classmethod
    def from_params(cls, params: ExtraNetworkParams) -> "LoraRequest":
        pos, named = params.positional, params.named
        if not pos:
            raise ValueError("a <lora:...> tag needs a name")
        te = float(pos[1]) if len(pos) > 1 else 1.0
        te = float(named.get("te", te))
        unet = float(pos[2]) if len(pos) > 2 else te
        unet = float(named.get("unet", unet))
        dyn = int(pos[3]) if len(pos) > 3 else None
        dyn = int(named["dyn"]) if "dyn" in named else dyn
        return cls(name=str(pos[0]), te=te, unet=unet, dyn=dyn)


@dataclass(frozen=True)
class HypernetRequest:
    name: str
    multiplier: float = 1.0

    @classmethod
    def from_params(cls, params: ExtraNetworkParams) -> "HypernetRequest":
        if not params.items:
            raise ValueError("a <hypernet:...> tag needs a name")
        return cls(name=str(params.items[0]), multiplier=float(params.items[1]) if len(params.items) > 1 else 1.0)


@dataclass(frozen=True)
class LoraAdjustment:
    """What code outside the manager (A1111's Lora extension objects, see ``modules.scripting.a1111_lora``) changed
    in one active LoRA for the rest of a generation: its multipliers, and replaced delta sources for some of its
    modules. ``version`` must change whenever ``modules`` do: it is part of the patched modules' signatures."""
    item: "ActiveNetwork"
    te: float
    unet: float
    dyn: int | None
    modules: Mapping[ModuleTarget, DeltaSource]
    version: Hashable


@dataclass
class ActiveNetwork:
    """A tag resolved to its file and the loaded network (`LoraNetwork` or `Hypernetwork`)."""
    request: Any  # LoraRequest | HypernetRequest
    entry: NetworkEntry
    network: Any



def infotext_name(name: str) -> str:
    """Names in `Lora hashes` / `TI hashes` lose the characters that delimit those fields."""
    return name.replace(":", "").replace(",", "")


def _text_width(model: Any) -> int:
    """Embedding width the loaded model takes: one encoder's hidden size, or both of SDXL's together."""
    return sum(int(te.config.hidden_size) for te in model.text_encoders)


class NetworkManager:
    def __init__(self, *, lora_dirs: Sequence[Path], hypernetwork_dirs: Sequence[Path], embeddings_dirs: Sequence[Path],
                 cache_dir: Path | None, hash_cache: Any, options: Any, allow_unsafe_pickle: bool = False,
                 backup_device: str | None = None):
        index = (lambda kind: Path(cache_dir) / f"{kind}-index.json") if cache_dir is not None else (lambda kind: None)
        self.loras = NetworkCatalog("lora", list(lora_dirs), index_path=index("lora"), hash_cache=hash_cache)
        self.hypernetworks = NetworkCatalog("hypernet", list(hypernetwork_dirs), index_path=index("hypernet"),
                                            hash_cache=hash_cache)
        self.embedding_files = NetworkCatalog("embedding", list(embeddings_dirs), index_path=index("embedding"),
                                              hash_cache=hash_cache)
        enabled = hash_cache is not None and getattr(hash_cache, "enabled", True)
        self.embeddings = EmbeddingDatabase(hash_fn=hash_cache.get_sha256 if enabled else None)
        self.options = options
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self.patcher = WeightPatcher(backup_device)
        self.active_loras: list[ActiveNetwork] = []
        self.active_hypernets: list[ActiveNetwork] = []
        self._model: Any = None
        self._mapper: KeyMapper | None = None
        self._hypernet_patch: HypernetworkPatch | None = None
        self._lora_cache: OrderedDict[tuple[str, float], LoraNetwork] = OrderedDict()
        self._hypernet_cache: dict[tuple[str, float], Hypernetwork] = {}
        self._adjusted: tuple = ()  # signature of the adjustments in force (empty: the activation as asked)
        self._lock = threading.RLock()
        # Listing reads only the index and the folders (no file contents), so it is done up front: the API and
        # the page can list adapters before the first generation.
        self.refresh()

    # --- catalogs -------------------------------------------------------------------------
    @property
    def catalogs(self) -> dict[str, NetworkCatalog]:
        return {"lora": self.loras, "hypernet": self.hypernetworks, "embedding": self.embedding_files}

    def refresh(self, kinds: Iterable[str] = ("lora", "hypernet", "embedding")) -> None:
        with self._lock:
            for kind in kinds:
                self.catalogs[kind].refresh()

    def _find(self, catalog: NetworkCatalog, name: str) -> NetworkEntry | None:
        """A name not in the catalog triggers one rescan: the user may have just dropped the file in."""
        entry = catalog.get(name)
        if entry is None:
            catalog.refresh()
            entry = catalog.get(name)
        return entry

    # --- model lifecycle ------------------------------------------------------------------
    def attach(self, model: Any | None) -> None:
        """A new model was loaded (None: unloaded): nothing of it is patched yet, the old one's copies and loaded
        files (checked against its modules) are worthless."""
        with self._lock:
            self.patcher.forget()
            self.active_loras = []
            self._adjusted = ()
            self.active_hypernets = []
            self._model = model
            self._mapper = None
            self._hypernet_patch = HypernetworkPatch(model.unet) if model is not None else None
            self._lora_cache.clear()
            self.embeddings.set_bundled({})

    def detach(self) -> None:
        self.attach(None)

    def generation_finished(self) -> None:
        """Free what one generation cached (the hypernetworks' transforms of its text conditioning)."""
        if self._hypernet_patch is not None:
            self._hypernet_patch.clear_cache()

    def restore_weights(self) -> None:
        """Back to the checkpoint's own weights and attention (e.g. before the model is exported)."""
        with self._lock:
            self.patcher.restore_all()
            self.active_loras = []
            self._adjusted = ()
            if self._hypernet_patch is not None:
                self._hypernet_patch.set([])
            self.active_hypernets = []
            self.embeddings.set_bundled({})

    @property
    def mapper(self) -> KeyMapper:
        if self._mapper is None:
            model = self._model
            self._mapper = KeyMapper(model.family, model.unet, model.text_encoders)
        return self._mapper

    # --- LoRA -------------------------------------------------------------------------------
    def _resolve(self, params_list: Sequence[ExtraNetworkParams], parse: Callable[[ExtraNetworkParams], Any],
                 catalog: NetworkCatalog, load: Callable[[NetworkEntry], Any], label: str, tag: str,
                 ) -> tuple[list[ActiveNetwork], list[str]]:
        """Tags -> loaded networks, in prompt order; what cannot be parsed, found or loaded becomes a warning."""
        warnings: list[str] = []
        resolved: list[ActiveNetwork] = []
        not_found: list[str] = []
        for params in params_list:
            try:
                request = parse(params)
            except (ValueError, TypeError) as e:
                warnings.append(f"{label} tag <{tag}:{':'.join(map(str, params.items))}> ignored: {e}")
                continue
            entry = self._find(catalog, request.name)
            if entry is None:
                not_found.append(request.name)
                continue
            try:
                network = load(entry)
            except Exception as e:
                warnings.append(f"{label} '{request.name}' was not applied: {e}")
                continue
            resolved.append(ActiveNetwork(request, entry, network))
        if not_found:
            warnings.insert(0, f"{label} not found: {', '.join(not_found)}")
        return resolved, warnings

    # --- LoRA -------------------------------------------------------------------------------
    def activate_loras(self, params_list: Sequence[ExtraNetworkParams]) -> list[str]:
        """Make the model hold exactly these LoRAs; returns warnings for those left out."""
        with self._lock:
            wanted, warnings = self._resolve(params_list, LoraRequest.from_params, self.loras, self._load_lora, "Lora", "lora")
            warnings += self._apply_loras(wanted)
            self._trim_cache()
            return warnings

    def _load_lora(self, entry: NetworkEntry) -> LoraNetwork:
        key = (str(entry.path), entry.mtime)
        network = self._lora_cache.get(key)
        if network is None:
            network = load_lora(entry.path, self.mapper, name=entry.name, family=entry.family,
                                allow_unsafe_pickle=self.allow_unsafe_pickle)
            self._lora_cache[key] = network
        self._lora_cache.move_to_end(key)
        return network

    def _wanted_weights(self, active: Sequence[ActiveNetwork],
                        adjusted: Mapping[int, LoraAdjustment] | None = None) -> dict[torch.nn.Module, list[Contribution]]:
        """Per target module, the contributions of ``active`` (as their tags ask, or as ``adjusted`` by
        ``id(item)`` says). An unchanged module keeps the signature of the plain activation, so the patcher
        leaves it alone."""
        mapper = self.mapper
        wanted: dict[torch.nn.Module, list[Contribution]] = {}
        for item in active:
            request, network = item.request, item.network
            adjustment = adjusted.get(id(item)) if adjusted else None
            te, unet, dyn = (request.te, request.unet, request.dyn) if adjustment is None else \
                (adjustment.te, adjustment.unet, adjustment.dyn)
            for target, module in network.modules.items():
                multiplier = te if target.is_text_encoder else unet
                if multiplier == 0:
                    continue  # exactly the unpatched weight, and no work
                key: tuple = (network.key, target)
                replaced = adjustment.modules.get(target) if adjustment is not None else None
                if replaced is not None:
                    module, key = replaced, key + (adjustment.version,)
                wanted.setdefault(mapper.target_module(target), []).append(
                    Contribution(key=key, source=module, multiplier=multiplier, dyn_dim=dyn))
        return wanted

    def adjust_loras(self, adjustments: Sequence[LoraAdjustment]) -> None:
        """Patch the active LoRAs as ``adjustments`` say (an active LoRA given no adjustment is left out: A1111
        extensions remove a network by dropping it from the loaded list). The next :meth:`activate_loras`, or
        :meth:`clear_adjustments`, goes back to what the tags ask."""
        with self._lock:
            by_item = {id(a.item): a for a in adjustments}
            active = [item for item in self.active_loras if id(item) in by_item]
            self.patcher.apply(self._wanted_weights(active, by_item))
            self._adjusted = tuple((id(a.item), a.te, a.unet, a.dyn, a.version) for a in adjustments)

    def clear_adjustments(self) -> None:
        """Back to the active LoRAs as their tags asked (the end of a generation that adjusted them)."""
        with self._lock:
            if self._adjusted:
                self.patcher.apply(self._wanted_weights(self.active_loras))
                self._adjusted = ()

    def _apply_loras(self, wanted: list[ActiveNetwork]) -> list[str]:
        """Patch; a network whose deltas fail to compute is dropped and the rest applied again."""
        warnings: list[str] = []
        while True:
            try:
                self.patcher.apply(self._wanted_weights(wanted))
                break
            except Exception as e:
                culprit = self._culprit(wanted)
                if culprit is None:
                    self.patcher.restore_all()
                    self.active_loras = []
                    raise
                warnings.append(f"Lora '{culprit.request.name}' was not applied: {e}")
                wanted = [w for w in wanted if w is not culprit]
        self.active_loras = wanted
        self._adjusted = ()
        self._set_bundled_embeddings()
        return warnings

    def _culprit(self, wanted: list[ActiveNetwork]) -> ActiveNetwork | None:
        """The first network whose deltas cannot be computed against the current weights (dry run, no writes)."""
        mapper = self.mapper
        for item in wanted:
            for target, module in item.network.modules.items():
                weight = mapper.target_module(target).weight
                try:
                    module.delta(weight.detach().float(), 1.0, dyn_dim=item.request.dyn)
                except Exception:
                    return item
        return None

    def _trim_cache(self) -> None:
        limit = int(self.options.get("lora_in_memory_limit") or 0) if self.options is not None else 0
        active = {item.network.key for item in self.active_loras}
        idle = [k for k in self._lora_cache if k not in active]
        for key in idle[: max(0, len(idle) - limit)]:
            del self._lora_cache[key]

    def _set_bundled_embeddings(self) -> None:
        bundled: dict[str, Embedding] = {}
        for item in self.active_loras:
            for name, data in item.network.bundled_embeddings.items():
                try:
                    embedding = embedding_from_data(data, name, item.network.filename)
                except Exception as e:
                    log.warning("embedding %s bundled in %s: %s", name, item.network.filename, e)
                    continue
                embedding.source = f"lora:{item.entry.name}"
                bundled[name] = embedding
        self.embeddings.set_bundled(bundled)

    def text_encoder_signature(self) -> tuple:
        """Changes whenever the text encoders' weights do: part of the conditioning cache key."""
        plain = tuple((item.network.key, item.request.te, item.request.dyn) for item in self.active_loras
                      if item.request.te != 0 and any(t.is_text_encoder for t in item.network.modules))
        return plain + self._adjusted

    # --- hypernetworks --------------------------------------------------------------------------
    def activate_hypernets(self, params_list: Sequence[ExtraNetworkParams]) -> list[str]:
        with self._lock:
            active, warnings = self._resolve(params_list, HypernetRequest.from_params, self.hypernetworks,
                                             self._load_hypernet, "Hypernetwork", "hypernet")
            for item in active:
                if not set(item.network.layers) & self._attention_widths():
                    warnings.append(f"Hypernetwork '{item.request.name}' has layers for widths {sorted(item.network.layers)}, "
                                    f"none of which the loaded model's attention uses; it has no effect")
            if self._hypernet_patch is not None:
                # Multiplier 0 is exactly no hypernetwork: leave the stock attention in place for it.
                self._hypernet_patch.set([(a.network, a.request.multiplier) for a in active if a.request.multiplier != 0])
            self.active_hypernets = active
            return warnings

    def _load_hypernet(self, entry: NetworkEntry) -> Hypernetwork:
        key = (str(entry.path), entry.mtime)
        network = self._hypernet_cache.get(key)
        if network is None:
            network = Hypernetwork.load(entry.path, allow_unsafe_pickle=self.allow_unsafe_pickle)
            # A file changed on disk replaces its old version.
            for old in [k for k in self._hypernet_cache if k[0] == key[0]]:
                del self._hypernet_cache[old]
            self._hypernet_cache[key] = network
        return network

    def _attention_widths(self) -> set[int]:
        """Context widths the UNet's attention sees: its channel widths (self) and the text width (cross)."""
        unet = self._model.unet
        widths = {int(c) for c in unet.config.block_out_channels}
        cross = unet.config.cross_attention_dim
        widths |= {int(c) for c in (cross if isinstance(cross, (list, tuple)) else [cross])}
        return widths

    # --- embeddings -------------------------------------------------------------------------------
    def prepare_embeddings(self, force: bool = False, rescan: bool = True) -> EmbeddingDatabase:
        """The database for the loaded model, reloaded first if embedding files were added, changed or removed.
        `rescan=False` trusts the last folder listing (once per generation is enough; conditioning runs per batch)."""
        with self._lock:
            if rescan:
                self.embedding_files.refresh()
            model = self._model
            files = [entry.path for entry in self.embedding_files.items()]
            self.embeddings.load(files, tokenizer=model.tokenizers[0], expected_width=_text_width(model), force=force)
            return self.embeddings

    def embeddings_report(self, model_loaded: bool) -> tuple[list[Embedding], list[Embedding]]:
        """(registered, skipped for their width) embeddings; with no model loaded nothing can be checked."""
        with self._lock:
            if not model_loaded or self._model is None:
                return [], []
            db = self.prepare_embeddings()
            return list(db.word_embeddings.values()), list(db.skipped.values())

    # --- infotext ---------------------------------------------------------------------------------
    def lora_hashes(self) -> str | None:
        if self.options is not None and not self.options.get("lora_add_hashes_to_infotext"):
            return None
        parts: list[str] = []
        for item in self.active_loras:
            shorthash = self.loras.shorthash(item.entry)
            part = f"{infotext_name(item.request.name)}: {shorthash}" if shorthash else None
            if part and part not in parts:
                parts.append(part)
        return ", ".join(parts) or None

    def ti_hashes(self, used: Iterable[Embedding]) -> str | None:
        if self.options is not None and not self.options.get("textual_inversion_add_hashes_to_infotext"):
            return None
        parts: list[str] = []
        for embedding in used:
            if embedding.source.startswith("lora:"):
                if self.options is not None and not self.options.get("lora_bundled_ti_to_infotext"):
                    continue
                value = embedding.source[len("lora:"):]
            else:
                value = self.embeddings.shorthash(embedding)
            if value:
                part = f"{infotext_name(embedding.name)}: {value}"
                if part not in parts:
                    parts.append(part)
        return ", ".join(parts) or None

    def infotext_params(self, used_embeddings: Iterable[Embedding]) -> dict[str, str]:
        params = {"Lora hashes": self.lora_hashes(), "TI hashes": self.ti_hashes(used_embeddings)}
        return {k: v for k, v in params.items() if v}
