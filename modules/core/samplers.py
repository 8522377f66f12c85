"""A1111 sampler and schedule-type names (``all_samplers`` and ``sd_schedulers.schedulers``, spec §7), in UI order.

:func:`resolve_sampler` turns request/infotext names into table entries (strictly: unknown names are errors, not
A1111's silent fallback to the first sampler). The samplers themselves run in σ space in
:mod:`modules.core.sampling` (schedules, k-diffusion steps, A1111's own DDIM/PLMS/UniPC/LCM/Restart) and
:mod:`modules.engine.sampling`; this module only names them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Sequence

__all__ = [
    "SamplerInfo",
    "ScheduleInfo",
    "SAMPLERS",
    "SCHEDULES",
    "SCHEDULERS",
    "DEFAULT_SAMPLER",
    "AUTOMATIC",
    "SCHEDULE_IGNORED",
    "find_sampler",
    "find_schedule",
    "split_combined_name",
    "resolve_sampler",
    "infotext_schedule_label",
    "samplers_for_api",
    "schedulers_for_api",
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

# Samplers for which A1111 ignores the schedule type: they run on their own timestep grid. (DPM fast and DPM
# adaptive only take σ_max from it.)
SCHEDULE_IGNORED: frozenset[str] = frozenset({"DDIM", "DDIM CFG++", "PLMS", "UniPC"})


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
