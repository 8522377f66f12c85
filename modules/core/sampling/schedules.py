"""A1111's schedule types (``sd_schedulers``), each as a function of the step count and the σ range.

Every function returns ``n`` σ from the top followed by a final value (0, except KL Optimal, which ends at
σ_min as A1111's formula does), as float32 on the CPU. :func:`build_sigmas` picks the function for a sampler and
a schedule type the way A1111's ``KDiffusionSampler.get_sigmas`` does: Automatic stands for the sampler's default
schedule or, without one, the model's own discretisation; σ min/max/ρ settings override the defaults; samplers
with ``discard_next_to_last_sigma`` (or the setting) compute ``steps + 1`` σ and drop the second-to-last.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from modules.core.sampling.discrete import DiscreteSchedule

# Align Your Steps tables (NVIDIA's published 10-step schedules), log-linearly resampled to n.
AYS_SD15 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)


def _append_zero(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, x.new_zeros([1])])


def _floats(values: list) -> torch.Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float32)


def karras(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    ramp = torch.linspace(0, 1, n)
    min_inv_rho = sigma_min ** (1 / rho)
    max_inv_rho = sigma_max ** (1 / rho)
    return _append_zero((max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho)


def exponential(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), n).exp())


def polyexponential(n: int, sigma_min: float, sigma_max: float, rho: float = 1.0) -> torch.Tensor:
    ramp = torch.linspace(1, 0, n) ** rho
    return _append_zero(torch.exp(ramp * (math.log(sigma_max) - math.log(sigma_min)) + math.log(sigma_min)))


def uniform(n: int, model: DiscreteSchedule) -> torch.Tensor:
    return model.get_sigmas(n).cpu()


def sgm_uniform(n: int, sigma_min: float, sigma_max: float, model: DiscreteSchedule) -> torch.Tensor:
    start = model.sigma_to_t(torch.tensor(sigma_max))
    end = model.sigma_to_t(torch.tensor(sigma_min))
    return _floats([model.t_to_sigma(t) for t in torch.linspace(start, end, n + 1)[:-1]] + [0.0])


def normal(n: int, sigma_min: float, sigma_max: float, model: DiscreteSchedule) -> torch.Tensor:
    start = model.sigma_to_t(torch.tensor(sigma_max))
    end = model.sigma_to_t(torch.tensor(sigma_min))
    return _floats([model.t_to_sigma(t) for t in torch.linspace(start, end, n)] + [0.0])


def kl_optimal(n: int, sigma_min: float, sigma_max: float) -> torch.Tensor:
    alpha_min = torch.arctan(torch.tensor(sigma_min))
    alpha_max = torch.arctan(torch.tensor(sigma_max))
    idx = torch.arange(n + 1)
    return torch.tan(idx / n * alpha_min + (1.0 - idx / n) * alpha_max)


def align_your_steps(n: int, sdxl: bool = False) -> torch.Tensor:
    table = list(AYS_SDXL if sdxl else AYS_SD15)
    if n == len(table):
        return _floats(table + [0.0])
    xs = np.linspace(0, 1, len(table))
    ys = np.log(table[::-1])
    resampled = np.exp(np.interp(np.linspace(0, 1, n), xs, ys))[::-1].copy()
    return _floats(list(np.append(resampled, [0.0])))


def simple(n: int, model: DiscreteSchedule) -> torch.Tensor:
    stride = len(model.sigmas) / n
    return _floats([float(model.sigmas[-(1 + int(x * stride))]) for x in range(n)] + [0.0])


def ddim(n: int, model: DiscreteSchedule) -> torch.Tensor:
    stride = max(len(model.sigmas) // n, 1)
    picked = [float(model.sigmas[x]) for x in range(1, len(model.sigmas), stride)]
    return _floats(picked[::-1] + [0.0])


def beta(n: int, sigma_min: float, sigma_max: float, alpha: float = 0.6, beta_: float = 0.6) -> torch.Tensor:
    from scipy import stats

    positions = [stats.beta.ppf(x, alpha, beta_) for x in 1 - np.linspace(0, 1, n)]
    return _floats([sigma_min + (x * (sigma_max - sigma_min)) for x in positions] + [0.0])


@dataclass(frozen=True)
class ScheduleSettings:
    """The settings A1111 reads while making σ (0 means "not set" for the overrides)."""

    sigma_min: float = 0.0  # "Schedule min sigma"
    sigma_max: float = 0.0  # "Schedule max sigma"
    rho: float = 0.0  # "Schedule rho" (Karras, Polyexponential)
    beta_alpha: float = 0.6  # "Beta schedule alpha"
    beta_beta: float = 0.6  # "Beta schedule beta"
    always_discard_next_to_last_sigma: bool = False  # "Discard penultimate sigma"
    use_old_karras_scheduler_sigmas: bool = False  # σ range 0.1…10 instead of the model's
    sdxl: bool = False  # Align Your Steps table

    @classmethod
    def from_options(cls, get: Callable[[str], Any], *, sdxl: bool = False) -> "ScheduleSettings":
        def num(key: str, default: float) -> float:
            value = get(key)
            return float(default if value is None else value)

        return cls(
            sigma_min=num("sigma_min", 0.0), sigma_max=num("sigma_max", 0.0), rho=num("rho", 0.0),
            beta_alpha=num("beta_dist_alpha", 0.6), beta_beta=num("beta_dist_beta", 0.6),
            always_discard_next_to_last_sigma=bool(get("always_discard_next_to_last_sigma")),
            use_old_karras_scheduler_sigmas=bool(get("use_old_karras_scheduler_sigmas")), sdxl=sdxl)


def schedule_function_name(sampler: Any, schedule: Any) -> str | None:
    """The schedule that really runs: Automatic → the sampler's default, ``None`` → the model's discretisation."""
    name = schedule.name if schedule is not None else "automatic"
    if name == "automatic":
        return sampler.default_scheduler
    return name


def discards_penultimate(sampler: Any, settings: ScheduleSettings) -> bool:
    return bool(sampler.discard_next_to_last_sigma or settings.always_discard_next_to_last_sigma)


def build_sigmas(sampler: Any, schedule: Any, steps: int, model: DiscreteSchedule,
                 settings: ScheduleSettings = ScheduleSettings()) -> tuple[torch.Tensor, dict[str, Any]]:
    """(σ schedule, infotext parameters A1111 adds while making it) for ``steps`` steps."""
    params: dict[str, Any] = {}
    discard = discards_penultimate(sampler, settings)
    if discard and not sampler.discard_next_to_last_sigma:
        params["Discard penultimate sigma"] = True
    n = steps + 1 if discard else steps
    name = schedule_function_name(sampler, schedule)
    m_min, m_max = float(model.sigma_min), float(model.sigma_max)
    lo, hi = (0.1, 10.0) if settings.use_old_karras_scheduler_sigmas else (m_min, m_max)
    if name is None or name == "automatic":
        sigmas = model.get_sigmas(n).cpu()
    else:
        if settings.sigma_min != 0 and settings.sigma_min != m_min:
            lo = settings.sigma_min
            params["Schedule min sigma"] = settings.sigma_min
        if settings.sigma_max != 0 and settings.sigma_max != m_max:
            hi = settings.sigma_max
            params["Schedule max sigma"] = settings.sigma_max
        rho_set = settings.rho != 0 and name in ("karras", "polyexponential")
        if rho_set:
            params["Schedule rho"] = settings.rho
        if name == "beta":
            params["Beta schedule alpha"] = settings.beta_alpha
            params["Beta schedule beta"] = settings.beta_beta
        sigmas = _SCHEDULES[name](n, lo, hi, model, settings, rho_set)
    if discard:
        sigmas = torch.cat([sigmas[:-2], sigmas[-1:]])
    return sigmas.cpu(), params


_SCHEDULES: dict[str, Callable[..., torch.Tensor]] = {
    "uniform": lambda n, lo, hi, m, s, r: uniform(n, m),
    "karras": lambda n, lo, hi, m, s, r: karras(n, lo, hi, s.rho) if r else karras(n, lo, hi),
    "exponential": lambda n, lo, hi, m, s, r: exponential(n, lo, hi),
    "polyexponential": lambda n, lo, hi, m, s, r: polyexponential(n, lo, hi, s.rho) if r else polyexponential(n, lo, hi),
    "sgm_uniform": lambda n, lo, hi, m, s, r: sgm_uniform(n, lo, hi, m),
    "kl_optimal": lambda n, lo, hi, m, s, r: kl_optimal(n, lo, hi),
    "align_your_steps": lambda n, lo, hi, m, s, r: align_your_steps(n, s.sdxl),
    "simple": lambda n, lo, hi, m, s, r: simple(n, m),
    "normal": lambda n, lo, hi, m, s, r: normal(n, lo, hi, m),
    "ddim": lambda n, lo, hi, m, s, r: ddim(n, m),
    "beta": lambda n, lo, hi, m, s, r: beta(n, lo, hi, s.beta_alpha, s.beta_beta),
}


def timestep_sampler_timesteps(sampler: Any, steps: int, settings: ScheduleSettings = ScheduleSettings()
                               ) -> tuple[torch.Tensor, dict[str, Any]]:
    """DDIM/PLMS/UniPC timesteps: ``range(0, 1000, 1000 // steps) + 1`` clipped to 999 (A1111's CompVisSampler)."""
    params: dict[str, Any] = {}
    if settings.always_discard_next_to_last_sigma:
        params["Discard penultimate sigma"] = True
        steps += 1
    ts = torch.clip(torch.asarray(list(range(0, 1000, 1000 // steps))) + 1, 0, 999)
    return ts, params
