"""The API door runs without the page: serving /sdapi/v1 never imports gradio."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys, tempfile
    import webui
    from fastapi.testclient import TestClient
    from modules.settings import cmd_args

    args = cmd_args.parse_args(["--data-dir", tempfile.mkdtemp(), "--nowebui"], environ={})
    client = TestClient(webui.create_app(webui.build_engine(args), args))
    response = client.post("/sdapi/v1/txt2img", json={"prompt": "a red circle", "steps": 2, "width": 64, "height": 64})
    print("STATUS", response.status_code, "GRADIO", "gradio" in sys.modules)
""")


def test_serving_the_api_never_imports_gradio():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert "STATUS 200 GRADIO False" in out.stdout, out.stdout + out.stderr[-2000:]
