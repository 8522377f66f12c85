"""Server safety: authentication, what files are served, body limits, malicious pickles, binding and shutdown.

One engine over a data folder made here (tiny checkpoint, adapters with previews, malicious pickles in every
model folder, output images and symlinks out of it) and one app with the Gradio page, built once per module.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import socket
import threading
import urllib.error
import urllib.request

import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.websockets import WebSocketDisconnect

import webui
from modules.settings import cmd_args
from modules.engine import file_access as file_serving
from modules.server import app as server_app
from modules.server import auth as server_auth
from modules.server import upload_limits
from modules.core.request import GenerationRequest
from modules.models.safe_load import CheckpointLoadError
from tests import network_files, tiny_models

UI = ("ui", "ui-secret")
UI2 = ("second", "pw:with:colons")
API = ("api", "api-secret")


class _Evil:
    """Unpickling this runs exec(), which creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _png(path, color=(10, 20, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("server-safety")
    d = root / "data"
    models = d / "models"
    components = tiny_models.tiny_sd1(seed=0)
    tiny_models.write_single_file(components, models / "Stable-diffusion" / "a-tiny.safetensors", "sd1")
    markers = root / "markers"
    markers.mkdir()
    torch.save({"state_dict": {"w": torch.ones(2)}, "payload": _Evil(markers / "ckpt")},
               models / "Stable-diffusion" / "zz-evil.ckpt")
    network_files.save_safetensors(network_files.kohya_lora(components, seed=1), models / "Lora" / "good.safetensors")
    _png(models / "Lora" / "good.preview.png", (1, 2, 3))
    torch.save({"payload": _Evil(markers / "lora")}, models / "Lora" / "evil.pt")
    (models / "hypernetworks").mkdir(parents=True)
    torch.save({32: [{}], "payload": _Evil(markers / "hypernet")}, models / "hypernetworks" / "evilhyper.pt")
    (models / "embeddings").mkdir(parents=True)
    torch.save({"string_to_param": {"*": torch.zeros(1, 32)}, "payload": _Evil(markers / "embedding")},
               models / "embeddings" / "evilemb.pt")

    outside = root / "outside"
    _png(outside / "secret.png", (200, 0, 0))
    (outside / "secret.txt").write_text("secret")
    # A LoRA whose preview is a symlink to a picture outside the models folder.
    network_files.save_safetensors(network_files.kohya_lora(components, seed=2), models / "Lora" / "linked.safetensors")
    (models / "Lora" / "linked.preview.png").symlink_to(outside / "secret.png")

    outputs = d / "outputs"
    _png(outputs / "txt2img-images" / "ok.png", (0, 255, 0))
    (outputs / "notes.txt").write_text("not an image")
    (outputs / "link.png").symlink_to(outside / "secret.png")
    (outputs / "linkdir").symlink_to(outside, target_is_directory=True)
    (outputs / "txt.png").symlink_to("notes.txt")  # inside outputs, but not an image
    return {"root": root, "data": d, "models": models, "markers": markers, "outside": outside, "outputs": outputs}


def _args(data, *extra):
    return cmd_args.parse_args(["--data-dir", str(data["data"]), *extra], environ={})


@pytest.fixture(scope="module")
def engine(data):
    eng = webui.build_engine(_args(data))
    eng.options.set("sd_model_checkpoint", "a-tiny.safetensors")
    return eng


@pytest.fixture(scope="module")
def client(data, engine):
    args = _args(data, "--api", "--gradio-auth", f"{UI[0]}:{UI[1]}, {UI2[0]}:{UI2[1]}",
                 "--api-auth", f"{API[0]}:{API[1]}", "--theme", "dark")
    app = webui.create_app(engine, args)
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def open_api_client(data, engine):
    """--nowebui with no credentials at all."""
    with TestClient(webui.create_app(engine, _args(data, "--nowebui"))) as c:
        yield c


def _basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# --- authentication ---------------------------------------------------------------------------------------

def _assert_refused(response):
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic realm=")
    assert response.text == "Unauthorized"


@pytest.mark.parametrize("headers", [
    {}, _basic(UI[0], "wrong"), _basic("nobody", UI[1]), _basic(*API), {"Authorization": "Basic !!!notbase64"},
    {"Authorization": "Bearer " + UI[1]}, {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()},
])
@pytest.mark.parametrize("path", ["/?__theme=dark", "/config", "/gradio_api/info", "/sd_extra_networks/thumb?filename=x",
                                  "/file=outputs/txt2img-images/ok.png", "/nonexistent"])
def test_ui_needs_gradio_credentials(client, headers, path):
    _assert_refused(client.get(path, headers=headers))


def test_ui_accepts_each_gradio_user(client):
    for user in (UI, UI2):
        r = client.get("/?__theme=dark", headers=_basic(*user))
        assert r.status_code == 200 and "<html" in r.text.lower()
        assert client.get("/config", headers=_basic(*user)).status_code == 200


@pytest.mark.parametrize("path", ["/sdapi/v1/progress", "/sdapi/v1/../v1/progress", "/sdapi",
                                  "/docs", "/openapi.json", "/redoc"])
def test_api_and_docs_need_api_credentials(client, path):
    for headers in ({}, _basic(*UI), _basic(API[0], "nope")):
        _assert_refused(client.get(path, headers=headers))


def test_api_accepts_api_credentials(client):
    r = client.get("/sdapi/v1/progress", headers=_basic(*API))
    assert r.status_code == 200 and "progress" in r.json()
    assert client.get("/openapi.json", headers=_basic(*API)).json()["info"]["title"] == "Stable Diffusion web UI API"
    assert client.get("/docs", headers=_basic(*API)).status_code == 200


def test_post_without_credentials_is_refused_before_the_body_is_read(client):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 1})
    _assert_refused(r)


