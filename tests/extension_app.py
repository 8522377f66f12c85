"""Shared helper for tests that install one single-file extension: a data folder holding one tiny SD1
checkpoint and ``extensions/<name>/scripts/<file>``, the Engine built over it as ``webui.py --nowebui`` builds
it, and a TestClient of its API."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests import tiny_models


def extension_api(data: Path, extension: str, script: str, source: str,
                  config: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """``(engine, client)`` for ``data`` with the extension script ``source`` installed as
    ``extensions/<extension>/scripts/<script>``; ``config`` is written as the data folder's config.json."""
    import webui
    from fastapi.testclient import TestClient

    from modules.settings import cmd_args

    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=1), ckpt_dir / "tiny.safetensors", "sd1")
    scripts_dir = data / "extensions" / extension / "scripts"
    scripts_dir.mkdir(parents=True)
    (scripts_dir / script).write_text(source, encoding="utf-8")
    if config is not None:
        (data / "config.json").write_text(json.dumps(config), encoding="utf-8")
    args = cmd_args.parse_args(["--data-dir", str(data), "--nowebui"], environ={})
    engine = webui.build_engine(args)
    return engine, TestClient(webui.create_app(engine, args), raise_server_exceptions=True)
