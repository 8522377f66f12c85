"""A1111 sampler and schedule-type names, and the diffusers schedulers that stand in for them.

The tables follow AUTOMATIC1111 v1.10.1 (``all_samplers`` and ``sd_schedulers.schedulers``, spec §7) in UI order.
:func:`resolve_sampler` turns request/infotext names into table entries (strictly: unknown names are errors, not
A1111's silent fallback to the first sampler). :func:`build_scheduler` makes the diffusers scheduler with
``Cls.from_config(model_scheduler_config, **flags)`` so that the model's betas and ``prediction_type`` survive.

How the A1111 schedules are reproduced (SD's 1000 discrete training sigmas, ``σ(t)``):

* k-diffusion samplers (Euler, LMS, Heun, DPM2, DPM2 a, DPM++ SDE on their diffusers "K" classes):
  ``Uniform``/``Normal`` → ``timestep_spacing="linspace"`` (t = linspace(999, 0, n), like k-diffusion's
  ``get_sigmas``; diffusers interpolates σ linearly between integer t where k-diffusion interpolates log σ, a
  difference far below visible); ``Karras``/``Exponential``/``Beta`` → ``use_*_sigmas`` with ``"linspace"`` so the
  range is exactly σ(0)…σ(999) as in A1111; ``Simple`` → ``"trailing"`` (identical integer timesteps);
  ``SGM Uniform`` → ``"trailing"`` (A1111 uses the fractional t of linspace(999, 0, n+1)[:-1]); ``DDIM`` →
  ``"leading"`` with ``steps_offset=1`` (identical when ``steps`` divides 1000). The model config's own
  ``timestep_spacing``/``use_karras_sigmas`` (SDXL ships ``"leading"``) are always overridden.
* DPM-Solver multistep samplers (DPM++ 2M, 2M SDE, 2M SDE Heun, 3M SDE): the σ-flag schedules are exact; the
  t-spaced ones use the closest ``timestep_spacing`` (see :data:`APPROXIMATIONS`). ``lower_order_final=False`` so
  the order sequence is k-diffusion's (first step 1st order, last step to σ=0 1st order, 2nd/3rd order between).
* ``Euler a`` with a σ-flag schedule (Karras, Exponential, Beta, Polyexponential): ``EulerAncestralDiscreteScheduler``
  has no such flags, so ``DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++", solver_order=1)`` is used;
  its update ``x0 + (σ'/σ)²(x − x0) + σ'·sqrt(1 − (σ'/σ)²)·ε`` is algebraically Euler ancestral with eta 1
  (see :data:`EQUIVALENCES`; tested).
* Timestep samplers (DDIM, DDIM CFG++, PLMS, UniPC): A1111 ignores the schedule type for them and always uses
  t = 1, 1+1000//n, … (``"leading"``, ``steps_offset=1``) — the same here; UniPC uses A1111's defaults
  (variant bh1, order 3, time-uniform steps ending at σ(0)).
* Samplers or schedules without a faithful diffusers counterpart are listed in :data:`APPROXIMATIONS`.

Noise: every stochastic class used here draws its step noise with ``randn_tensor(..., generator=generator)``, so a
list of per-image ``torch.Generator`` passed to ``step()`` (diffusers pipelines forward ``generator``) gives each
image its own stream, like A1111's per-image seeds. ``DPMSolverSDEScheduler`` (DPM++ SDE) takes no generator: it
draws from a Brownian tree; pass ``noise_seeds`` (the per-image seeds) to :func:`build_scheduler` to seed one tree per
image as A1111 does (``BrownianTreeNoiseSampler(seed=p.all_seeds[...])``).
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "SamplerInfo",
    "ScheduleInfo",
    "SAMPLERS",
    "SCHEDULES",
    "SCHEDULERS",
    "DEFAULT_SAMPLER",
    "AUTOMATIC",
    "APPROXIMATIONS",
    "EQUIVALENCES",
    "SCHEDULE_IGNORED",
    "find_sampler",
    "find_schedule",
    "split_combined_name",
    "resolve_sampler",
    "infotext_schedule_label",
    "scheduler_plan",
    "samplers_for_api",
    "schedulers_for_api",
    "build_scheduler",
    "is_second_order",
    "total_denoiser_calls",
]


# --------------------------------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class SamplerInfo:
    """One A1111 sampler: ``name`` as in the UI/infotext, ``aliases`` (old k-diffusion ids), A1111 ``options``.

    ``kind`` is ``"k_diffusion"`` (takes a sigma schedule), ``"timesteps"`` (DDIM, DDIM CFG++, PLMS, UniPC: A1111
    ignores the schedule type) or ``"lcm"``.
    """

    name: str
    aliases: tuple[str, ...]
    options: Mapping[str, Any] = field(compare=False, hash=False)
    kind: str = "k_diffusion"

    @property
    def default_scheduler(self) -> str | None:
        """Schedule *name* that ``Automatic`` stands for (``None`` when the sampler has no default)."""
        return self.options.get("scheduler")

    @property
    def second_order(self) -> bool:
        return bool(self.options.get("second_order", False))

    @property
    def uses_ensd(self) -> bool:
        return bool(self.options.get("uses_ensd", False))

    @property
    def brownian_noise(self) -> bool:
        return bool(self.options.get("brownian_noise", False))

    @property
    def discard_next_to_last_sigma(self) -> bool:
        return bool(self.options.get("discard_next_to_last_sigma", False))


@dataclass(frozen=True)
class ScheduleInfo:
    """One A1111 schedule type (``sd_schedulers.Scheduler``): ``label`` is what the UI and infotext show."""

    name: str
    label: str
    aliases: tuple[str, ...] = ()
    default_rho: float = -1
    need_inner_model: bool = False


def _sampler(name: str, aliases: Sequence[str], options: dict[str, Any], kind: str = "k_diffusion") -> SamplerInfo:
    return SamplerInfo(name, tuple(aliases), MappingProxyType(dict(options)), kind)


SAMPLERS: tuple[SamplerInfo, ...] = (
    _sampler("DPM++ 2M", ["k_dpmpp_2m"], {"scheduler": "karras"}),
    _sampler("DPM++ SDE", ["k_dpmpp_sde"], {"scheduler": "karras", "second_order": True, "brownian_noise": True}),
    _sampler("DPM++ 2M SDE", ["k_dpmpp_2m_sde"], {"scheduler": "exponential", "brownian_noise": True}),
    _sampler(
        "DPM++ 2M SDE Heun",
        ["k_dpmpp_2m_sde_heun"],
        {"scheduler": "exponential", "brownian_noise": True, "solver_type": "heun"},
    ),
    _sampler("DPM++ 2S a", ["k_dpmpp_2s_a"], {"scheduler": "karras", "uses_ensd": True, "second_order": True}),
    _sampler(
        "DPM++ 3M SDE",
        ["k_dpmpp_3m_sde"],
        {"scheduler": "exponential", "discard_next_to_last_sigma": True, "brownian_noise": True},
    ),
    _sampler("Euler a", ["k_euler_a", "k_euler_ancestral"], {"uses_ensd": True}),
    _sampler("Euler", ["k_euler"], {}),
    _sampler("LMS", ["k_lms"], {}),
    _sampler("Heun", ["k_heun"], {"second_order": True}),
    _sampler("DPM2", ["k_dpm_2"], {"scheduler": "karras", "discard_next_to_last_sigma": True, "second_order": True}),
    _sampler(
        "DPM2 a",
        ["k_dpm_2_a"],
        {"scheduler": "karras", "discard_next_to_last_sigma": True, "uses_ensd": True, "second_order": True},
    ),
    _sampler("DPM fast", ["k_dpm_fast"], {"uses_ensd": True}),
    _sampler("DPM adaptive", ["k_dpm_ad"], {"uses_ensd": True}),
    _sampler("Restart", ["restart"], {"scheduler": "karras", "second_order": True}),
    _sampler("DDIM", ["ddim"], {}, "timesteps"),
    _sampler("DDIM CFG++", ["ddim_cfgpp"], {}, "timesteps"),
    _sampler("PLMS", ["plms"], {}, "timesteps"),
    _sampler("UniPC", ["unipc"], {}, "timesteps"),
    _sampler("LCM", ["k_lcm"], {}, "lcm"),
)

SCHEDULES: tuple[ScheduleInfo, ...] = (
    ScheduleInfo("automatic", "Automatic"),
    ScheduleInfo("uniform", "Uniform", need_inner_model=True),
    ScheduleInfo("karras", "Karras", default_rho=7.0),
    ScheduleInfo("exponential", "Exponential"),
    ScheduleInfo("polyexponential", "Polyexponential", default_rho=1.0),
    ScheduleInfo("sgm_uniform", "SGM Uniform", aliases=("SGMUniform",), need_inner_model=True),
    ScheduleInfo("kl_optimal", "KL Optimal"),
    ScheduleInfo("align_your_steps", "Align Your Steps"),
    ScheduleInfo("simple", "Simple", need_inner_model=True),
    ScheduleInfo("normal", "Normal", need_inner_model=True),
    ScheduleInfo("ddim", "DDIM", need_inner_model=True),
    ScheduleInfo("beta", "Beta", need_inner_model=True),
)

SCHEDULERS = SCHEDULES  # the name A1111 uses (``sd_schedulers.schedulers``)

DEFAULT_SAMPLER: SamplerInfo = SAMPLERS[0]
AUTOMATIC: ScheduleInfo = SCHEDULES[0]

# Read-only lookups: lower-cased name/alias/label → entry (the first entry wins, as in A1111's maps).
_SAMPLER_LOOKUP: Mapping[str, SamplerInfo] = MappingProxyType(
    {n.lower(): s for s in reversed(SAMPLERS) for n in reversed((s.name, *s.aliases))})
_SCHEDULE_LOOKUP: Mapping[str, ScheduleInfo] = MappingProxyType(
    {n.lower(): sc for sc in reversed(SCHEDULES) for n in reversed((sc.label, sc.name, *sc.aliases))})
_SCHEDULE_BY_NAME: Mapping[str, ScheduleInfo] = MappingProxyType({sc.name: sc for sc in SCHEDULES})

# Samplers for which A1111 itself ignores the schedule type (they build their own timesteps).
SCHEDULE_IGNORED: frozenset[str] = frozenset({"DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM", "DPM fast", "DPM adaptive"})

# What this app runs instead where diffusers 0.42.1 has no faithful equivalent (for the README).
APPROXIMATIONS: dict[str, str] = {
    # samplers
    "DPM++ 2S a": "DPMSolverSinglestepScheduler(algorithm_type='sde-dpmsolver++', solver_order=2): a stochastic "
    "second-order single-step DPM-Solver++, not k-diffusion's ancestral 2S step; one UNet call per step instead of two",
    "DPM fast": "DPMSolverSinglestepScheduler(algorithm_type='dpmsolver', solver_order=3) on log-SNR-uniform "
    "(exponential) sigmas ending at σmin like k-diffusion's: DPM-Solver-fast's solver and step spacing, but "
    "diffusers' order sequence (the last of the `steps` calls is spent at σmin) and no ancestral noise (A1111 runs "
    "it with eta 1); schedule types are ignored (A1111 only takes σmin/σmax from them)",
    "DPM adaptive": "the same fixed-step DPM-Solver-3 as 'DPM fast' with `steps` UNet calls; no adaptive step-size "
    "control",
    "Restart": "HeunDiscreteScheduler on the chosen schedule (Karras by default) without Restart's back-and-forth "
    "noise re-injection segments",
    "DDIM CFG++": "DDIMScheduler (plain DDIM, eta 0): CFG++'s re-noising with the unconditional prediction and its "
    "CFG scale / 12.5 are not reproduced",
    "LCM": "LCMScheduler with its own 50-step origin schedule (diffusers' skipping) instead of A1111's linspace over the "
    "50 LCM sigmas; schedule types are ignored",
    "DPM2": "discard_next_to_last_sigma is not applied (KDPM2DiscreteScheduler always ends n steps at σmin → 0)",
    "DPM2 a": "discard_next_to_last_sigma is not applied (KDPM2AncestralDiscreteScheduler)",
    "DPM++ 2M SDE": "step noise is per-image Gaussian from the generators instead of a Brownian tree",
    "DPM++ 2M SDE Heun": "step noise is per-image Gaussian from the generators instead of a Brownian tree",
    "DPM++ 3M SDE": "step noise is per-image Gaussian from the generators instead of a Brownian tree; "
    "discard_next_to_last_sigma is not applied",
    # schedule types
    "Polyexponential": "Exponential sigmas (identical at the default rho 1.0; a custom Schedule rho is ignored)",
    "KL Optimal": "Uniform (t-linspace) spacing: the closest full-range schedule diffusers can make (mean |Δlog σ| "
    "≈ 0.5 for 10–50 steps on SD1.5)",
    "Align Your Steps": "Uniform (t-linspace) spacing: the closest full-range schedule diffusers can make (mean "
    "|Δlog σ| ≈ 0.25–0.3 for 10–50 steps on SD1.5)",
    "SGM Uniform": "integer timesteps ('trailing' on K-samplers, 'linspace' on DPM-Solver samplers) instead of "
    "fractional t = linspace(999, 0, n+1)[:-1]",
    "Uniform": "on DPM-Solver samplers (DPM++ 2M/2M SDE/3M SDE, DPM++ 2S a) diffusers' 'linspace' spacing stops at "
    "t≈999/n instead of t=0; on K-samplers exact up to σ interpolation (linear instead of log)",
    "Normal": "as Uniform",
    "DDIM": "as a schedule type: exact on K-samplers when steps divides 1000 (A1111 then takes one extra step); on "
    "DPM-Solver samplers the nearest 'leading' spacing",
    "Beta": "Beta(0.6, 0.6) always; the 'Beta schedule alpha/beta' settings are not applied",
}

EQUIVALENCES: dict[str, str] = {
    "Euler a + Karras/Exponential/Beta/Polyexponential": "DPMSolverMultistepScheduler(algorithm_type="
    "'sde-dpmsolver++', solver_order=1) with the σ flag: algebraically the Euler ancestral (eta 1) update",
    "DPM++ SDE": "DPMSolverSDEScheduler; pass noise_seeds to seed one Brownian tree per image like A1111",
    "PLMS": "PNDMScheduler(skip_prk_steps=True): the same pseudo-improved-Euler first step and 4th-order "
    "multistep updates on t = 1, 1+1000//n, …",
    "UniPC": "UniPCMultistepScheduler(solver_type='bh1', solver_order=3, timestep_spacing='linspace', "
    "final_sigmas_type='sigma_min'): A1111's UniPC settings and time-uniform steps",
}


# --------------------------------------------------------------------------------------------------- lookup


def find_sampler(name: str | None) -> SamplerInfo | None:
    """Case-insensitive lookup by name or alias; ``None`` when unknown."""
    if not name:
        return None
    return _SAMPLER_LOOKUP.get(name.strip().lower())


def find_schedule(name: str | None) -> ScheduleInfo | None:
    """Case-insensitive lookup by label, name or alias; ``None`` when unknown."""
    if not name:
        return None
    return _SCHEDULE_LOOKUP.get(name.strip().lower())


def split_combined_name(name: str) -> tuple[SamplerInfo, ScheduleInfo] | None:
    """Split an old combined sampler name such as ``DPM++ 2M Karras`` or ``DPM++ 2M SDE Exponential``.

    Returns ``None`` unless the text is ``<sampler name or alias> + " " + <schedule label, name or alias>``.
    """
    text = name.strip()
    low = text.lower()
    for sched in SCHEDULES:
        for option in (sched.label, sched.name, *sched.aliases):
            suffix = " " + option.lower()
            if low.endswith(suffix):
                sampler = find_sampler(text[: -len(suffix)])
                if sampler is not None:
                    return sampler, sched
    return None


def _valid_sampler_names() -> str:
    return ", ".join(s.name for s in SAMPLERS)


def _valid_schedule_names() -> str:
    return ", ".join(s.label for s in SCHEDULES)


def resolve_sampler(name: str | None, scheduler: str | None = None) -> tuple[SamplerInfo, ScheduleInfo]:
    """Resolve a sampler name (+ schedule type) the way A1111 does, but strictly.

    * ``name``: a sampler name or alias, any case; ``None``/empty → ``DPM++ 2M`` (A1111's first sampler).
      Old combined names (``"DPM++ 2M Karras"``) are split; the schedule in the name wins over ``scheduler``.
    * ``scheduler``: a schedule label, name or alias, any case; ``None``/empty → ``Automatic``.
    * ``Automatic`` resolves to the sampler's default schedule (``Karras`` for DPM++ 2M) — the label A1111 writes
      to the infotext; it stays ``Automatic`` for samplers without a default (Euler a, Euler, LMS, Heun, DPM fast,
      DPM adaptive, DDIM, DDIM CFG++, PLMS, UniPC, LCM).

    Raises ``ValueError`` naming the field (``sampler_name`` / ``scheduler``) and listing the valid names.
    """
    schedule = AUTOMATIC
    if scheduler is not None and str(scheduler).strip():
        found = find_schedule(str(scheduler))
        if found is None:
            raise ValueError(f"Unknown scheduler {scheduler!r}; valid schedule types: {_valid_schedule_names()}")
        schedule = found

    if name is None or not str(name).strip():
        sampler = DEFAULT_SAMPLER
    else:
        sampler = find_sampler(str(name))
        if sampler is None:
            split = split_combined_name(str(name))
            if split is None:
                raise ValueError(f"Unknown sampler_name {name!r}; valid samplers: {_valid_sampler_names()}")
            sampler, schedule = split

    if schedule.name == "automatic" and sampler.default_scheduler:
        schedule = _SCHEDULE_BY_NAME[sampler.default_scheduler]
    return sampler, schedule


def infotext_schedule_label(sampler: SamplerInfo, schedule: ScheduleInfo) -> str:
    """The ``Schedule type`` A1111 writes: ``Automatic`` resolved to the sampler's default label (``Karras`` for
    DPM++ 2M), else the schedule's label (``Automatic`` stays for samplers without a default)."""
    if schedule.name == "automatic" and sampler.default_scheduler:
        return _SCHEDULE_BY_NAME[sampler.default_scheduler].label
    return schedule.label


