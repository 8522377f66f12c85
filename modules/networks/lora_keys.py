"""LoRA / LyCORIS file keys -> modules of the loaded diffusers model.

A file key is ``<module part><param part>``; this module finds the module (a :class:`ModuleTarget`:
component + ``named_modules()`` path) and groups the tensors per module under the kohya/LyCORIS
param names the per-type adapters (``modules/networks/adapters/``) read (``lora_up.weight``,
``lora_down.weight``, ``alpha``, ``hada_w1_a``, ``lokr_w1``, ``dora_scale``, ...). No tensor math
happens here; values are only looked at for their shapes (PEFT alphas, DoRA magnitudes).

Namings understood (spec a1111-reference 3.3; diffusers-notes 2a):

* kohya: ``lora_unet_<diffusers path with _>``, ``lora_te_`` / ``lora_te1_`` / ``lora_te2_`` +
  ``text_model_encoder_layers_N_...``, ``oft_unet_``; split at the first dot.
  ``lora_te1_`` on a one-encoder model means that encoder (the reference UI's fallback);
  ``lora_te_`` on SDXL matches nothing (as in the reference UI).
* ldm/sgm UNet names (``lora_unet_input_blocks_4_1_...``, ``diffusion_model_...``,
  ``diffusion_model.input_blocks.4.1....``): see :mod:`modules.networks.sgm_blocks`.
* PEFT / diffusers >= 0.24: ``unet.<path>.lora_A.weight`` / ``lora_B.weight`` (A = down, B = up),
  ``text_encoder.<path>``, ``text_encoder_2.<path>`` (with or without ``text_model.``), optional
  ``base_model.model.`` prefix, ``lora_magnitude_vector`` (DoRA), ``.alpha`` keys.
* older diffusers: ``<path>.lora.down.weight`` / ``lora_linear_layer.down.weight`` and the attention
  processor format ``<attn>.processor.to_q_lora.down.weight`` (``to_out_lora`` = ``to_out.0``;
  for text encoders ``self_attn.to_q_lora`` = ``self_attn.q_proj``), with or without ``unet.``.
* ComfyUI text-encoder prefixes ``text_encoders.clip_l|clip_g|clip_h.transformer.``.
* ``bundle_emb.NAME.rest`` -> :attr:`ConvertedNetwork.embeddings`.

Decisions that matter downstream:

* PEFT scale: diffusers keeps ``lora_alpha``/``r`` (+ ``alpha_pattern``, ``use_rslora``) in the
  safetensors metadata as JSON under ``lora_adapter_metadata`` (keys prefixed ``unet.``,
  ``text_encoder.``, ``text_encoder_2.``; unprefixed when one model was saved alone). For every
  PEFT module without an ``.alpha`` key an ``alpha`` tensor is emitted so that the usual
  ``alpha / rank`` gives PEFT's scale (rsLoRA: ``alpha = lora_alpha * sqrt(rank)``, since its scale is
  ``lora_alpha / sqrt(rank)``). Without any alpha information nothing is emitted (scale 1.0).
* DoRA: PEFT's ``lora_magnitude_vector`` holds one norm per *output* row (Linear ``[out]``, Conv
  ``[1, out, 1, 1]``). It is emitted as ``dora_scale`` shaped ``[out, 1]`` / ``[out, 1, 1, 1]``, which
  is LyCORIS's own layout for output-axis weight decomposition (``wd_on_out``). The reference UI's
  files use ``[1, in(, 1, 1)]`` (input-axis norm). So ``dora_scale`` means: ``W' = (W + dW) *
  dora_scale / norm(W + dW)`` with the norm taken over every axis where ``dora_scale`` has size 1 --
  output axis when ``dora_scale.shape[0] == W.shape[0]`` (and the weight has more than one output).
* PEFT ``lora_B.bias`` (``lora_bias=True``) is passed on as ``lora_up.bias``.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import torch

from modules.networks import sgm_blocks

__all__ = ["ModuleTarget", "ConvertedNetwork", "KeyMapper", "LORA_ADAPTER_METADATA_KEY"]

UNET, TE1, TE2 = "unet", "te1", "te2"
_TE_NAMES = (TE1, TE2)
LORA_ADAPTER_METADATA_KEY = "lora_adapter_metadata"  # diffusers' safetensors metadata key
_PEFT_PREFIX = MappingProxyType({UNET: "unet", TE1: "text_encoder", TE2: "text_encoder_2"})
_BUNDLE = "bundle_emb."

# format labels
KOHYA, KOHYA_SGM, LDM = "kohya", "kohya (sgm names)", "ldm"
PEFT, DIFFUSERS, DIFFUSERS_OLD, ATTN_PROCS = "peft", "diffusers", "diffusers (old lora layers)", \
    "diffusers (old attention processors)"

# ComfyUI's text-encoder names per family -> text encoder index
_COMFY_TE = MappingProxyType({"sd1": MappingProxyType({"clip_l": 0}), "sd2": MappingProxyType({"clip_h": 0}),
                              "sdxl": MappingProxyType({"clip_l": 0, "clip_g": 1}),
                              "sdxl-refiner": MappingProxyType({"clip_g": 0})})

_OLD_ATTN = re.compile(r"^(?P<mod>.+?)\.(?:processor\.)?(?P<proj>to_q|to_k|to_v|to_out)_lora\.(?P<ud>down|up)\.weight$")
_UNET_PROJ = MappingProxyType({"to_q": "to_q", "to_k": "to_k", "to_v": "to_v", "to_out": "to_out.0"})
_TE_PROJ = MappingProxyType({"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "to_out": "out_proj"})

# LyCORIS algorithm markers (param-name prefixes) for the format label
_ALGOS = (("hada_", "loha"), ("lokr_", "lokr"), ("lora_mid.", "locon-cp"), ("oft_", "oft"), ("diff", "full"),
          ("w_norm", "norm"), ("b_norm", "norm"), ("a1.", "glora"), ("on_input", "ia3"))


@dataclass(frozen=True)
class ModuleTarget:
    component: str   # "unet" | "te1" (model.text_encoders[0]) | "te2" (model.text_encoders[1], SDXL)
    path: str        # dotted module path inside that component, exactly as named_modules() gives it

    @property
    def is_text_encoder(self) -> bool:
        return self.component in _TE_NAMES


@dataclass
class ConvertedNetwork:
    # per target module, its tensors under kohya/LyCORIS param names (what follows the module part)
    groups: dict[ModuleTarget, dict[str, torch.Tensor]] = field(default_factory=dict)
    format: str = "unknown"
    unmatched: list[str] = field(default_factory=list)     # keys that belong to no module (file order)
    embeddings: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # bundled TIs


@dataclass(frozen=True)
class _Hit:
    target: ModuleTarget
    param: str
    naming: str
    file_module: str = ""   # module name as written in the file (PEFT alpha_pattern matching)
    peft: bool = False      # lora_A/lora_B/magnitude params: PEFT alpha + DoRA rules apply
    dora: bool = False      # this param came from lora_magnitude_vector


@dataclass
class _Table:
    """One naming of one component: dotted and flat (``_``-joined) module names -> module path."""
    dotted: dict[str, str] = field(default_factory=dict)
    flat: dict[str, str] = field(default_factory=dict)
    ambiguous: set[str] = field(default_factory=set)

    def add(self, name: str, path: str) -> None:
        self.dotted[name] = path
        flat = name.replace(".", "_")
        if flat in self.ambiguous:
            return
        if self.flat.setdefault(flat, path) != path:
            # two modules flatten to the same kohya name: refuse to guess between them
            del self.flat[flat]
            self.ambiguous.add(flat)


def _param_holders(module: torch.nn.Module) -> list[str]:
    """Paths of the modules that own parameters themselves (what a LoRA can patch)."""
    return [name for name, m in module.named_modules()
            if name and next(m.parameters(recurse=False), None) is not None]


def _te_name(path: str) -> str:
    """Canonical text-encoder name: transformers 5 flattens CLIPTextModel (no ``text_model.``)
    while CLIPTextModelWithProjection keeps it; files use either."""
    return path[len("text_model."):] if path.startswith("text_model.") else path


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    try:
        return tuple(int(s) for s in shape) if shape is not None else None
    except TypeError:
        return None


def _peft_param(param: str) -> tuple[str, str | None, bool]:
    """(kohya param name, naming it implies or None, is DoRA magnitude)."""
    parts = param.split(".")
    head = parts[0]
    if head in ("lora_A", "lora_B") and len(parts) in (2, 3) and parts[-1] in ("weight", "bias"):
        # "lora_A.weight" or "lora_A.<adapter name>.weight"
        return ("lora_down." if head == "lora_A" else "lora_up.") + parts[-1], PEFT, False
    if head == "lora_magnitude_vector" and len(parts) <= 3:
        return "dora_scale", PEFT, True
    for old in ("lora", "lora_linear_layer"):
        if head == old and len(parts) == 3 and parts[1] in ("down", "up"):
            return f"lora_{parts[1]}.{parts[2]}", DIFFUSERS_OLD, False
    return param, None, False


def _kohya_param(param: str) -> str:
    """The reference UI's LoRA type also reads ``lora_A``/``lora_B`` under kohya module names."""
    head, dot, tail = param.partition(".")
    return {"lora_A": "lora_down", "lora_B": "lora_up"}.get(head, head) + dot + tail