def test_websocket_without_credentials_is_closed(client):
    with pytest.raises(WebSocketDisconnect) as e:
        with client.websocket_connect("/gradio_api/queue/join"):
            pass
    assert e.value.code == 1008


def test_without_api_auth_the_api_is_open(open_api_client):
    assert open_api_client.get("/sdapi/v1/progress").status_code == 200
    assert open_api_client.get("/docs").status_code == 200
    # no web UI: no page and no file routes
    assert open_api_client.get("/sd_extra_networks/thumb?filename=x").status_code == 404


def test_credentials_are_checked_in_constant_time(monkeypatch):
    """Every configured pair is compared (both fields), whichever user is asked for and whether it matches."""
    creds = server_auth.CredentialSet([("alice", "a"), ("bob", "b"), ("carol", "c")])
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(server_auth.hmac, "compare_digest", counting)
    for user, password, expected in [("alice", "a", True), ("bob", "wrong", False), ("nobody", "x", False),
                                     ("carol", "c", True), ("a-much-longer-user-name", "p" * 100, False)]:
        calls.clear()
        assert creds.check(user, password) is expected
        assert calls == [(32, 32)] * 6  # 3 pairs x (user, password), fixed-size digests
    assert not server_auth.CredentialSet([])
    assert server_auth.CredentialSet([("u", "")]).check("u", "") is True


def test_parse_credentials():
    parse = server_auth.parse_credentials
    assert parse(" a:1 , b:2:3,,\nc: spaced pw \n\n", "--gradio-auth") == [("a", "1"), ("b", "2:3"), ("c", " spaced pw")]
    assert parse("", "--api-auth") == []
    with pytest.raises(ValueError) as e:
        parse("ok:1,hunter2", "--api-auth")
    assert str(e.value) == "--api-auth: entry 2 is not of the form username:password"
    assert "hunter2" not in str(e.value)
    with pytest.raises(ValueError, match=r"F: line 2, entry 1 is not"):
        parse("a:1\nsecret\n", "F")


