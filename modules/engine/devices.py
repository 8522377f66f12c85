"""Where the model runs and in which precision, decided once from the launch flags."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class DeviceConfig:
    device: torch.device
    dtype: torch.dtype  # UNet and text encoders
    vae_dtype: torch.dtype
    autocast: bool  # --precision autocast on CUDA
    offload: str  # "none" | "model" (--medvram) | "sequential" (--lowvram)
    upcast_sampling: bool

    @classmethod
    def from_args(cls, args: Any, cuda_available: bool | None = None) -> "DeviceConfig":
        if cuda_available is None:
            cuda_available = torch.cuda.is_available()
        use_cpu = [str(x).lower() for x in (getattr(args, "use_cpu", None) or [])]
        wants_cpu = "all" in use_cpu or "sd" in use_cpu or not cuda_available
        if wants_cpu:
            device = torch.device("cpu")
        else:
            device_id = getattr(args, "device_id", None)
            device = torch.device(f"cuda:{int(device_id)}" if device_id not in (None, "") else "cuda")
        on_gpu = device.type == "cuda"
        no_half = bool(getattr(args, "no_half", False)) or not on_gpu
        # fp32 on CPU always (fp16 convolutions are slow or missing there).
        dtype = torch.float32 if no_half else torch.float16
        no_half_vae = bool(getattr(args, "no_half_vae", False)) or no_half
        vae_dtype = torch.float32 if no_half_vae else torch.float16
        precision = getattr(args, "precision", "autocast") or "autocast"
        offload = "none"
        if on_gpu and getattr(args, "lowvram", False):
            offload = "sequential"
        elif on_gpu and (getattr(args, "medvram", False) or getattr(args, "medvram_sdxl", False)):
            offload = "model"
        return cls(
            device=device,
            dtype=dtype,
            vae_dtype=vae_dtype,
            autocast=on_gpu and precision == "autocast" and dtype != torch.float32,
            offload=offload,
            upcast_sampling=bool(getattr(args, "upcast_sampling", False)),
        )

    def describe(self) -> str:
        return f"{self.device} {str(self.dtype).removeprefix('torch.')} (VAE {str(self.vae_dtype).removeprefix('torch.')}), offload: {self.offload}"


def torch_gc() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.ipc_collect()