def _json(raw: Any) -> Any:
    if isinstance(raw, (str, bytes)):
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return raw


def _peft_configs(metadata: Mapping[str, Any] | None) -> dict[str, dict]:
    """diffusers LoRA configs from safetensors metadata, keyed by component prefix ("" = any)."""
    out: dict[str, dict] = {}
    if not metadata:
        return out
    for key, raw in metadata.items():
        if key == LORA_ADAPTER_METADATA_KEY:
            owner = ""
        elif isinstance(key, str) and key.endswith("." + LORA_ADAPTER_METADATA_KEY):
            owner = key[: -len(LORA_ADAPTER_METADATA_KEY) - 1]
        else:
            continue
        cfg = _json(raw)
        if not isinstance(cfg, dict):
            continue
        for ck, cv in cfg.items():
            head, dot, tail = str(ck).partition(".")
            if not owner and dot and head in _PEFT_PREFIX.values():
                out.setdefault(head, {})[tail] = cv
            else:
                out.setdefault(owner, {})[str(ck)] = cv
    return out


def _pattern_value(patterns: Any, name: str) -> Any:
    """PEFT ``alpha_pattern`` lookup: a pattern matches a module name exactly or as a dotted
    suffix (it may be a regex); the longest (most specific) matching pattern wins."""
    if not isinstance(patterns, Mapping):
        return None
    for pattern in sorted(patterns, key=len, reverse=True):
        try:
            if re.fullmatch(rf"(?:.*\.)?(?:{pattern})", name):
                return patterns[pattern]
        except re.error:
            if name == pattern or name.endswith("." + pattern):
                return patterns[pattern]
    return None


