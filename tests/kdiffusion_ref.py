"""k-diffusion (MIT) as a test reference: ``k_diffusion.sampling`` and ``k_diffusion.external`` imported directly.

The package ``__init__`` pulls a training stack (scikit-image, torchvision, ...) that the app does not install,
so the package is registered as a bare namespace and ``k_diffusion.utils`` as the one helper the two modules use
(``append_dims``). ``torchdiffeq`` (only for k-diffusion's ``log_likelihood``) is stubbed when absent.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import torch


def _append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    return x[(...,) + (None,) * (target_dims - x.ndim)]


def load():
    """(k_diffusion.sampling, k_diffusion.external)."""
    if "k_diffusion.sampling" in sys.modules and "k_diffusion.external" in sys.modules:
        return sys.modules["k_diffusion.sampling"], sys.modules["k_diffusion.external"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None:
        raise ImportError("k-diffusion is not installed (pip install --no-deps k-diffusion)")
    pkg = types.ModuleType("k_diffusion")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["k_diffusion"] = pkg
    utils = types.ModuleType("k_diffusion.utils")
    utils.append_dims = _append_dims
    sys.modules["k_diffusion.utils"] = utils
    pkg.utils = utils
    if importlib.util.find_spec("torchdiffeq") is None:
        stub = types.ModuleType("torchdiffeq")
        stub.odeint = None
        sys.modules["torchdiffeq"] = stub
    sampling = importlib.import_module("k_diffusion.sampling")
    external = importlib.import_module("k_diffusion.external")
    return sampling, external


class TorchHijack:
    """A1111's trick: k-diffusion's ``torch.randn_like`` draws the next tensor of the run's noise stream."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def __getattr__(self, item):
        if item == "randn_like":
            return lambda x: self.stream.next().to(x)
        return getattr(torch, item)
