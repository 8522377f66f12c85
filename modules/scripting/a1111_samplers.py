"""A1111's sampler lists (``sd_samplers.all_samplers`` of ``SamplerData(name, constructor, aliases, options)``)
and preview helpers, over this app's sampler table :data:`modules.core.samplers.SAMPLERS`."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from modules.core import samplers as core


class SamplerData(NamedTuple):
    name: str
    constructor: Callable[..., Any] | None
    aliases: list
    options: dict

    def total_steps(self, steps: int) -> int:
        return core.total_denoiser_calls(self.name, steps) if hasattr(core, "total_denoiser_calls") else steps


def _unavailable(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("A1111's sampler objects are not made here: set p.sampler_name and call process_images(p)")


all_samplers = [SamplerData(s.name, _unavailable, list(s.aliases), dict(s.options)) for s in core.SAMPLERS]
all_samplers_map = {s.name: s for s in all_samplers}
samplers = list(all_samplers)
samplers_for_img2img = list(all_samplers)
samplers_map = {alias.lower(): s.name for s in all_samplers for alias in [s.name, *s.aliases]}
samplers_k_diffusion = [(s.name, None, list(s.aliases), dict(s.options)) for s in all_samplers]
sampler_extra_params: dict[str, list[str]] = {}
approximation_indexes = {"Full": 0, "Approx NN": 1, "Approx cheap": 2, "TAESD": 3}
schedulers_map = {**{s.name: s for s in core.SCHEDULES}, **{s.label: s for s in core.SCHEDULES}}


def find_sampler_config(name: str | None) -> SamplerData | None:
    if name is None:
        return all_samplers[0]
    return all_samplers_map.get(name) or all_samplers_map.get(samplers_map.get(str(name).lower(), ""))


def visible_sampler_names() -> list[str]:
    return [s.name for s in samplers]


def set_samplers() -> None:
    """A1111 rebuilds the lists after settings change; these are fixed."""


def sample_to_image(samples: Any, index: int = 0, approximation: int | None = None) -> Any:
    """Decode one latent of ``samples`` with the running Engine's VAE."""
    from modules.scripting import runtime

    engine = runtime.current()
    return engine.decode(samples[index:index + 1])[0] if hasattr(engine, "decode") else None


def samples_to_image_grid(samples: Any, approximation: int | None = None) -> Any:
    from modules.core import image_files

    return image_files.image_grid([sample_to_image(samples, i, approximation) for i in range(len(samples))])


def samples_to_images_tensor(sample: Any, approximation: int | None = None, model: Any = None) -> Any:
    """Latents to pixels in [-1, 1] with the running Engine's VAE (A1111's full decode; ``approximation`` and
    ``model`` are accepted and the loaded model's VAE is used)."""
    from modules.scripting import runtime

    engine = runtime.current()
    engine.ensure_model()
    return engine.decode_tensor(sample)


def images_tensor_to_samples(image: Any, approximation: int | None = None, model: Any = None) -> Any:
    """Pixels in [0, 1] (B, 3, H, W) to the model's scaled latents with the running Engine's VAE."""
    from modules.scripting import runtime

    engine = runtime.current()
    engine.ensure_model()
    return engine.encode_tensor(image * 2.0 - 1.0)