def is_second_order(sampler: SamplerInfo | str) -> bool:
    """A1111's ``second_order`` option (DPM++ SDE, DPM++ 2S a, Heun, DPM2, DPM2 a, Restart)."""
    info = sampler if isinstance(sampler, SamplerInfo) else find_sampler(sampler)
    if info is None:
        raise ValueError(f"Unknown sampler_name {sampler!r}; valid samplers: {_valid_sampler_names()}")
    return info.second_order


def total_denoiser_calls(sampler: SamplerInfo | str, steps: int) -> int:
    """A1111's ``SamplerData.total_steps``: ``steps * 2`` for second-order samplers (used for prompt schedules)."""
    return int(steps) * 2 if is_second_order(sampler) else int(steps)


# --------------------------------------------------------------------------------------------------- API shapes


def samplers_for_api() -> list[dict[str, Any]]:
    """``GET /sdapi/v1/samplers``: ``[{"name", "aliases", "options": {str: str}}]`` (A1111 stringifies options)."""
    return [
        {"name": s.name, "aliases": list(s.aliases), "options": {k: str(v) for k, v in s.options.items()}}
        for s in SAMPLERS
    ]


def schedulers_for_api() -> list[dict[str, Any]]:
    """``GET /sdapi/v1/schedulers``: ``[{"name", "label", "aliases", "default_rho", "need_inner_model"}]``.

    ``aliases`` is ``None`` where A1111 has none (it serialises its ``aliases=None`` default as ``null``).
    """
    return [
        {
            "name": sc.name,
            "label": sc.label,
            "aliases": list(sc.aliases) if sc.aliases else None,
            "default_rho": sc.default_rho,
            "need_inner_model": sc.need_inner_model,
        }
        for sc in SCHEDULES
    ]