def test_gradio_auth_path_file(tmp_path):
    f = tmp_path / "auth.txt"
    f.write_text("u1:p1,u2:p2\n\nu3:p:3\n", encoding="utf-8")
    args = cmd_args.parse_args(["--gradio-auth", "u0:p0", "--gradio-auth-path", str(f)], environ={})
    assert server_auth.gradio_credentials(args) == [("u0", "p0"), ("u1", "p1"), ("u2", "p2"), ("u3", "p:3")]
    config = server_auth.AuthConfig.from_args(args)
    assert config.ui.check("u3", "p:3") and not config.ui.check("u3", "p") and not config.api
    with pytest.raises(ValueError, match=r"--gradio-auth-path .*missing.txt: cannot read the file"):
        server_auth.gradio_credentials(cmd_args.parse_args(["--gradio-auth-path", str(tmp_path / "missing.txt")], environ={}))
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="holds no username:password entry"):
        server_auth.gradio_credentials(cmd_args.parse_args(["--gradio-auth-path", str(tmp_path / "empty.txt")], environ={}))


def test_realms():
    both = server_auth.AuthConfig(ui=server_auth.CredentialSet([("u", "p")]), api=server_auth.CredentialSet([("a", "b")]))
    assert both.realm_for("/sdapi/v1/txt2img")[0] == server_auth.API_REALM
    assert both.realm_for("/docs")[0] == server_auth.API_REALM
    assert both.realm_for("/sdapix")[0] == server_auth.UI_REALM
    for sneaky in ("//sdapi/v1/txt2img", "/x/../sdapi/v1/txt2img", "/./sdapi/v1/options", "/sdapi/../sdapi/v1"):
        assert both.realm_for(sneaky)[0] == server_auth.API_REALM, sneaky
    assert both.realm_for("/")[0] == server_auth.UI_REALM
    ui_only = server_auth.AuthConfig(ui=server_auth.CredentialSet([("u", "p")]), api=server_auth.CredentialSet([]))
    assert ui_only.realm_for("/docs")[0] == server_auth.UI_REALM  # docs follow the UI when the API has no password
    assert not ui_only.realm_for("/sdapi/v1/options")[1]  # A1111: --gradio-auth does not cover /sdapi


def test_exposure_warnings():
    def warnings(*flags):
        args = cmd_args.parse_args(list(flags), environ={})
        return server_auth.exposure_warnings(args, server_auth.AuthConfig.from_args(args))

    assert warnings() == [] and warnings("--api") == []
    assert len(warnings("--listen")) == 1 and "--gradio-auth" in warnings("--listen")[0]
    assert warnings("--listen", "--gradio-auth", "u:p") == []
    w = warnings("--listen", "--api", "--gradio-auth", "u:p")
    assert len(w) == 1 and "/sdapi" in w[0] and "--gradio-auth does not protect it" in w[0]
    assert warnings("--server-name", "box", "--nowebui", "--api-auth", "a:b") == []


# --- theme ------------------------------------------------------------------------------------------------

