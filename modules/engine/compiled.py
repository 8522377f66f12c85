"""``--compile``: torch.compile of the UNet and the VAE decoder, on CPU and CUDA.

The modules are compiled in place (``nn.Module.compile``): the objects, their parameters and their attention
processors stay the ones the rest of the app holds, so the weight patcher, the hypernetwork patch and tiling work
on them as before. What makes a compiled graph run again, and what recompiles:

* LoRA / LyCORIS sets and multipliers: never. The patcher writes merged weights into the existing parameter
  storage (same address, shape and dtype), and parameters are graph inputs, not constants; Dynamo does not guard
  on their values. ``tests/engine/test_compile.py`` counts the compiles across LoRA changes: zero.
* A hypernetwork turned on or off, or another one: the attention processors change, so one more graph for each
  distinct set (kept, so switching back costs nothing); bounded by Dynamo's cache size limit (8 per frame), after
  which that frame runs eagerly.
* The sampler: the UNet sees the same inputs whatever the sampler, so no recompile. A new size or batch size
  gives one recompile with dynamic shapes, then none.
* Tiling (circular padding) changes the convolutions: one more graph while it is on.

Modes (``--compile-mode``): on CPU ``default``. On CUDA ``reduce-overhead`` (the default there: CUDA graphs, which
pay off at batch 1 where the GPU waits for kernel launches; the patcher's in-place updates keep the captured
weight addresses valid) or ``max-autotune-no-cudagraphs`` (longer compile, no CUDA graphs: for shapes that change
often, or if CUDA graphs misbehave with an extension), or ``max-autotune``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def _on_cuda(module: torch.nn.Module) -> bool:
    p = next(module.parameters(), None)
    return p is not None and p.device.type == "cuda"


def _detached_copy(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.clone()
    if isinstance(out, tuple):
        return type(out)(_detached_copy(x) for x in out)
    if hasattr(out, "sample") and isinstance(out.sample, torch.Tensor):
        out.sample = out.sample.clone()
    return out


def _compile_with_cuda_graphs(module: torch.nn.Module, options: dict[str, Any]) -> None:
    """CUDA graphs replay into the same output buffers, so an output kept past the next call (the sampler keeps the
    previous step's prediction) would change under it. Each call therefore starts a new graph step and hands back
    a copy; the hooks sit outside the compiled ``forward`` (``Module.compile`` would compile them in)."""
    module.forward = torch.compile(module.forward, **options)
    module.register_forward_pre_hook(lambda m, args: torch.compiler.cudagraph_mark_step_begin())
    module.register_forward_hook(lambda m, args, out: _detached_copy(out))


@dataclass(frozen=True)
class CompileConfig:
    enabled: bool
    mode: str
    backend: str  # "inductor"; tests pass a counting backend registered with torch._dynamo

    @classmethod
    def from_args(cls, args: Any, device: torch.device) -> "CompileConfig":
        mode = getattr(args, "compile_mode", None) or ("reduce-overhead" if device.type == "cuda" else "default")
        return cls(bool(getattr(args, "compile", False)), mode, getattr(args, "compile_backend", None) or "inductor")


def compile_options(config: CompileConfig, on_cuda: bool) -> dict[str, Any]:
    """``torch.compile`` keyword arguments for the UNet and the VAE decoder.

    On the CPU, inductor's layout optimization is turned off. It runs convolutions channels-last and, since the
    weights are graph inputs (they must be, for in-place LoRA updates), converts every conv weight at every call:
    the compiled SD1.5 UNet then took 1.47x the eager time per call at 128 px; without it, 0.97x (same process,
    interleaved). ``mode`` and ``options`` exclude each other in torch.compile, so the mode's own options are
    spelled out beside it."""
    if config.backend != "inductor":
        return {"backend": config.backend}
    if on_cuda:
        return {"backend": "inductor", "mode": config.mode}
    from torch._inductor import list_mode_options

    return {"backend": "inductor", "options": {**list_mode_options(config.mode), "layout_optimization": False}}


def compile_model(model: Any, config: CompileConfig, offload: str) -> bool:
    """Compile ``model``'s UNet and VAE decoder in place; False (and why, logged) when it cannot be done."""
    if not config.enabled:
        return False
    if offload != "none":
        # accelerate's offload hooks move weights in and out around every forward: nothing stable to capture.
        log.warning("--compile is ignored with --medvram/--lowvram (weights move between devices every step)")
        return False
    on_cuda = _on_cuda(model.unet)
    options = compile_options(config, on_cuda)
    cudagraphs = config.backend == "inductor" and config.mode in CUDA_GRAPH_MODES and on_cuda
    for module in (model.unet, getattr(model.vae, "decoder", None)):
        # A model put back after the refiner ran (Engine.unpark) is installed again: compiling it twice would add
        # the CUDA-graph hooks twice and drop the graphs already made.
        if module is None or getattr(module, "_sd_webui_compiled", False):
            continue
        module._sd_webui_compiled = True
        if cudagraphs:
            _compile_with_cuda_graphs(module, options)
        else:
            module.compile(**options)
    log.info("compiled the UNet and the VAE decoder (%s, mode %s); the first generation of each size compiles",
             config.backend, config.mode)
    return True
