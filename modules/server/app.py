"""The server door's plumbing: the FastAPI app with the API and the file routes, its middleware, the listening
socket and uvicorn. Nothing here imports the page: the launcher (``webui.py``) mounts it on the app.
"""
from __future__ import annotations

import argparse
import logging
import socket
import threading
import time
import webbrowser
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI

from modules.server import auth as server_auth
from modules.server import json_guard, path_guard, upload_limits

log = logging.getLogger(__name__)

UI_PORT = 7860
API_ONLY_PORT = 7861
# Without --port, this many ports from the default are tried (A1111: "defaults to 7860 if available").
PORT_ATTEMPTS = 100


def create_base_app(args: argparse.Namespace) -> FastAPI:
    """An app with the server control on ``app.state`` (``request_shutdown()`` / ``request_restart()``)."""
    from modules.server import api_docs

    app = FastAPI(title="Stable Diffusion web UI API", docs_url=None, redoc_url="/redoc")
    api_docs.mount_api_docs(app)  # /docs from the swagger-ui-bundle package: works offline
    control = app.state.server_control = ServerControl()
    app.state.request_shutdown = control.request_shutdown
    app.state.request_restart = control.request_restart
    return app


def add_middleware(app: FastAPI, args: argparse.Namespace) -> None:
    """CORS, the body limit and authentication, after every route is mounted."""
    _add_cors(app, args)
    if getattr(args, "theme", None) in ("light", "dark") and not args.nowebui:
        app.add_middleware(ThemeRedirectMiddleware, theme=args.theme)
    app.add_middleware(json_guard.JsonValueCountGuard)
    app.add_middleware(path_guard.ControlCharacterPathGuard)
    # Added last = runs first: a request without credentials is refused before its body is read.
    app.add_middleware(upload_limits.BodySizeLimitMiddleware, max_bytes=upload_limits.MAX_REQUEST_BODY_BYTES)
    app.add_middleware(server_auth.BasicAuthMiddleware, config=server_auth.AuthConfig.from_args(args))


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


# SIGTERM / Ctrl-C: requests still running after this many seconds are cancelled (the job is interrupted at once).
SHUTDOWN_GRACE_SECONDS = 5


def make_server(app, args, on_exit: Callable[[], Any] | None = None):
    """The uvicorn server; ``on_exit`` (the engine's ``state.shutdown``) runs when a signal asks it to stop, so
    that the running generation and every queued one end within a sampling step instead of holding the exit."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            super().handle_exit(sig, frame)
            if on_exit is not None:
                try:
                    on_exit()
                except Exception:  # noqa: BLE001 - stopping must not fail
                    log.exception("interrupting the running job on shutdown")

    tls = bool(getattr(args, "tls_keyfile", None) and getattr(args, "tls_certfile", None))
    config = uvicorn.Config(
        app, log_level="warning", timeout_keep_alive=getattr(args, "timeout_keep_alive", 30) or 30,
        ssl_keyfile=args.tls_keyfile if tls else None, ssl_certfile=args.tls_certfile if tls else None,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS)
    return Server(config)


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
