"""Launch the web UI and/or the API: `python webui.py [A1111 flags]` (webui.sh does the set-up)."""
from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import webbrowser
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

# Never ask a model hub: everything the app needs ships with it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO_ROOT = Path(__file__).resolve().parent
log = logging.getLogger("webui")

UI_PORT = 7860
API_ONLY_PORT = 7861
# Without --port, this many ports from the default are tried (A1111: "defaults to 7860 if available").
PORT_ATTEMPTS = 100


def build_engine(args):
    from modules.engine.devices import DeviceConfig
    from modules.engine.engine import Engine
    from modules.settings.options import Options
    from modules.settings.paths import Paths

    paths = Paths.from_args(args, REPO_ROOT)
    for folder in (paths.outputs_dir, paths.cache_dir):
        Path(folder).mkdir(parents=True, exist_ok=True)
    options = Options(paths.config_file)
    devices = DeviceConfig.from_args(args)
    engine = Engine(args=args, paths=paths, options=options, devices=devices)
    engine.refresh_checkpoints()
    select_cmd_ckpt(engine, args)
    engine.available_checkpoints()  # makes the built-in model now if there is no checkpoint
    engine.scripts.load()  # scripts and extensions, before any callback they register is needed
    return engine


def select_cmd_ckpt(engine, args) -> None:
    """--ckpt: A1111 lists the file and makes it the selected checkpoint, whatever config.json says."""
    info = engine.checkpoints.cmd_ckpt
    if info is not None:
        engine.options.set("sd_model_checkpoint", info.title, run_callbacks=False)
        return
    ckpt = getattr(args, "ckpt", None)
    if ckpt and os.path.abspath(ckpt) != str(REPO_ROOT / "model.ckpt"):
        log.warning("--ckpt %s: no such checkpoint file; using the checkpoint the settings name", ckpt)


class ServerControl:
    """Stop or restart the uvicorn server serving the app, from any thread.

    ``create_app`` puts :meth:`request_shutdown` and :meth:`request_restart` on ``app.state`` for the
    API's ``/sdapi/v1/server-stop`` and ``/server-restart``. Both make uvicorn exit cleanly (it checks
    ``should_exit`` every 0.1 s, finishes the requests in flight and runs the shutdown events); after a
    restart request :func:`main` then starts the program again with the same flags. A request made
    before :meth:`attach` is remembered and honoured once a server is attached.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: Any = None
        self.action: str | None = None  # None, "stop" or "restart"
        self.requested = threading.Event()

    def attach(self, server: Any) -> None:
        with self._lock:
            self._server = server
            if self.requested.is_set():
                server.should_exit = True

    def _request(self, action: str) -> None:
        with self._lock:
            if self.action != "stop":  # a stop wins over a restart asked for at the same time
                self.action = action
            self.requested.set()
            if self._server is not None:
                self._server.should_exit = True

    def request_shutdown(self) -> None:
        self._request("stop")

    def request_restart(self) -> None:
        self._request("restart")


class ThemeRedirectMiddleware:
    """``--theme``: the page at ``/`` is redirected to ``/?__theme=<light|dark>``, which Gradio reads."""

    def __init__(self, app: Any, theme: str):
        self.app = app
        self.theme = theme

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") == "/" and scope.get("method") in ("GET", "HEAD"):
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            if not any(k == "__theme" for k, _ in query):
                location = scope.get("root_path", "") + "/?" + urlencode(query + [("__theme", self.theme)])
                await send({"type": "http.response.start", "status": 307,
                            "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


def create_app(engine, args):
    """The FastAPI app: API (``--api``/``--nowebui``), file routes and the Gradio page, behind
    authentication and the request body limit. ``app.state.request_shutdown()`` /
    ``request_restart()`` stop / restart the server :func:`main` runs it on (see :class:`ServerControl`)."""
    from fastapi import FastAPI

    from modules.scripting import extensions
    from modules.server import api_docs, file_serving
    from modules.server import auth as server_auth
    from modules.server import upload_limits
    from modules.server.api.api import mount_api, mount_internal_routes

    auth = server_auth.AuthConfig.from_args(args)
    app = FastAPI(title="Stable Diffusion web UI API", docs_url=None, redoc_url="/redoc")
    api_docs.mount_api_docs(app)  # /docs from the swagger-ui-bundle package: works offline
    control = app.state.server_control = ServerControl()
    app.state.request_shutdown = control.request_shutdown
    app.state.request_restart = control.request_restart
    if args.api or args.nowebui:
        mount_api(app, engine)
    if not args.nowebui:
        import gradio as gr

        from modules.page import page as ui
        from modules.server.api.api import task_tracker

        file_serving.add_file_routes(app, engine)  # before the mount at "/", which would catch them
        extensions.add_routes(app, engine)  # the extensions' javascript/ and style.css
        mount_internal_routes(app, engine)  # the page's progress polling
        ui.mount_page_routes(app, engine)
        demo = ui.create_ui(engine, tasks=task_tracker(app), restart=control.request_restart)
        # Extensions add their routes here (A1111's on_app_started), before "/" would catch them.
        engine.callbacks.run("app_started", demo, app)
        gr.mount_gradio_app(app, demo, path="/", head=ui.page_head(engine))
        if getattr(args, "theme", None) in ("light", "dark"):
            app.add_middleware(ThemeRedirectMiddleware, theme=args.theme)
    else:
        engine.callbacks.run("app_started", None, app)
    _add_cors(app, args)
    # Added last = runs first: a request without credentials is refused before its body is read.
    app.add_middleware(upload_limits.BodySizeLimitMiddleware, max_bytes=upload_limits.MAX_REQUEST_BODY_BYTES)
    app.add_middleware(server_auth.BasicAuthMiddleware, config=auth)
    return app


def _add_cors(app, args) -> None:
    """--cors-allow-origins / --cors-allow-origins-regex, as A1111: browser-based clients on other origins."""
    origins = [o.strip() for o in (getattr(args, "cors_allow_origins", None) or "").split(",") if o.strip()]
    regex = getattr(args, "cors_allow_origins_regex", None)
    if not origins and not regex:
        return
    from fastapi.middleware.cors import CORSMiddleware

    app.add_middleware(CORSMiddleware, allow_origins=origins, allow_origin_regex=regex, allow_methods=["*"],
                       allow_credentials=True, allow_headers=["*"])


def server_host(args) -> str:
    """--server-name wins, then --listen (all interfaces), else this machine only."""
    if getattr(args, "server_name", None):
        return args.server_name
    return "0.0.0.0" if getattr(args, "listen", False) else "127.0.0.1"


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port; OSError when the address cannot be bound."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def open_server_socket(args) -> socket.socket:
    """--port exactly, or the first free port from the default (7860, API only 7861)."""
    host = server_host(args)
    if args.port is not None:
        try:
            return bind_socket(host, args.port)
        except OSError as e:
            raise SystemExit(f"--port {args.port}: cannot listen on {host}:{args.port}: {e.strerror or e}") from e
    start = API_ONLY_PORT if args.nowebui else UI_PORT
    last: OSError | None = None
    for port in range(start, start + PORT_ATTEMPTS):
        try:
            return bind_socket(host, port)
        except OSError as e:
            last = e
    raise SystemExit(f"cannot listen on {host}: ports {start}-{start + PORT_ATTEMPTS - 1} are all taken "
                     f"({last.strerror if last else ''}); choose one with --port")


def local_url(args, sock: socket.socket) -> str:
    """The URL a browser on this machine opens (0.0.0.0 / :: are not addresses to visit)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    elif getattr(args, "server_name", None):
        host = args.server_name
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if getattr(args, "tls_keyfile", None) and getattr(args, "tls_certfile", None) else "http"
    return f"{scheme}://{host}:{port}"