def test_theme_redirects_the_page(client):
    r = client.get("/", headers=_basic(*UI), follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/?__theme=dark"
    r = client.get("/?foo=1", headers=_basic(*UI), follow_redirects=False)
    assert r.headers["location"] == "/?foo=1&__theme=dark"
    assert client.get("/?__theme=light", headers=_basic(*UI), follow_redirects=False).status_code == 200
    assert client.get("/config", headers=_basic(*UI), follow_redirects=False).status_code == 200


# --- files ------------------------------------------------------------------------------------------------

def _thumb(client, filename):
    return client.get("/sd_extra_networks/thumb", params={"filename": filename, "mtime": "123"}, headers=_basic(*UI))


def test_thumb_serves_a_known_preview(client, engine, data):
    entry = engine.networks.loras.get("good")
    assert entry is not None and entry.preview is not None
    linked = engine.networks.loras.get("linked")
    assert linked.preview == data["models"] / "Lora" / "linked.preview.png"  # listed; refused when asked for below
    r = _thumb(client, str(entry.preview))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == (data["models"] / "Lora" / "good.preview.png").read_bytes()


def test_thumb_serves_output_images(client, data):
    r = _thumb(client, str(data["outputs"] / "txt2img-images" / "ok.png"))
    assert r.status_code == 200 and r.content == (data["outputs"] / "txt2img-images" / "ok.png").read_bytes()


def test_thumb_refuses_everything_else(client, engine, data):
    secret = (data["outside"] / "secret.png").read_bytes()
    lora = data["models"] / "Lora"
    cases = {
        str(lora / "linked.preview.png"): 403,  # a listed preview, but a symlink out of the models folder
        str(lora / "good.safetensors"): 403,  # a model file is not a preview, and not in outputs
        str(data["outside"] / "secret.png"): 403,
        str(data["outputs"] / "link.png"): 403,  # symlink out of outputs
        str(data["outputs"] / "linkdir" / "secret.png"): 403,  # through a symlinked folder
        str(data["outputs"] / "txt.png"): 404,  # a .png name for a text file
        str(data["outputs"] / "notes.txt"): 404,
        str(data["outputs"] / "txt2img-images" / "missing.png"): 404,
        str(data["outputs"] / ".." / "outside" / "secret.png"): 403,
        str(data["outputs"]) + "/txt2img-images/../../outside/secret.png": 403,
        str(data["outputs"]) + "/%2e%2e/%2E%2E/outside/secret.png": 403,  # double-encoded: one decode left
        str(data["outputs"]) + "%2f..%2f..%2foutside%2fsecret.png": 403,
        str(data["outputs"]).replace("/", "\\") + "\\..\\outside\\secret.png": 403,
        str(data["outputs"] / "txt2img-images" / "ok.png") + "\x00.png": 403,
        "/etc/passwd": 403,
        "": 404,
    }
    for filename, status in cases.items():
        r = _thumb(client, filename)
        assert r.status_code == status, filename
        assert r.content != secret and len(r.content) < 20, filename


def test_file_route_serves_outputs_only(client, data):
    ok = (data["outputs"] / "txt2img-images" / "ok.png").read_bytes()
    h = _basic(*UI)
    assert client.get("/file=outputs/txt2img-images/ok.png", headers=h).content == ok
    assert client.get(f"/file={data['outputs']}/txt2img-images/ok.png", headers=h).content == ok
    for path, status in [("outputs/link.png", 403), ("outputs/linkdir/secret.png", 403),
                         (f"{data['outside']}/secret.png", 403), ("outputs/notes.txt", 404),
                         ("outputs/%252e%252e/x.png", 403), ("models/Lora/good.preview.png", 403)]:
        r = client.get(f"/file={path}", headers=h)
        assert r.status_code == status, path


def test_traversal_on_the_wire(engine, data):
    """Raw request lines (no client-side normalization) against a real server."""
    with _RunningServer(webui.create_app(engine, _args(data, "--gradio-auth", "wire:pw"))) as server:
        for target in ["/", "/config", "/file=outputs/txt2img-images/ok.png", "/gradio_api/upload"]:
            status, head, body = server.raw_get(target, auth=None)
            assert status == 401 and b"\r\nwww-authenticate: basic realm=" in head.lower() and body == b"Unauthorized"
            status, _, _ = server.raw_get(target, auth="wire:wrong")
            assert status == 401
        for target in ["/file=../outside/secret.png", "/file=outputs/../../outside/secret.png",
                       "/file=outputs/%2e%2e/%2e%2e/outside/secret.png", "/file=outputs/%252e%252e/%252e%252e/outside/secret.png",
                       "/file=outputs\\..\\..\\outside\\secret.png", "/file=outputs/txt2img-images/ok.png%00.png",
                       "/sd_extra_networks/thumb?filename=..%2Foutside%2Fsecret.png",
                       f"/sd_extra_networks/thumb?filename={data['outputs']}%2F..%2F..%2Foutside%2Fsecret.png"]:
            status, _, body = server.raw_get(target)
            assert status in (400, 403, 404), target  # 400: a NUL in the path is refused before any route
            assert b"secret" not in body and len(body) < (200 if status == 400 else 20), target
        status, _, body = server.raw_get("/file=outputs/txt2img-images/ok.png")
        assert status == 200 and body == (data["outputs"] / "txt2img-images" / "ok.png").read_bytes()


def test_output_roots_follow_settings_but_never_the_data_folder(engine, data, tmp_path):
    roots = file_serving.output_roots(engine)
    # outdir_* defaults are under outputs/, except the Save button's log/images
    assert roots == [str(data["outputs"].resolve()), str((data["data"] / "log" / "images").resolve())]
    extra = tmp_path / "elsewhere"
    engine.options.set("outdir_save", str(extra))
    engine.options.set("outdir_samples", ".")  # the data folder itself: not an output root
    try:
        roots = file_serving.output_roots(engine)
        assert str(extra.resolve()) in roots and str(data["data"].resolve()) not in roots
    finally:
        engine.options.set("outdir_save", "log/images")
        engine.options.set("outdir_samples", "")


# --- request body limits ----------------------------------------------------------------------------------

def _echo_app(limit, swallow=False):
    async def echo(request: Request):
        try:
            body = await request.body()
        except Exception:
            if not swallow:
                raise
            return PlainTextResponse("app's own error", status_code=400)
        return PlainTextResponse(str(len(body)))

    calls = []

    async def counted(scope, receive, send):
        if scope["type"] == "http":
            calls.append(scope["path"])
        await inner(scope, receive, send)

    inner = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    return upload_limits.BodySizeLimitMiddleware(counted, max_bytes=limit), calls


def test_body_limit_by_content_length_and_by_counting():
    app, calls = _echo_app(1000)
    with TestClient(app) as c:
        assert c.post("/echo", content=b"x" * 1000).text == "1000"
        r = c.post("/echo", content=b"x" * 1001)
        assert r.status_code == 413 and "limit 1000 bytes" in r.text
        assert calls == ["/echo"]  # refused from the header alone: the app never ran

        def chunks(n):
            for _ in range(n):
                yield b"y" * 400

        assert c.post("/echo", content=chunks(2)).text == "800"  # chunked, no Content-Length
        r = c.post("/echo", content=chunks(3))
        assert r.status_code == 413
    swallowing, _ = _echo_app(1000, swallow=True)
    with TestClient(swallowing) as c:
        r = c.post("/echo", content=(b"z" * 600 for _ in range(2)))
        assert r.status_code == 413  # the app's own 400 is replaced


def test_body_limit_with_a_lying_content_length():
    """A client that sends more than it declared is cut off at the limit as well."""
    app, _ = _echo_app(100)
    sent = []
    messages = [{"type": "http.request", "body": b"a" * 80, "more_body": True},
                {"type": "http.request", "body": b"a" * 80, "more_body": False}]

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/echo", "raw_path": b"/echo", "query_string": b"",
             "headers": [(b"content-length", b"50"), (b"host", b"x")], "root_path": "", "scheme": "http",
             "server": ("x", 80), "client": ("c", 1), "http_version": "1.1", "asgi": {"version": "3.0"}}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413


