"""A1111's Extras ("postprocessing") script API: ``ScriptPostprocessing`` subclasses with ``name``, ``order``,
``ui()`` (a dict of named controls) and ``process(pp, **values)``.

Extension files that define them load (the loader collects them, ordered by ``order``, as
``scripts.postprocessing_scripts_data``), and :meth:`PostprocessingRunner.run` applies them to one image with
given values. The Extras tab and ``/sdapi/v1/extra-*`` do not call them yet."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PostprocessedImageSharedInfo:
    target_width: int | None = None
    target_height: int | None = None


class PostprocessedImage:
    def __init__(self, image: Any) -> None:
        self.image = image
        self.info: dict[str, Any] = {}
        self.shared = PostprocessedImageSharedInfo()
        self.extra_images: list = []
        self.nametags: list[str] = []
        self.disable_processing = False
        self.caption: str | None = None

    def get_suffix(self, used_suffixes: dict | None = None) -> str:
        used = {} if used_suffixes is None else used_suffixes
        suffix = "-".join(self.nametags)
        if suffix:
            suffix = "-" + suffix
        if suffix not in used:
            used[suffix] = 1
            return suffix
        for i in range(1, 100):
            proposed = f"{suffix}-{i:02}"
            if proposed not in used:
                used[proposed] = 1
                return proposed
        return suffix


class ScriptPostprocessing:
    filename: str | None = None
    controls: dict | None = None
    args_from: int | None = None
    args_to: int | None = None
    order = 1000
    name: str | None = None
    group: Any = None

    def ui(self) -> dict:
        return {}

    def process(self, pp: PostprocessedImage, **args: Any) -> None:
        pass

    def process_firstpass(self, pp: PostprocessedImage, **args: Any) -> None:
        pass

    def image_changed(self) -> None:
        pass


def classes_in(module: Any, known: set[type]) -> list[type]:
    return [v for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, ScriptPostprocessing) and v is not ScriptPostprocessing
            and v not in known and getattr(v, "name", None)]


class PostprocessingRunner:
    """The Extras scripts of one Engine, made once, in ``order``."""

    def __init__(self, classes: list[type]) -> None:
        self.scripts: list[ScriptPostprocessing] = []
        for cls in sorted(classes, key=lambda c: (getattr(c, "order", 1000), getattr(c, "name", ""))):
            try:
                self.scripts.append(cls())
            except Exception as exc:  # noqa: BLE001
                log.error("Extras script %s could not be made: %s", cls.__name__, exc)

    def run(self, image: Any, values: dict[str, dict[str, Any]]) -> PostprocessedImage:
        """Apply the scripts named in ``values`` ({script name: {control name: value}}) to ``image``."""
        pp = PostprocessedImage(image)
        chosen = [s for s in self.scripts if s.name in values]
        for script in chosen:
            script.process_firstpass(pp, **values[script.name])
        for script in chosen:
            if pp.disable_processing:
                break
            script.process(pp, **values[script.name])
        return pp
