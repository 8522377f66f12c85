"""The ``p`` object that scripts receive: A1111's ``StableDiffusionProcessing`` over a GenerationRequest.

A1111 scripts read and set generation fields on ``p`` (``p.steps = 30``, ``p.prompt = ...``), copy it
(``copy(p)``) for each cell of a grid and call ``process_images(p)``. Here ``p`` wraps the Engine and a
:class:`GenerationRequest`: every request field is an attribute of ``p`` (reads and writes go to
``p.request``), the always-on scripts' runner and flat argument list ride along (``p.scripts``,
``p.script_args``), and while / after a run ``p.plan`` holds what the run resolved, so ``p.all_prompts``,
``p.all_seeds``, ``p.all_subseeds``, ``p.all_negative_prompts`` (and in a batch hook ``p.prompts``,
``p.seeds``...) read and write the running generation's lists.
"""
from __future__ import annotations

import copy as _copy
import dataclasses
from typing import TYPE_CHECKING, Any

from modules.core.request import GenerationRequest

if TYPE_CHECKING:
    from modules.engine.engine import Engine

REQUEST_FIELDS = frozenset(f.name for f in dataclasses.fields(GenerationRequest)) | {"mask_blur"}
_PLAN_LISTS = ("all_prompts", "all_negative_prompts", "all_seeds", "all_subseeds")


class StableDiffusionProcessing:
    """``StableDiffusionProcessing(engine, request)``, or A1111's keyword form
    ``StableDiffusionProcessingTxt2Img(prompt=..., steps=...)`` (the engine is then taken from the ``p``
    it is copied from, or must be set as ``p.engine`` before ``process_images``)."""

    def __init__(self, engine: Engine = None, request: GenerationRequest | None = None, *, scripts: Any = None,
                 script_args: list | None = None, **fields: Any) -> None:
        object.__setattr__(self, "request", request if request is not None else GenerationRequest())
        self.engine = engine
        self.scripts = scripts  # the ScriptRunner whose always-on scripts get the hooks, or None
        self.script_args = list(script_args) if script_args is not None else []
        self.plan: Any = None  # processing.Plan of the last run of this object
        self.failed_scripts: set[int] = set()  # ids of scripts whose hook raised: not called again in this call
        self.failed_callbacks: set[int] = set()  # the same for callbacks
        self.prompt_for_display: str | None = None
        self.outpath_samples: str | None = None
        self.outpath_grids: str | None = None
        self.iteration = 0
        self.batch_index = 0
        self.is_api = False
        self.user: str | None = None
        self.comments: dict[str, Any] = {}
        self.prompts: list[str] = []
        self.negative_prompts: list[str] = []
        self.seeds: list[int] = []
        self.subseeds: list[int] = []
        for key, value in fields.items():
            if key in ("sd_model", "outpath_samples", "outpath_grids") or key in REQUEST_FIELDS or hasattr(self, key):
                if key != "sd_model":  # A1111 passes the model; here it is always the engine's
                    setattr(self, key, value)
            else:
                object.__setattr__(self, key, value)

    # -- request fields as attributes ------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: request fields, then the plan's lists.
        if name in REQUEST_FIELDS:
            return getattr(object.__getattribute__(self, "request"), name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in REQUEST_FIELDS:
            setattr(self.request, name, value)
        elif name in _PLAN_LISTS:
            plan = self.__dict__.get("plan")
            if plan is None:
                raise AttributeError(f"p.{name} exists only while process_images runs (set p.prompt / p.seed "
                                     f"to a list before it to give every image its own)")
            setattr(plan, name, value)
        else:
            object.__setattr__(self, name, value)

    @property
    def is_img2img(self) -> bool:
        return self.request.is_img2img

    # -- what the run resolved --------------------------------------------------------------------
    def _plan_value(self, name: str) -> Any:
        plan = self.__dict__.get("plan")
        return getattr(plan, name) if plan is not None else None

    all_prompts = property(lambda self: self._plan_value("all_prompts"))
    all_negative_prompts = property(lambda self: self._plan_value("all_negative_prompts"))
    all_seeds = property(lambda self: self._plan_value("all_seeds"))
    all_subseeds = property(lambda self: self._plan_value("all_subseeds"))

    @property
    def sd_model(self) -> Any:
        return getattr(self.engine, "model", None)

    @property
    def sd_model_name(self) -> str | None:
        info = getattr(self.engine, "checkpoint_info", None)
        return info.name_for_extra if info is not None else None

    @property
    def sd_model_hash(self) -> str | None:
        info = getattr(self.engine, "checkpoint_info", None)
        return info.shorthash if info is not None else None

    @property
    def opts(self) -> Any:
        return getattr(self.engine, "options", None)

    @property
    def state(self) -> Any:
        return getattr(self.engine, "state", None)

    def close(self) -> None:
        """A1111 frees cached conditionings here; nothing is held by ``p`` in this app."""

    # -- copies ------------------------------------------------------------------------------------
    def __copy__(self) -> "StableDiffusionProcessing":
        """A copy whose fields can be changed without touching this one (A1111 scripts ``copy(p)`` per cell).

        The request's lists and dicts are copied one level deep; images are shared. The copy has not run
        yet (no plan); the always-on scripts, their arguments and the failed-hook sets are shared, so a hook
        switched off in one cell stays off for the rest of the call."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        req = dataclasses.replace(self.request)
        for f in dataclasses.fields(req):
            value = getattr(req, f.name)
            if isinstance(value, (list, dict)):
                object.__setattr__(req, f.name, _copy.copy(value))
        new.__dict__["request"] = req
        new.__dict__["plan"] = None
        new.__dict__["script_args"] = list(self.script_args)
        new.__dict__["comments"] = dict(self.comments)
        return new

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request!r}>"


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    pass


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    pass


def as_processing(engine_or_p: Any, request: GenerationRequest | None = None) -> StableDiffusionProcessing:
    """``process_images(p)`` and ``process_images(engine, request)`` both end here."""
    if request is None:
        if not isinstance(engine_or_p, StableDiffusionProcessing):
            raise TypeError("process_images takes (p) or (engine, request), got "
                            f"{type(engine_or_p).__name__} alone")
        if engine_or_p.engine is None:
            raise ValueError("p.engine is not set: make p with StableDiffusionProcessing(engine, request) or copy(p)")
        return engine_or_p
    return StableDiffusionProcessing(engine_or_p, request)