def make_server(app, args):
    import uvicorn

    tls = bool(getattr(args, "tls_keyfile", None) and getattr(args, "tls_certfile", None))
    config = uvicorn.Config(
        app, log_level="warning", timeout_keep_alive=getattr(args, "timeout_keep_alive", 30) or 30,
        ssl_keyfile=args.tls_keyfile if tls else None, ssl_certfile=args.tls_certfile if tls else None)
    return uvicorn.Server(config)


def open_browser_when_started(server, url: str, opener: Callable[[str], Any] | None = None,
                              timeout: float = 600.0) -> threading.Thread:
    """--autolaunch: open ``url`` once uvicorn says it is serving (never if it stops first)."""
    def wait_and_open() -> None:
        deadline = time.monotonic() + timeout
        while not server.started:
            if server.should_exit or time.monotonic() > deadline:
                return
            time.sleep(0.05)
        try:
            (opener or webbrowser.open)(url)
        except Exception as exc:  # no browser here: the URL is printed anyway
            log.warning("Could not open a browser: %s", exc)

    thread = threading.Thread(target=wait_and_open, daemon=True, name="autolaunch")
    thread.start()
    return thread


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
    try:
        engine = build_engine(args)
        engine.extensions.record_preload_errors(preload.errors)
        if not (args.ui_debug_mode or (args.nowebui and args.skip_load_model_at_start)):
            threading.Thread(target=_load_initial_model, args=(engine,), daemon=True, name="initial-model-load").start()
        app = create_app(engine, args)
        server = make_server(app, args)
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
    if control.action == "restart":
        restart_program(sys.argv[1:] if argv is None else argv)
    return 0


def restart_program(argv: list[str]) -> None:
    """Replace this process by a fresh ``webui.py`` with the same flags (COMMANDLINE_ARGS is inherited)."""
    print("Restarting...", flush=True)
    os.execv(sys.executable, [sys.executable, str(Path(__file__).resolve()), *argv])


def _load_initial_model(engine) -> None:
    try:
        engine.ensure_model()
        engine.scripts.check_model_loaded()
    except Exception as exc:  # the UI shows the error on the next generation; keep serving
        log.error("Initial model load failed: %s", exc)


if __name__ == "__main__":
    sys.exit(main())
