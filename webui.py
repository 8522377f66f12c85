"""Launch the web UI and/or the API: `python webui.py [A1111 flags]` (webui.sh does the set-up)."""
from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

# Never ask a model hub: everything the app needs ships with it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO_ROOT = Path(__file__).resolve().parent
log = logging.getLogger("webui")


def build_engine(args):
    from modules.devices import DeviceConfig
    from modules.engine import Engine
    from modules.options import Options
    from modules.paths import Paths

    paths = Paths.from_args(args, REPO_ROOT)
    for folder in (paths.outputs_dir, paths.cache_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)
    options = Options(paths.config_file)
    devices = DeviceConfig.from_args(args)
    engine = Engine(args=args, paths=paths, options=options, devices=devices)
    engine.refresh_checkpoints()
    engine.available_checkpoints()  # makes the built-in model now if there is no checkpoint
    return engine


def create_app(engine, args):
    from fastapi import FastAPI

    from modules.api.api import mount_api

    app = FastAPI(title="Stable Diffusion web UI API", docs_url="/docs", redoc_url="/redoc")
    if args.api or args.nowebui:
        mount_api(app, engine)
    if not args.nowebui:
        import gradio as gr

        from modules.ui_minimal import create_ui

        gr.mount_gradio_app(app, create_ui(engine), path="/")
    return app


def main(argv: list[str] | None = None) -> int:
    from modules.cmd_args import parse_args, validate_args

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    for warning in validate_args(args):
        log.warning(warning)
    if args.exit:
        print("Installation complete (--exit given, not launching).")
        return 0
    engine = build_engine(args)
    threading.Thread(target=_load_initial_model, args=(engine,), daemon=True, name="initial-model-load").start()

    import uvicorn

    host = "0.0.0.0" if args.listen else (args.server_name or "127.0.0.1")
    port = args.port or (7861 if args.nowebui else 7860)
    if args.listen and not (args.gradio_auth or args.api_auth):
        log.warning("--listen without --gradio-auth/--api-auth: anyone on your network can use this server.")
    app = create_app(engine, args)
    print(f"Running on local URL:  http://{host}:{port}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0


def _load_initial_model(engine) -> None:
    try:
        engine.ensure_model()
    except Exception as exc:  # the UI shows the error on the next generation; keep serving
        log.error("Initial model load failed: %s", exc)


if __name__ == "__main__":
    sys.exit(main())