def test_app_limits_uploads(client):
    assert upload_limits.MAX_REQUEST_BODY_BYTES == 64 * 1024 * 1024

    def big():
        for _ in range(65):
            yield b"\0" * (1024 * 1024)

    r = client.post("/sdapi/v1/txt2img", content=big(), headers={**_basic(*API), "content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/gradio_api/upload", content=b"x" * (64 * 1024 * 1024 + 1), headers=_basic(*UI))
    assert r.status_code == 413


# --- malicious pickles in every model folder --------------------------------------------------------------

def _gen(engine, prompt):
    return engine.generate(GenerationRequest(prompt=prompt, negative_prompt="", steps=2, width=64, height=64,
                                             sampler_name="Euler", seed=1, do_not_save_samples=True,
                                             do_not_save_grid=True))


def test_malicious_checkpoint_runs_no_code_and_is_named(engine, data):
    assert engine.args.disable_safe_unpickle is False
    engine.ensure_model()
    evil = engine.checkpoints.get_closest("zz-evil")
    assert evil is not None
    with pytest.raises(CheckpointLoadError) as e:
        engine.load_checkpoint(evil)
    assert e.value.path == str(data["models"] / "Stable-diffusion" / "zz-evil.ckpt")
    assert "refused" in e.value.reason and "builtins.exec" in e.value.reason
    assert not (data["markers"] / "ckpt").exists()
    assert "a-tiny" in engine.checkpoint_info.title  # the model in use stays loaded


def test_malicious_adapters_run_no_code_and_are_named(engine, data):
    engine.ensure_model()
    out = _gen(engine, "a cat <lora:evil:1> <hypernet:evilhyper:1> evilemb")
    text = "\n".join(out.warnings)
    assert f"Lora 'evil' was not applied: {data['models'] / 'Lora' / 'evil.pt'}" in text
    assert "Hypernetwork 'evilhyper' was not applied" in text
    assert str(data["models"] / "hypernetworks" / "evilhyper.pt") in text
    assert text.count("refused: the pickle references builtins.exec") == 2
    errors = engine.networks.embeddings.errors
    emb = str(data["models"] / "embeddings" / "evilemb.pt")
    assert emb in errors and errors[emb].startswith("refused: the pickle references builtins.exec")
    assert "evilemb" not in engine.networks.embeddings.word_embeddings
    assert sorted(p.name for p in data["markers"].iterdir()) == []
    assert len(out.images) == 1


# --- binding, autolaunch, shutdown, main() ----------------------------------------------------------------

class _RunningServer:
    """create_app's app on a real uvicorn server at 127.0.0.1:<free port>, stopped by request_shutdown."""

    def __init__(self, app):
        self.app = app

    def __enter__(self):
        self.sock = webui.bind_socket("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.server = webui.make_server(self.app, cmd_args.parse_args([], environ={}))
        self.app.state.server_control.attach(self.server)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                break
            threading.Event().wait(0.05)
        assert self.server.started
        return self

    def raw_get(self, target: str, auth: str | None = "wire:pw") -> tuple[int, bytes, bytes]:
        """(status, head, body) of a GET sent byte for byte as written (no client-side normalization)."""
        header = f"Authorization: Basic {base64.b64encode(auth.encode()).decode()}\r\n" if auth else ""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n".encode("latin-1"))
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), head, body

    def __exit__(self, *exc):
        self.app.state.request_shutdown()
        self.thread.join(15)
        assert not self.thread.is_alive()
        self.sock.close()


def test_server_control_before_and_after_attach():
    class FakeServer:
        should_exit = False

    early = webui.ServerControl()
    early.request_shutdown()
    server = FakeServer()
    early.attach(server)
    assert server.should_exit is True and early.requested.is_set() and early.action == "stop"
    late = webui.ServerControl()
    server = FakeServer()
    late.attach(server)
    assert server.should_exit is False and late.action is None
    late.request_restart()
    assert server.should_exit is True and late.action == "restart"
    late.request_shutdown()
    late.request_restart()
    assert late.action == "stop"  # stop wins


def test_create_app_exposes_the_callbacks(open_api_client):
    state = open_api_client.app.state
    assert state.request_shutdown == state.server_control.request_shutdown
    assert state.request_restart == state.server_control.request_restart


def test_server_host():
    host = lambda *f: webui.server_host(cmd_args.parse_args(list(f), environ={}))  # noqa: E731
    assert host() == "127.0.0.1"
    assert host("--listen") == "0.0.0.0"
    assert host("--server-name", "::1", "--listen") == "::1"


def test_port_fallback_and_taken_port(monkeypatch):
    taken = webui.bind_socket("127.0.0.1", 0)
    taken.listen()
    port = taken.getsockname()[1]
    try:
        monkeypatch.setattr(server_app, "UI_PORT", port)
        sock = webui.open_server_socket(cmd_args.parse_args([], environ={}))
        try:
            assert sock.getsockname()[0] == "127.0.0.1" and sock.getsockname()[1] > port
        finally:
            sock.close()
        with pytest.raises(SystemExit, match=rf"--port {port}: cannot listen on 127.0.0.1:{port}"):
            webui.open_server_socket(cmd_args.parse_args(["--port", str(port)], environ={}))
    finally:
        taken.close()


def _run_main(monkeypatch, engine, argv, opened_url_check):
    """main(argv) in a thread with the module's engine; returns (result, app, url) once the server stopped.

    ``opened_url_check(app, url)`` runs once the browser would open (needs --autolaunch) and must stop the server."""
    monkeypatch.delenv("COMMANDLINE_ARGS", raising=False)
    apps, urls, opened = [], [], threading.Event()
    real_create_app = webui.create_app
    monkeypatch.setattr(webui, "build_engine", lambda args: engine)
    monkeypatch.setattr(webui, "create_app", lambda eng, args: apps.append(real_create_app(eng, args)) or apps[-1])
    monkeypatch.setattr(webui, "_load_initial_model", lambda eng: pytest.fail("--skip-load-model-at-start ignored"))
    monkeypatch.setattr(server_app.webbrowser, "open", lambda url: (urls.append(url), opened.set()))
    result = []
    thread = threading.Thread(target=lambda: result.append(webui.main(argv)), daemon=True)
    thread.start()
    try:
        assert opened.wait(60), "the browser was never opened"
        opened_url_check(apps[0], urls[0])
    finally:
        if apps and not apps[0].state.server_control.requested.is_set():
            apps[0].state.server_control.request_shutdown()
        thread.join(20)
    assert not thread.is_alive()
    assert len(urls) == 1
    return result, apps[0], urls[0]


def test_main_serves_on_localhost_autolaunches_and_shuts_down(monkeypatch, engine, data):
    argv = ["--data-dir", str(data["data"]), "--nowebui", "--port", "0", "--autolaunch", "--skip-load-model-at-start",
            "--api-auth", f"{API[0]}:{API[1]}"]

    def check(app, url):
        host, port = app.state.bound_address[:2]
        assert host == "127.0.0.1" and url == f"http://127.0.0.1:{port}"
        req = urllib.request.Request(url + "/sdapi/v1/progress", headers=_basic(*API))
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + "/sdapi/v1/progress", timeout=10)
        assert e.value.code == 401 and e.value.headers["WWW-Authenticate"].startswith("Basic")
        app.state.request_shutdown()  # what /sdapi/v1/server-stop calls

    result, app, url = _run_main(monkeypatch, engine, argv, check)
    assert result == [0] and app.state.server_control.action == "stop"
    with pytest.raises(OSError):  # the socket is closed
        socket.create_connection(("127.0.0.1", app.state.bound_address[1]), timeout=2).close()


