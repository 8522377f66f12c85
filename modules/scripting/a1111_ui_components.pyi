"""A1111's ``modules.ui_components``: the small Gradio component classes extensions build their UIs with.

Each one is a Gradio 6 component that tells the page to draw it as its base class (``get_block_name``), with
A1111's CSS classes. Imported only by code that builds a page (never on the API path)."""
from __future__ import annotations

from typing import Any

import gradio as gr


def _classes(kwargs: dict[str, Any], *names: str) -> None:
    current = kwargs.get("elem_classes") or []
    current = [current] if isinstance(current, str) else list(current)
    kwargs["elem_classes"] = current + [n for n in names if n not in current]


class FormComponent:
    webui_do_not_create_gradio_pyi_thank_you = True

    def get_expected_parent(self) -> Any:
        return FormRow

from gradio.events import Dependency

class ToolButton(gr.Button, FormComponent):
    """A small square button with an icon (A1111's ``tool`` class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _classes(kwargs, "tool")
        kwargs.setdefault("variant", "secondary")
        super().__init__(*args, **kwargs)

    def get_block_name(self) -> str:
        return "button"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class ResizeHandleRow(gr.Row):
    def __init__(self, **kwargs: Any) -> None:
        _classes(kwargs, "resize-handle-row")
        super().__init__(**kwargs)

    def get_block_name(self) -> str:
        return "row"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class FormRow(gr.Row):
    def get_block_name(self) -> str:
        return "row"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class FormColumn(gr.Column):
    def get_block_name(self) -> str:
        return "column"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class FormGroup(gr.Group):
    def get_block_name(self) -> str:
        return "group"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class FormHTML(gr.HTML, FormComponent):
    def get_block_name(self) -> str:
        return "html"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class FormColorPicker(gr.ColorPicker, FormComponent):
    def get_block_name(self) -> str:
        return "colorpicker"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class DropdownMulti(gr.Dropdown, FormComponent):
    def __init__(self, **kwargs: Any) -> None:
        kwargs["multiselect"] = True
        super().__init__(**kwargs)

    def get_block_name(self) -> str:
        return "dropdown"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class DropdownEditable(gr.Dropdown, FormComponent):
    def __init__(self, **kwargs: Any) -> None:
        kwargs["allow_custom_value"] = True
        super().__init__(**kwargs)

    def get_block_name(self) -> str:
        return "dropdown"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class InputAccordion(gr.Checkbox):
    """A checkbox shown as an accordion: ``with InputAccordion(False, label="My feature") as enabled:`` puts the
    controls inside it, and ``enabled`` is the checkbox, an input whose value says whether the feature is on."""

    global_index = 0

    def __init__(self, value: bool, **kwargs: Any) -> None:
        self.accordion_id = kwargs.get("elem_id") or f"input-accordion-{InputAccordion.global_index}"
        InputAccordion.global_index += 1
        label = kwargs.get("label", "")
        checkbox_args = {k: v for k, v in kwargs.items() if k not in ("open", "elem_id")}
        # Drawn as the first control inside the accordion (in __enter__), so the user can switch it.
        super().__init__(value, render=False, elem_id=f"{self.accordion_id}-checkbox", **checkbox_args)
        self.accordion = gr.Accordion(label=label, open=kwargs.get("open", bool(value)), elem_id=self.accordion_id,
                                      elem_classes=["input-accordion"])

    def extra(self) -> Any:
        return gr.Column(elem_id=f"{self.accordion_id}-extra", elem_classes="input-accordion-extra", min_width=0)

    def __enter__(self) -> "InputAccordion":
        self.accordion.__enter__()
        self.render()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.accordion.__exit__(exc_type, exc, tb)

    def get_block_name(self) -> str:
        return "checkbox"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component