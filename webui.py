"""Launch the web UI and/or the API: `python webui.py [A1111 flags]` (webui.sh does the set-up).

This is the composition root: it builds the Engine, puts A1111's script layer on it, and mounts the doors
(the HTTP API and the page) on one FastAPI app. Only this file knows all the layers.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Never ask a model hub: everything the app needs ships with it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
from modules.engine.host_memory import request_huge_pages  # noqa: E402  (imports no torch)

request_huge_pages()  # read by PyTorch at its first allocation: before anything imports torch

from modules.server.app import (  # noqa: E402  (the environment above comes first)
    ServerControl, bind_socket, local_url, make_server, open_browser_when_started, open_server_socket, server_host,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

    from modules.engine.engine import Engine

REPO_ROOT = Path(__file__).resolve().parent
log = logging.getLogger("webui")

__all__ = ["ServerControl", "bind_socket", "build_engine", "create_app", "local_url", "main", "make_server",
           "open_browser_when_started", "open_server_socket", "server_host"]


def build_engine(args: argparse.Namespace) -> "Engine":
    """The Engine for ``args``, with its script layer loaded (scripts and extensions are imported before any
    callback they register is needed). With ``--replicas`` its script host is the cluster's dispatcher
    (:func:`attach_cluster` connects it): this Engine then holds settings and lists and loads no model."""
    from modules.engine.devices import DeviceConfig
    from modules.engine.engine import Engine
    from modules.scripting.host import ScriptHost
    from modules.settings.options import Options
    from modules.settings.paths import Paths

    from modules.core import request_bounds
    from modules.engine.host_memory import tune_malloc

    tune_malloc()  # before any model tensor: generations run in worker threads
    request_bounds.configure(args)  # the --max-* flags
    paths = Paths.from_args(args, REPO_ROOT)
    for folder in (paths.outputs_dir, paths.cache_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)
    options = Options(paths.config_file)
    devices = DeviceConfig.from_args(args)
    engine = Engine(args=args, paths=paths, options=options, devices=devices)
    engine.refresh_checkpoints()
    select_cmd_ckpt(engine, args)
    engine.available_checkpoints()  # makes the built-in model now if there is no checkpoint
    if getattr(args, "replicas", 0):
        from modules.cluster.dispatch import ClusterHost

        ClusterHost.for_engine(engine)  # before anything asks for the plain host
    ScriptHost.for_engine(engine).load()
    return engine


def attach_cluster(engine: "Engine", args: argparse.Namespace) -> Any:
    """``--replicas N``: start (or join, ``--ray-address``) Ray and N Engine replicas behind ``engine``'s
    script host. Returns the cluster (``shutdown()`` ends it). Only this mode imports ``ray``."""
    from modules.cluster import runtime
    from modules.cluster.dispatch import ClusterHost
    from modules.scripting.host import ScriptHost

    if not runtime.ray_available():
        raise SystemExit("--replicas needs Ray Serve: pip install '.[cluster]' (or: pip install 'ray[serve]')")
    host = ScriptHost.for_engine(engine)
    assert isinstance(host, ClusterHost), "build_engine must see --replicas first"
    cluster = runtime.start(args, REPO_ROOT)
    host.attach(cluster)
    return cluster


def select_cmd_ckpt(engine: "Engine", args: argparse.Namespace) -> None:
    """--ckpt: A1111 lists the file and makes it the selected checkpoint, whatever config.json says."""
    info = engine.checkpoints.cmd_ckpt
    if info is not None:
        engine.options.set("sd_model_checkpoint", info.title, run_callbacks=False)
        return
    ckpt = getattr(args, "ckpt", None)
    if ckpt and os.path.abspath(ckpt) != str(REPO_ROOT / "model.ckpt"):
        log.warning("--ckpt %s: no such checkpoint file; using the checkpoint the settings name", ckpt)


def create_app(engine: "Engine", args: argparse.Namespace) -> "FastAPI":
    """The FastAPI app: API (``--api``/``--nowebui``), file routes and the Gradio page, behind
    authentication and the request body limit. ``app.state.request_shutdown()`` /
    ``request_restart()`` stop / restart the server :func:`main` runs it on (see :class:`ServerControl`)."""
    from modules.scripting import extensions
    from modules.scripting.host import ScriptHost
    from modules.server import app as server_app
    from modules.server import file_serving
    from modules.server.api.api import mount_api, mount_internal_routes, task_tracker

    host = ScriptHost.for_engine(engine)
    app = server_app.create_base_app(args)
    if args.api or args.nowebui:
        mount_api(app, host)
    if not args.nowebui:
        from modules.page import page

        from modules.scripting.extension_files import find_extension_file

        # Before the mount at "/", which would catch them; extensions' data files too, as A1111 serves them.
        file_serving.add_file_routes(app, engine, fallback=lambda raw: find_extension_file(host, raw))
        extensions.add_routes(app, host.extensions)  # the extensions' javascript/ and style.css
        mount_internal_routes(app, engine)  # the page's progress polling
        page.mount(app, host, tasks=task_tracker(app), restart=app.state.request_restart)
    else:
        host.callbacks.run("app_started", None, app)
    server_app.add_middleware(app, args)
    return app


def main(argv: list[str] | None = None) -> int:
    from modules.settings import cmd_args
    from modules.scripting import extensions
    from modules.server import auth as server_auth

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        # Extensions' preload.py may add flags: collected before the flags are parsed (spec §12.1).
        preload = extensions.preload_hooks(argv, repo_root=REPO_ROOT)
        args = cmd_args.parse_args(argv, preload=preload.hooks)
        for warning in cmd_args.validate_args(args):
            log.warning(warning)
        auth = server_auth.AuthConfig.from_args(args)
    except SystemExit as e:  # argparse (already printed) or a flag that cannot work here
        if isinstance(e.code, str):
            print(f"error: {e.code}", file=sys.stderr)
            return 1
        return int(e.code or 0)
    except ValueError as e:  # malformed --gradio-auth / --api-auth / --gradio-auth-path
        print(f"error: {e}", file=sys.stderr)
        return 1
    if getattr(args, "loglevel", None):
        try:
            logging.getLogger().setLevel(args.loglevel.upper())
        except ValueError:
            log.warning("--loglevel %s: expected CRITICAL, ERROR, WARNING, INFO or DEBUG; keeping INFO", args.loglevel)
    if args.exit:
        print("Installation complete (--exit given, not launching).")
        return 0
    for warning in server_auth.exposure_warnings(args, auth):
        log.warning(warning)
    gpu_warning = cmd_args.cuda_check_message(args)
    if gpu_warning:
        log.warning(gpu_warning)
    extensions_allowed, extensions_reason = cmd_args.extension_install_allowed(args)
    if not extensions_allowed:
        log.info("Extensions: %s", extensions_reason)

    try:
        sock = open_server_socket(args)
    except SystemExit as e:
        print(f"error: {e.code}", file=sys.stderr)
        return 1
    cluster = None
    try:
        engine = build_engine(args)
        from modules.scripting.host import ScriptHost

        ScriptHost.for_engine(engine).extensions.record_preload_errors(preload.errors)
        if args.replicas:
            try:
                cluster = attach_cluster(engine, args)
            except SystemExit as e:
                print(f"error: {e.code}", file=sys.stderr)
                return 1
        elif not (args.ui_debug_mode or (args.nowebui and args.skip_load_model_at_start)):
            threading.Thread(target=_load_initial_model, args=(engine,), daemon=True, name="initial-model-load").start()
        app = create_app(engine, args)
        server = make_server(app, args, on_exit=engine.state.shutdown)
        control: ServerControl = app.state.server_control
        control.attach(server)
        app.state.bound_address = sock.getsockname()
        url = local_url(args, sock)
        print(f"Running on local URL:  {url}", flush=True)
        if args.autolaunch:
            open_browser_when_started(server, url)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its clean shutdown; nothing to report
            pass
    finally:
        sock.close()
        if cluster is not None:
            cluster.shutdown()
    if control.action == "restart":
        restart_program(sys.argv[1:] if argv is None else argv)
    return 0


def restart_program(argv: list[str]) -> None:
    """Replace this process by a fresh ``webui.py`` with the same flags (COMMANDLINE_ARGS is inherited)."""
    print("Restarting...", flush=True)
    os.execv(sys.executable, [sys.executable, str(Path(__file__).resolve()), *argv])


def _load_initial_model(engine: "Engine") -> None:
    from modules.scripting.host import ScriptHost

    try:
        engine.ensure_model()
        ScriptHost.for_engine(engine).check_model_loaded()
        return
    except Exception as exc:  # keep serving: with the demo model, saying why
        log.error("Initial model load failed: %s", exc)
        reason = str(exc)
    if engine.model is not None:
        return
    try:
        builtin = engine._builtin_info()
        engine.load_checkpoint(builtin)  # the setting in config.json is left as the user chose it
        ScriptHost.for_engine(engine).check_model_loaded()
        log.warning("NOTICE: serving the demo model %s because the chosen checkpoint failed to load: %s",
                    builtin.title, reason)
    except Exception as exc:  # pragma: no cover - the demo model ships with the app
        log.error("The demo model failed to load too: %s", exc)


if __name__ == "__main__":
    sys.exit(main())