# --------------------------------------------------------------------------------------------------- diffusers

# The flags every scheduler family is reset to, so that a model config's own choices (e.g. use_karras_sigmas=True
# or timestep_spacing="leading") never leak into an explicitly chosen A1111 sampler/schedule.
_SIGMA_FLAGS_OFF = {"use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False}

_SIGMA_FLAG_FOR = {
    "karras": {"use_karras_sigmas": True},
    "exponential": {"use_exponential_sigmas": True},
    "polyexponential": {"use_exponential_sigmas": True},
    "beta": {"use_beta_sigmas": True},
}

# t-spaced schedules on classes that follow k-diffusion's discretisation (Euler, LMS, Heun, KDPM2*, DPMSolverSDE).
_K_SPACING = {
    "uniform": {"timestep_spacing": "linspace"},
    "normal": {"timestep_spacing": "linspace"},
    "kl_optimal": {"timestep_spacing": "linspace"},
    "align_your_steps": {"timestep_spacing": "linspace"},
    "sgm_uniform": {"timestep_spacing": "trailing"},
    "simple": {"timestep_spacing": "trailing"},
    "ddim": {"timestep_spacing": "leading", "steps_offset": 1},
}

# The same on DPMSolverMultistepScheduler, whose "linspace" is linspace(0, 999, n+1)[::-1][:-1].
_DPM_SPACING = {
    "uniform": {"timestep_spacing": "linspace"},
    "normal": {"timestep_spacing": "linspace"},
    "kl_optimal": {"timestep_spacing": "linspace"},
    "align_your_steps": {"timestep_spacing": "linspace"},
    "sgm_uniform": {"timestep_spacing": "linspace"},
    "simple": {"timestep_spacing": "trailing"},
    "ddim": {"timestep_spacing": "leading", "steps_offset": 1},
}

# A1111 timestep samplers: t = clip(range(0, 1000, 1000 // n) + 1).
_A1111_TIMESTEPS = {"timestep_spacing": "leading", "steps_offset": 1}

_K_CLASSES = {
    "Euler": ("EulerDiscreteScheduler", {"interpolation_type": "linear", "timestep_type": "discrete",
                                          "final_sigmas_type": "zero"}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "Restart": ("HeunDiscreteScheduler", {}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DPM++ SDE": ("DPMSolverSDEScheduler", {}),
}

_DPM_MULTISTEP = {
    "DPM++ 2M": {"algorithm_type": "dpmsolver++", "solver_order": 2, "solver_type": "midpoint"},
    "DPM++ 2M SDE": {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "midpoint"},
    "DPM++ 2M SDE Heun": {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "heun"},
    "DPM++ 3M SDE": {"algorithm_type": "sde-dpmsolver++", "solver_order": 3, "solver_type": "midpoint"},
}
_DPM_MULTISTEP_COMMON = {
    "lower_order_final": False,
    "euler_at_final": False,
    "use_lu_lambdas": False,
    "use_flow_sigmas": False,
    "final_sigmas_type": "zero",
    "thresholding": False,
    "variance_type": None,
}


def _effective_schedule(sampler: SamplerInfo, schedule: ScheduleInfo) -> str:
    """Schedule *name* actually used for a k-diffusion sampler (``automatic`` → default, else uniform)."""
    if schedule.name == "automatic":
        return sampler.default_scheduler or "uniform"
    return schedule.name


def _plan(sampler: SamplerInfo, schedule: ScheduleInfo) -> tuple[str, dict[str, Any]]:
    """(diffusers class name, flags) for one sampler × schedule combination."""
    name = sampler.name
    sched = _effective_schedule(sampler, schedule)

    if name in ("DDIM", "DDIM CFG++"):
        return "DDIMScheduler", {**_A1111_TIMESTEPS, "clip_sample": False, "set_alpha_to_one": False,
                                 "thresholding": False}
    if name == "PLMS":
        return "PNDMScheduler", {**_A1111_TIMESTEPS, "skip_prk_steps": True, "set_alpha_to_one": False}
    if name == "UniPC":
        return "UniPCMultistepScheduler", {
            **_SIGMA_FLAGS_OFF, "timestep_spacing": "linspace", "solver_type": "bh1", "solver_order": 3,
            "predict_x0": True, "lower_order_final": True, "final_sigmas_type": "sigma_min", "thresholding": False,
            "use_flow_sigmas": False, "disable_corrector": [],
        }
    if name == "LCM":
        return "LCMScheduler", {}
    if name in ("DPM fast", "DPM adaptive"):
        return "DPMSolverSinglestepScheduler", {
            **_SIGMA_FLAGS_OFF, "use_exponential_sigmas": True, "algorithm_type": "dpmsolver", "solver_order": 3,
            "solver_type": "midpoint", "lower_order_final": True, "final_sigmas_type": "sigma_min",
            "thresholding": False, "use_flow_sigmas": False, "variance_type": None,
        }
    if name == "DPM++ 2S a":
        flags = {**_SIGMA_FLAGS_OFF, **_SIGMA_FLAG_FOR.get(sched, {})}
        return "DPMSolverSinglestepScheduler", {
            **flags, "algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "midpoint",
            "lower_order_final": True, "final_sigmas_type": "zero", "thresholding": False,
            "use_flow_sigmas": False, "variance_type": None,
        }
    if name in _DPM_MULTISTEP:
        flags = {**_SIGMA_FLAGS_OFF, "timestep_spacing": "linspace"}
        flags.update(_SIGMA_FLAG_FOR.get(sched) or _DPM_SPACING[sched])
        return "DPMSolverMultistepScheduler", {**flags, **_DPM_MULTISTEP_COMMON, **_DPM_MULTISTEP[name]}
    if name == "Euler a":
        if sched in _SIGMA_FLAG_FOR:
            flags = {**_SIGMA_FLAGS_OFF, **_SIGMA_FLAG_FOR[sched], "timestep_spacing": "linspace"}
            return "DPMSolverMultistepScheduler", {
                **flags, **_DPM_MULTISTEP_COMMON, "algorithm_type": "sde-dpmsolver++", "solver_order": 1,
                "solver_type": "midpoint",
            }
        return "EulerAncestralDiscreteScheduler", dict(_K_SPACING[sched])
    if name in _K_CLASSES:
        cls_name, extra = _K_CLASSES[name]
        flags = {**_SIGMA_FLAGS_OFF, "timestep_spacing": "linspace"}
        flags.update(_SIGMA_FLAG_FOR.get(sched) or _K_SPACING[sched])
        return cls_name, {**flags, **extra}
    raise ValueError(f"Unknown sampler_name {name!r}; valid samplers: {_valid_sampler_names()}")  # pragma: no cover


def scheduler_plan(sampler: SamplerInfo, schedule: ScheduleInfo) -> tuple[str, dict[str, Any]]:
    """The diffusers class name and ``from_config`` flags :func:`build_scheduler` uses (for logs, docs, tests)."""
    cls_name, flags = _plan(sampler, schedule)
    return cls_name, dict(flags)


def build_scheduler(
    sampler: SamplerInfo,
    schedule: ScheduleInfo,
    base_config: Mapping[str, Any],
    *,
    noise_seeds: Iterable[int] | None = None,
):
    """A fresh diffusers scheduler for ``sampler`` × ``schedule``, built over the model's scheduler config.

    ``base_config`` is the model's scheduler config (``pipe.scheduler.config`` or a ``scheduler_config.json``);
    betas, ``num_train_timesteps``, ``prediction_type``, ``rescale_betas_zero_snr`` come from it. Flags the target
    class does not have are dropped (no diffusers warning). ``noise_seeds``: per-image seeds for the Brownian-tree
    noise of ``DPMSolverSDEScheduler`` (DPM++ SDE); ignored by the other classes, which take ``generator`` in
    ``step()`` instead.
    """
    import diffusers  # heavy import, only when a scheduler is really built

    cls_name, flags = _plan(sampler, schedule)
    cls = getattr(diffusers, cls_name)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    kwargs = {k: v for k, v in flags.items() if k in accepted}
    # Only keys the class knows: diffusers warns about the others (e.g. PNDM's skip_prk_steps given to LCMScheduler).
    config = {k: v for k, v in dict(base_config).items() if k in accepted or k == "_use_default_values"}
    with warnings.catch_warnings():
        # algorithm_type="dpmsolver" (DPM fast/adaptive) is marked deprecated in diffusers' singlestep solver.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        scheduler = cls.from_config(config, **kwargs)
    if noise_seeds is not None and hasattr(scheduler, "noise_sampler_seed"):
        scheduler.noise_sampler_seed = [int(s) for s in noise_seeds]  # one Brownian tree per image
        scheduler.noise_sampler = None
    return scheduler
