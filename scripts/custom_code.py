"""A1111's built-in "Custom code": run Python typed into the page, with ``p`` and ``processed`` in scope.

Only with ``--allow-code`` (running code sent to the server is remote code execution otherwise): without the
flag the script is not offered at all, on the page nor through the API. The code is run as a function body,
so it may ``return`` a Processed; if it returns nothing, ``process_images(p)`` runs as usual."""
from __future__ import annotations

import ast
from typing import Any

from modules import processing, scripts
from modules.core.request import RequestError

TITLE = "Custom code"
EXAMPLE = "return process_images(p)"


def _allowed(engine: Any) -> bool:
    return bool(getattr(getattr(engine, "args", None), "allow_code", False))


class Script(scripts.Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return _allowed(self.engine)

    def ui(self, is_img2img: bool) -> list:
        import gradio as gr

        code = gr.Code(value=EXAMPLE, language="python", label="Python code", elem_id=self.elem_id("code"))
        indent = gr.Number(label="Indent level", value=2, precision=0, elem_id=self.elem_id("indent_level"))
        return [code, indent]

    def run(self, p: Any, code: str = EXAMPLE, indent_level: Any = 2, *_: Any) -> Any:
        if not _allowed(p.engine):  # also checked here: a request may name the script directly
            raise RequestError("script_name", "Custom code needs the --allow-code launch flag")
        body = "\n".join("    " + line for line in str(code or "").splitlines()) or "    pass"
        source = f"def __webuitemp__():\n{body}"
        try:
            ast.parse(source)
        except SyntaxError as exc:
            raise RequestError("script_args", f"Custom code: {exc.msg} (line {max(1, (exc.lineno or 2) - 1)})") from None
        namespace: dict[str, Any] = {"p": p, "processed": None, "process_images": processing.process_images,
                                     "Processed": processing.Processed}
        exec(compile(source, "<custom code>", "exec"), namespace)  # noqa: S102 - the user's own code, --allow-code
        result = namespace["__webuitemp__"]()
        return result if result is not None else processing.process_images(p)
