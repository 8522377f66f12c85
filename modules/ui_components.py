"""A1111's ``modules.ui_components``: ToolButton, FormRow, InputAccordion... A thin facade; the code lives in
``modules.scripting.a1111_ui_components``."""
from modules.scripting.a1111_ui_components import (  # noqa: F401
    FormComponent, ToolButton, ResizeHandleRow, FormRow, FormColumn, FormGroup, FormHTML, FormColorPicker,
    DropdownMulti, DropdownEditable, InputAccordion,
)