def test_main_restarts_with_the_same_flags(monkeypatch, engine, data):
    argv = ["--data-dir", str(data["data"]), "--nowebui", "--port", "0", "--autolaunch", "--skip-load-model-at-start"]
    execs = []
    monkeypatch.setattr(webui.os, "execv", lambda exe, args: execs.append((exe, args)))
    result, app, _ = _run_main(monkeypatch, engine, argv, lambda app, url: app.state.request_restart())
    assert result == [0]
    assert execs == [(webui.sys.executable, [webui.sys.executable, str(webui.REPO_ROOT / "webui.py"), *argv])]


def test_autolaunch_never_opens_when_the_server_stops_first():
    class Server:
        started = False
        should_exit = True

    seen = []
    webui.open_browser_when_started(Server(), "http://x", opener=seen.append).join(5)
    assert seen == []


def test_cors_origins_flag_allows_only_the_named_origin(data, engine):
    app = webui.create_app(engine, _args(data, "--nowebui", "--cors-allow-origins", "http://allowed.example"))
    with TestClient(app) as c:
        ok = c.get("/sdapi/v1/samplers", headers={"Origin": "http://allowed.example"})
        other = c.get("/sdapi/v1/samplers", headers={"Origin": "http://other.example"})
    assert ok.headers.get("access-control-allow-origin") == "http://allowed.example"
    assert "access-control-allow-origin" not in other.headers
    with TestClient(webui.create_app(engine, _args(data, "--nowebui"))) as c:
        plain = c.get("/sdapi/v1/samplers", headers={"Origin": "http://allowed.example"})
    assert "access-control-allow-origin" not in plain.headers


@pytest.mark.parametrize("path", ["/gradio_api/proxy=%00", "/gradio_api/proxy=http%3A%2F%2Fx%00", "/file=%00x",
                                  "/gradio_api/file=/etc/passwd%00.png", "/x%0ay"])
def test_control_characters_in_a_path_are_400(client, path):
    r = client.get(path, headers=_basic(*UI))
    assert r.status_code == 400 and "control characters" in r.json()["detail"]
