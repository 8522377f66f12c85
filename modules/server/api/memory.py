"""GET /sdapi/v1/memory: RAM (psutil when installed, else /proc/meminfo) and CUDA allocator statistics."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def ram_info() -> dict[str, Any]:
    """{"free", "used", "total"} in bytes for the machine; {"error": why} when it cannot be read."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        return {"free": vm.available, "used": vm.total - vm.available, "total": vm.total}
    except ImportError:
        pass
    try:
        fields = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                fields[key] = int(parts[0]) * 1024  # kB
        total = fields["MemTotal"]
        free = fields.get("MemAvailable", fields.get("MemFree", 0))
        return {"free": free, "used": total - free, "total": total}
    except (OSError, KeyError, ValueError) as exc:
        return {"error": f"cannot read memory information: {exc}"}


def cuda_info(device: Any = None) -> dict[str, Any]:
    """A1111's CUDA block: system free/used/total and the allocator's current/peak counters."""
    try:
        import torch

        if not torch.cuda.is_available():
            return {"error": "unavailable"}
        if getattr(device, "type", None) != "cuda":
            device = None  # the engine runs elsewhere (CPU, MPS): report the current CUDA device
        free, total = torch.cuda.mem_get_info(device)
        s = torch.cuda.memory_stats(device)

        def pair(name: str) -> dict[str, int]:
            return {"current": int(s.get(f"{name}.all.current", 0)), "peak": int(s.get(f"{name}.all.peak", 0))}

        return {
            "system": {"free": int(free), "used": int(total - free), "total": int(total)},
            "active": pair("active_bytes"),
            "allocated": pair("allocated_bytes"),
            "reserved": pair("reserved_bytes"),
            "inactive": pair("inactive_split_bytes"),
            "events": {"retries": int(s.get("num_alloc_retries", 0)), "oom": int(s.get("num_ooms", 0))},
        }
    except Exception as exc:  # a driver problem is reported, not raised: this is a diagnostics endpoint
        return {"error": str(exc)}


def memory_info(device: Any = None) -> dict[str, Any]:
    return {"ram": ram_info(), "cuda": cuda_info(device)}
