"""A1111's ``Processed(p, images_list, seed, info, ...)`` constructor and ``fix_seed(p)`` for extension code.

This app's :class:`~modules.core.request.Processed` is a dataclass built by the pipeline; A1111 scripts build
their results positionally from ``p``. :class:`Processed` accepts both forms and stays an instance of the
core class, so the doors treat both alike.
"""
from __future__ import annotations

from typing import Any

from modules.core.request import Processed as CoreProcessed
from modules.engine import rng

opt_C = 4  # latent channels, A1111's name
opt_f = 8  # latent downscale factor


def get_fixed_seed(seed: Any) -> int:
    """A1111's ``get_fixed_seed``: -1, None or "" give a new random seed."""
    if seed == "" or seed is None:
        seed = -1
    elif isinstance(seed, str):
        try:
            seed = int(seed)
        except ValueError:
            seed = -1
    return rng.fix_seed(seed)


def fix_seed(p: Any) -> None:
    """Replace -1 in ``p.seed`` / ``p.subseed`` by the random seeds the generation will use."""
    p.seed = get_fixed_seed(p.seed)
    p.subseed = get_fixed_seed(p.subseed)


def _listed(value: Any, n: int, fallback: Any) -> list:
    if value is None:
        return [fallback] * n
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


class Processed(CoreProcessed):
    """``Processed(p, images_list, seed=-1, info="", subseed=None, all_prompts=None, all_negative_prompts=None,
    all_seeds=None, all_subseeds=None, index_of_first_image=0, infotexts=None, comments="",
    extra_images_list=None)`` as in A1111, or this app's keyword form (``images=..., request=...``)."""

    def __init__(self, p: Any = None, images_list: Any = None, seed: int = -1, info: Any = "", subseed: Any = None,
                 all_prompts: Any = None, all_negative_prompts: Any = None, all_seeds: Any = None,
                 all_subseeds: Any = None, index_of_first_image: int = 0, infotexts: Any = None,
                 comments: str = "", extra_images_list: Any = None, **fields: Any) -> None:
        if p is None and "request" in fields:  # the dataclass form
            CoreProcessed.__init__(self, **{"infotexts": infotexts or [], "seed": seed, "subseed": subseed or -1,
                                            "info": info or {}, "index_of_first_image": index_of_first_image,
                                            **fields})
            return
        images = list(images_list or []) + list(extra_images_list or [])
        n = len(images)
        request = getattr(p, "request", None)
        prompt = getattr(p, "prompt", "")
        negative = getattr(p, "negative_prompt", "")
        prompts = _listed(all_prompts if all_prompts is not None else getattr(p, "all_prompts", None), n,
                          prompt if isinstance(prompt, str) else (prompt[0] if prompt else ""))
        negatives = _listed(all_negative_prompts if all_negative_prompts is not None
                            else getattr(p, "all_negative_prompts", None), n,
                            negative if isinstance(negative, str) else (negative[0] if negative else ""))
        seeds = _listed(all_seeds if all_seeds is not None else getattr(p, "all_seeds", None), n, seed)
        subseeds = _listed(all_subseeds if all_subseeds is not None else getattr(p, "all_subseeds", None), n,
                           subseed if subseed is not None else -1)
        text = info if isinstance(info, str) else ""
        texts = list(infotexts) if infotexts is not None else [text] * n
        js = {"prompt": prompts[0] if prompts else prompt, "all_prompts": prompts,
              "negative_prompt": negatives[0] if negatives else negative, "all_negative_prompts": negatives,
              "seed": seed, "all_seeds": seeds, "subseed": subseed if subseed is not None else -1,
              "all_subseeds": subseeds, "index_of_first_image": index_of_first_image, "infotexts": texts,
              "comments": comments, "width": getattr(p, "width", None), "height": getattr(p, "height", None),
              "steps": getattr(p, "steps", None), "cfg_scale": getattr(p, "cfg_scale", None),
              "sampler_name": getattr(p, "sampler_name", None)}
        CoreProcessed.__init__(
            self, images=images, infotexts=texts, seeds=seeds, subseeds=subseeds, prompts=prompts,
            negative_prompts=negatives, request=request if request is not None else _empty_request(),
            seed=seed, subseed=subseed if subseed is not None else -1, info=js,
            index_of_first_image=index_of_first_image)
        self.comments = comments


def _empty_request() -> Any:
    from modules.core.request import GenerationRequest

    return GenerationRequest()



def create_infotext(p: Any, all_prompts: Any = None, all_seeds: Any = None, all_subseeds: Any = None,
                    comments: Any = None, iteration: int = 0, position_in_batch: int = 0,
                    use_main_prompt: bool = False, index: int | None = None,
                    all_negative_prompts: Any = None) -> str:
    """A1111's ``create_infotext(p, all_prompts, all_seeds, all_subseeds, comments, iteration,
    position_in_batch)``: the infotext of image ``index`` (``position_in_batch + iteration * batch_size``) of
    ``p``'s generation, with the lists given (ADetailer writes its own pass's infotext this way). ``p`` must be
    in or after its generation. Called as ``(engine, plan, index)`` it is the pipeline's own form."""
    import copy

    from modules.engine import pipeline

    plan = getattr(p, "plan", None)
    if not hasattr(p, "request") or not hasattr(p, "plan"):  # the pipeline's (engine, plan, index)
        return pipeline.create_infotext(p, all_prompts, int(all_seeds or 0))
    if plan is None:
        raise RuntimeError("create_infotext(p, ...) needs a p whose generation has begun (p.plan is not set)")
    if index is None:
        index = position_in_batch + iteration * int(getattr(p, "batch_size", 1) or 1)
    view = copy.copy(plan)
    if use_main_prompt:
        view.all_prompts, view.all_negative_prompts, index = [p.prompt], [p.negative_prompt], 0
    for name, given in (("all_prompts", all_prompts), ("all_seeds", all_seeds), ("all_subseeds", all_subseeds),
                        ("all_negative_prompts", all_negative_prompts)):
        if given is not None and not use_main_prompt:
            setattr(view, name, list(given))
    return pipeline.create_infotext(p.engine, view, index)