def _combine_namings(namings: list[str]) -> str:
    if KOHYA in namings and KOHYA_SGM in namings:  # SDXL kohya: TE in HF names, UNet in sgm names
        namings = [n for n in namings if n != KOHYA]
    return " + ".join(namings) if namings else "unknown"


def _format_label(namings: list[str], groups: Mapping[ModuleTarget, Mapping[str, Any]]) -> str:
    naming = _combine_namings(namings)
    params = {p for g in groups.values() for p in g}
    algos: list[str] = []
    for marker, algo in _ALGOS:
        if any(p.startswith(marker) for p in params) and algo not in algos:
            algos.append(algo)
    if "weight" in params and "ia3" not in algos:
        algos.append("ia3")
    label = f"lycoris {'+'.join(algos)} ({naming})" if algos else naming
    if "dora_scale" in params:
        label += " with DoRA"
    return label


class KeyMapper:
    """Lookup tables for one loaded model; :meth:`convert` maps a file's keys onto its modules."""

    def __init__(self, family: str, unet: torch.nn.Module, text_encoders: Sequence[torch.nn.Module]):
        if family not in _COMFY_TE:
            raise ValueError(f"KeyMapper: unknown model family {family!r} (expected {', '.join(_COMFY_TE)})")
        if len(text_encoders) > len(_TE_NAMES):
            raise ValueError(f"KeyMapper: {len(text_encoders)} text encoders given, at most 2 are supported")
        self.family = family
        self._components: dict[str, torch.nn.Module] = {UNET: unet}
        self._components.update({_TE_NAMES[i]: te for i, te in enumerate(text_encoders)})

        self._unet = _Table()
        self._unet_ldm = _Table()
        unet_paths = _param_holders(unet)
        for path in unet_paths:
            self._unet.add(path, path)
        config = getattr(unet, "config", None)
        if config is not None and (blocks := _block_map_or_none(config)):
            for path in unet_paths:
                ldm = sgm_blocks.diffusers_to_ldm(path, blocks)
                if ldm is not None:
                    self._unet_ldm.add(ldm, path)
        self._unet_ldm_of: dict[str, str] | None = None  # module path -> ldm name, built on first use
        self._te: list[_Table] = []
        for te in text_encoders:
            table = _Table()
            for path in _param_holders(te):
                table.add(_te_name(path), path)
            self._te.append(table)

    # ---------------------------------------------------------------------------------------
    # public

    @property
    def ambiguous(self) -> set[str]:
        """Flat names two modules share (never matched); empty for the SD architectures."""
        return set().union(self._unet.ambiguous, self._unet_ldm.ambiguous, *(t.ambiguous for t in self._te))

    def target_module(self, target: ModuleTarget) -> torch.nn.Module:
        model = self._components.get(target.component)
        if model is None:
            raise KeyError(f"{target}: this {self.family} model has no component {target.component!r}")
        return model.get_submodule(target.path)

    def a1111_layer_name(self, target: ModuleTarget) -> str:
        """The name the reference UI's Lora extension gives this module (``network_layer_name``, the keys of a
        loaded network's ``modules``): ldm names for the UNet (``diffusion_model_input_blocks_4_1_...``), the
        wrapped CLIP's names for text encoders (``transformer_text_model_encoder_layers_0_...``, SDXL prefixed
        ``0_`` / ``1_``). Extensions match blocks by these names (LoRA block weight)."""
        if target.component == UNET:
            if self._unet_ldm_of is None:
                self._unet_ldm_of = {path: ldm for ldm, path in self._unet_ldm.dotted.items()}
            ldm = self._unet_ldm_of.get(target.path)
            return "diffusion_model_" + (ldm if ldm is not None else target.path).replace(".", "_")
        name = "transformer_text_model_" + _te_name(target.path).replace(".", "_")
        if self.family in ("sdxl", "sdxl-refiner"):  # A1111 numbers the embedders of an sgm conditioner
            name = f"{_TE_NAMES.index(target.component)}_{name}"
        return name

    def resolve(self, key: str) -> tuple[ModuleTarget, str] | None:
        """(target, kohya param name) of one file key, or None when it matches no module."""
        hit = self._resolve(key)
        return (hit.target, hit.param) if hit else None

    def convert(self, state_dict: Mapping[str, Any], metadata: Mapping[str, str] | None = None) -> ConvertedNetwork:
        out = ConvertedNetwork()
        namings: list[str] = []
        alpha_namings: list[str] = []  # a lone ".alpha" key says little about the file's format
        peft_targets: dict[ModuleTarget, str] = {}
        dora_targets: set[ModuleTarget] = set()
        for key, value in state_dict.items():
            if isinstance(key, str) and key.startswith(_BUNDLE):
                name, dot, rest = key[len(_BUNDLE):].partition(".")
                if name and dot and rest:
                    out.embeddings.setdefault(name, {})[rest] = value
                else:
                    out.unmatched.append(key)
                continue
            hit = self._resolve(key) if isinstance(key, str) else None
            if hit is None:
                out.unmatched.append(key)
                continue
            out.groups.setdefault(hit.target, {})[hit.param] = value
            seen = alpha_namings if hit.param == "alpha" else namings
            if hit.naming not in seen:
                seen.append(hit.naming)
            if hit.peft:
                peft_targets[hit.target] = hit.file_module
            if hit.dora:
                dora_targets.add(hit.target)
        for target in dora_targets:
            self._reshape_magnitude(target, out.groups[target])
        self._add_peft_alphas(out.groups, peft_targets, _peft_configs(metadata))
        out.format = _format_label(namings or alpha_namings, out.groups)
        return out

    # ---------------------------------------------------------------------------------------
    # key resolution

    def _te_index(self, index: int) -> _Table | None:
        return self._te[index] if 0 <= index < len(self._te) else None

    def _resolve(self, key: str) -> _Hit | None:
        module, dot, param = key.partition(".")
        if dot and "_" in module:
            hit = self._resolve_flat(module, param)
            if hit is not None:
                return hit
        return self._resolve_dotted(key)

    def _resolve_flat(self, module: str, param: str) -> _Hit | None:
        """kohya-style ``<prefix><flat module name>.<param>`` keys (split at the first dot)."""
        for prefix in ("lora_unet_", "oft_unet_", "diffusion_model_"):
            if module.startswith(prefix):
                name = module[len(prefix):]
                order = ([(self._unet_ldm, LDM), (self._unet, LDM)] if prefix == "diffusion_model_"
                         else [(self._unet, KOHYA), (self._unet_ldm, KOHYA_SGM)])
                for table, naming in order:
                    path = table.flat.get(name)
                    if path is not None:
                        return _Hit(ModuleTarget(UNET, path), _kohya_param(param), naming)
                return None
        one_te = len(self._te) == 1
        for prefix, index in (("lora_te1_", 0), ("lora_te2_", 1), ("lora_te_", 0 if one_te else -1)):
            if module.startswith(prefix):
                table = self._te_index(index)
                name = module[len(prefix):]
                name = name[len("text_model_"):] if name.startswith("text_model_") else name
                path = table.flat.get(name) if table else None
                return _Hit(ModuleTarget(_TE_NAMES[index], path), _kohya_param(param), KOHYA) if path else None
        return None

    def _dotted_scope(self, key: str) -> tuple[str, list[tuple[_Table, str]], str, int]:
        """(key without component prefix, tables to search with their naming, component, te index)."""
        if key.startswith("base_model.model."):
            key = key[len("base_model.model."):]
        if key.startswith("unet."):
            return key[5:], [(self._unet, DIFFUSERS), (self._unet_ldm, LDM)], UNET, -1
        for prefix in ("model.diffusion_model.", "diffusion_model."):
            if key.startswith(prefix):
                return key[len(prefix):], [(self._unet_ldm, LDM), (self._unet, LDM)], UNET, -1
        for prefix, index in (("text_encoder_2.", 1), ("text_encoder.", 0)):
            if key.startswith(prefix):
                table = self._te_index(index)
                return key[len(prefix):], ([(table, DIFFUSERS)] if table else []), _TE_NAMES[index], index
        if key.startswith("text_encoders."):
            clip, _, rest = key[len("text_encoders."):].partition(".")
            index = _COMFY_TE[self.family].get(clip, -1)
            table = self._te_index(index)
            if table is not None and rest.startswith("transformer."):
                return rest[len("transformer."):], [(table, LDM)], _TE_NAMES[index], index
            return key, [], UNET, -1
        return key, [(self._unet, DIFFUSERS), (self._unet_ldm, LDM)], UNET, -1

    def _resolve_dotted(self, key: str) -> _Hit | None:
        rest, tables, component, te_index = self._dotted_scope(key)
        if not tables:
            return None
        is_te = te_index >= 0
        name_of = _te_name if is_te else (lambda s: s)

        old = _OLD_ATTN.match(rest)
        if old:
            proj = (_TE_PROJ if is_te else _UNET_PROJ)[old["proj"]]
            file_module = f"{old['mod']}.{proj}"
            path = tables[0][0].dotted.get(name_of(file_module))
            if path is not None:
                return _Hit(ModuleTarget(component, path), f"lora_{old['ud']}.weight", ATTN_PROCS)

        parts = rest.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            file_module = ".".join(parts[:cut])
            for table, naming in tables:
                path = table.dotted.get(name_of(file_module))
                if path is None:
                    continue
                param, style, dora = _peft_param(".".join(parts[cut:]))
                label = naming if naming == LDM or style is None else style
                return _Hit(ModuleTarget(component, path), param, label, file_module,
                            peft=style == PEFT, dora=dora)
        return None

    # ---------------------------------------------------------------------------------------
    # PEFT post-processing

    def _reshape_magnitude(self, target: ModuleTarget, group: dict[str, Any]) -> None:
        """PEFT magnitude (one norm per output row) -> ``[out, 1, ...]`` (see module docstring)."""
        value = group.get("dora_scale")
        weight = getattr(self.target_module(target), "weight", None)
        if value is None or weight is None or not hasattr(value, "reshape"):
            return
        group["dora_scale"] = value.reshape(-1, *([1] * (weight.dim() - 1)))

    def _add_peft_alphas(self, groups: dict[ModuleTarget, dict[str, Any]], peft_targets: Mapping[ModuleTarget, str],
                         configs: Mapping[str, dict]) -> None:
        if not configs:
            return
        for target, file_module in peft_targets.items():
            group = groups[target]
            if "alpha" in group:
                continue  # the file's own alpha wins
            cfg = configs.get(_PEFT_PREFIX[target.component]) or configs.get("")
            if not cfg:
                continue
            down, up = _shape(group.get("lora_down.weight")), _shape(group.get("lora_up.weight"))
            rank = down[0] if down else (up[1] if up and len(up) > 1 else None)
            alpha = _pattern_value(cfg.get("alpha_pattern"), file_module)
            if alpha is None:
                alpha = cfg.get("lora_alpha")
            if rank is None or alpha is None:
                continue
            try:
                value = float(alpha)
            except (TypeError, ValueError):
                continue
            if cfg.get("use_rslora"):
                value *= math.sqrt(rank)  # rsLoRA scale is lora_alpha / sqrt(r); downstream divides by r
            group["alpha"] = torch.tensor(value, dtype=torch.float32)


def _block_map_or_none(config: Any) -> dict[str, sgm_blocks.BlockEntry] | None:
    """The ldm block map, or None for a UNet config it does not describe (then only diffusers
    names match)."""
    try:
        return sgm_blocks.block_map(config)
    except (ValueError, TypeError):
        return None
