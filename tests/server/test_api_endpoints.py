"""Every /sdapi/v1 endpoint of spec §9.1 answers with A1111's shape and the right values (FastAPI TestClient)."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image, PngImagePlugin

from modules.settings import cmd_args
from modules.core import image_files as images
from modules.core import infotext
from tests import tiny_models

ERROR_KEYS = {"error", "detail", "body", "errors"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """An engine over two tiny checkpoints and one style, its API app and a TestClient."""
    import webui

    data = tmp_path_factory.mktemp("api-endpoints")
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=1), ckpt_dir / "tiny-a.safetensors", "sd1")
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=2), ckpt_dir / "tiny-b.safetensors", "sd1")
    (data / "styles.csv").write_text('name,prompt,negative_prompt\nPainted,"{prompt}, oil painting",blurry\n',
                                     encoding="utf-8")
    args = cmd_args.parse_args(["--data-dir", str(data), "--nowebui"], environ={})
    engine = webui.build_engine(args)
    engine.ensure_model()
    app = webui.create_app(engine, args)
    return {"engine": engine, "client": TestClient(app), "data": data, "ckpt_dir": ckpt_dir}


@pytest.fixture
def client(env):
    return env["client"]


@pytest.fixture(autouse=True)
def restore_options(env):
    """Tests change settings and the loaded model; put both back afterwards."""
    engine = env["engine"]
    before = engine.options.data()
    yield
    for key, value in before.items():
        if engine.options.get(key) != value:
            engine.options.set(key, value)
    engine.ensure_model()


def _b64_png(image: Image.Image, **text: str) -> str:
    info = PngImagePlugin.PngInfo()
    for k, v in text.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info if text else None)
    return base64.b64encode(buf.getvalue()).decode()


def _image(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def _gradient(w: int, h: int) -> Image.Image:
    img = Image.new("RGB", (w, h))
    img.putdata([((x * 7) % 256, (y * 11) % 256, (x * y) % 256) for y in range(h) for x in range(w)])
    return img


def _error(r, status: int, *needles: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= ERROR_KEYS
    for needle in needles:
        assert needle in json.dumps(body), (needle, body)
    return body


# ---- listings ----------------------------------------------------------------------------------------

def test_samplers_and_schedulers(client):
    samplers = client.get("/sdapi/v1/samplers").json()
    assert samplers[0]["name"] == "DPM++ 2M" and samplers[0]["options"] == {"scheduler": "karras"}
    names = [s["name"] for s in samplers]
    assert {"Euler a", "Euler", "DDIM", "UniPC"} <= set(names)
    assert all(set(s) == {"name", "aliases", "options"} for s in samplers)
    schedulers = client.get("/sdapi/v1/schedulers").json()
    assert schedulers[0] == {"name": "automatic", "label": "Automatic", "aliases": None, "default_rho": -1.0,
                             "need_inner_model": False}
    assert "Karras" in [s["label"] for s in schedulers]


def test_upscalers_and_latent_modes(client):
    ups = client.get("/sdapi/v1/upscalers").json()
    assert [u["name"] for u in ups][:3] == ["None", "Lanczos", "Nearest"]
    assert all(set(u) == {"name", "model_name", "model_path", "model_url", "scale"} for u in ups)
    modes = client.get("/sdapi/v1/latent-upscale-modes").json()
    assert modes == [{"name": n} for n in ("Latent", "Latent (antialiased)", "Latent (bicubic)",
                                           "Latent (bicubic antialiased)", "Latent (nearest)", "Latent (nearest-exact)")]
    assert client.get("/sdapi/v1/realesrgan-models").json() == []
    assert client.get("/sdapi/v1/face-restorers").json() == []


def test_sd_models_lists_checkpoints_with_hash(client, env):
    models = client.get("/sdapi/v1/sd-models").json()
    by_name = {m["model_name"]: m for m in models}
    assert set(by_name) == {"tiny-a", "tiny-b"}
    loaded = env["engine"].checkpoint_info
    entry = by_name[loaded.model_name]
    sha = hashlib.sha256(open(entry["filename"], "rb").read()).hexdigest()
    assert entry["sha256"] == sha and entry["hash"] == sha[:10]
    assert entry["title"] == f"{loaded.name} [{sha[:10]}]"
    assert entry["config"] is None
    assert set(entry) == {"title", "model_name", "hash", "sha256", "filename", "config"}


def test_sd_models_config_next_to_checkpoint(client, env):
    yaml = env["ckpt_dir"] / "tiny-b.yaml"
    yaml.write_text("model: {}\n")
    try:
        by_name = {m["model_name"]: m for m in client.get("/sdapi/v1/sd-models").json()}
        assert by_name["tiny-b"]["config"] == str(yaml)
    finally:
        yaml.unlink()


def test_small_lists(client):
    assert client.get("/sdapi/v1/sd-vae").json() == []
    assert client.get("/sdapi/v1/hypernetworks").json() == []
    assert client.get("/sdapi/v1/loras").json() == []
    assert client.get("/sdapi/v1/embeddings").json() == {"loaded": {}, "skipped": {}}
    assert client.get("/sdapi/v1/prompt-styles").json() == [
        {"name": "Painted", "prompt": "{prompt}, oil painting", "negative_prompt": "blurry"}]
    builtin = ["prompt matrix", "prompts from file or textbox", "x/y/z plot"]
    img2img = ["img2img alternative test", "loopback", "poor man's outpainting", "outpainting mk2", "prompt matrix",
               "prompts from file or textbox", "sd upscale", "x/y/z plot"]
    assert client.get("/sdapi/v1/scripts").json() == {"txt2img": builtin, "img2img": img2img}
    # script-info lists the always-on scripts too, first: img2img's built-in Soft Inpainting
    assert [i["name"] for i in client.get("/sdapi/v1/script-info").json()] == builtin + ["soft inpainting"] + img2img
    # A1111 lists its built-in extensions too: here the Lora one (A1111's ``networks``/``lora`` module names)
    assert [(e["name"], e["enabled"]) for e in client.get("/sdapi/v1/extensions").json()] == [("Lora", True)]


def test_memory(client):
    body = client.get("/sdapi/v1/memory").json()
    ram = body["ram"]
    assert ram["total"] > 0 and 0 <= ram["free"] <= ram["total"] and ram["used"] + ram["free"] == ram["total"]
    cuda = body["cuda"]
    assert ("error" in cuda) or {"system", "active", "allocated", "reserved", "inactive", "events"} <= set(cuda)


def test_cmd_flags(client, env):
    flags = client.get("/sdapi/v1/cmd-flags").json()
    assert flags["api"] is False and flags["nowebui"] is True
    assert flags["data_dir"] == str(env["data"])
    assert "api_server_stop" in flags


# ---- settings ------------------------------------------------------------------------------------------

def test_options_round_trip_and_saved(client, env):
    before = client.get("/sdapi/v1/options").json()
    assert before["samples_format"] == "png" and before["CLIP_stop_at_last_layers"] == 1
    assert before["sd_model_checkpoint"] == env["engine"].checkpoint_info.title
    assert before["sd_checkpoint_hash"] == env["engine"].checkpoint_info.sha256
    r = client.post("/sdapi/v1/options", json={"samples_format": "jpg", "CLIP_stop_at_last_layers": 2})
    assert r.status_code == 200 and r.json() is None
    after = client.get("/sdapi/v1/options").json()
    assert after["samples_format"] == "jpg" and after["CLIP_stop_at_last_layers"] == 2
    saved = json.loads((env["data"] / "config.json").read_text())
    assert saved["samples_format"] == "jpg" and saved["CLIP_stop_at_last_layers"] == 2


def test_options_unknown_key_is_422_and_changes_nothing(client):
    r = client.post("/sdapi/v1/options", json={"samples_format": "webp", "no_such_setting": 1})
    _error(r, 422, "no_such_setting")
    assert client.get("/sdapi/v1/options").json()["samples_format"] == "png"


@pytest.mark.parametrize("payload, field", [
    ({"CLIP_stop_at_last_layers": "two"}, "CLIP_stop_at_last_layers"),
    ({"CLIP_stop_at_last_layers": 99}, "CLIP_stop_at_last_layers"),
    ({"emphasis": "Loud"}, "emphasis"),
    ({"sd_model_checkpoint": "no-such-model"}, "no-such-model"),
    ({"sd_model_checkpoint": "tiny"}, "sd_model_checkpoint"),  # an exact alias is needed, as in A1111
    ({"sd_vae": "missing.safetensors"}, "sd_vae"),
])
def test_options_bad_values_are_422(client, payload, field):
    _error(client.post("/sdapi/v1/options", json=payload), 422, field)


def test_options_bad_bodies_are_422(client):
    assert client.post("/sdapi/v1/options", json=[1, 2]).status_code == 422
    assert client.post("/sdapi/v1/options", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422


def test_options_api_restricted_keys_are_ignored(client):
    r = client.post("/sdapi/v1/options", json={"api_enable_requests": False})
    assert r.status_code == 200
    assert client.get("/sdapi/v1/options").json()["api_enable_requests"] is True


def test_options_checkpoint_switch_loads_it(client, env):
    engine = env["engine"]
    other = next(c for c in engine.available_checkpoints() if c.filename != engine.checkpoint_info.filename)
    r = client.post("/sdapi/v1/options", json={"sd_model_checkpoint": other.name})  # the name is an alias
    assert r.status_code == 200, r.text
    assert engine.checkpoint_info.filename == other.filename
    assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == engine.checkpoint_info.title


# ---- models: refresh, load, unload --------------------------------------------------------------------

def test_refresh_endpoints_return_null(client, env):
    for path in ("refresh-checkpoints", "refresh-vae", "refresh-loras", "refresh-embeddings"):
        r = client.post(f"/sdapi/v1/{path}")
        assert r.status_code == 200 and r.json() is None, path


def test_refresh_checkpoints_finds_a_new_file(client, env):
    new = env["ckpt_dir"] / "tiny-c.safetensors"
    shutil.copy(env["ckpt_dir"] / "tiny-a.safetensors", new)
    try:
        assert "tiny-c" not in [m["model_name"] for m in client.get("/sdapi/v1/sd-models").json()]
        assert client.post("/sdapi/v1/refresh-checkpoints").json() is None
        assert "tiny-c" in [m["model_name"] for m in client.get("/sdapi/v1/sd-models").json()]
    finally:
        new.unlink()
        client.post("/sdapi/v1/refresh-checkpoints")


def test_unload_and_reload_checkpoint(client, env):
    engine = env["engine"]
    title = engine.checkpoint_info.title
    assert client.post("/sdapi/v1/unload-checkpoint").json() == {}
    assert engine.model is None
    assert client.post("/sdapi/v1/reload-checkpoint").json() == {}
    assert engine.model is not None and engine.checkpoint_info.title == title


# ---- generation: overrides, scripts, infotext, inpainting -----------------------------------------------

GEN = {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "seed": 11, "sampler_name": "Euler"}


def _infotext_fields(body: dict) -> dict:
    return infotext.parse_generation_parameters(_image(body["images"][0]).info["parameters"])


def test_override_settings_restored_afterwards(client, env):
    r = client.post("/sdapi/v1/txt2img", json={**GEN, "override_settings": {"CLIP_stop_at_last_layers": 2}})
    assert r.status_code == 200, r.text
    assert _infotext_fields(r.json())["Clip skip"] == "2"
    assert env["engine"].options.get("CLIP_stop_at_last_layers") == 1


def test_override_settings_kept_when_asked(client, env):
    r = client.post("/sdapi/v1/txt2img", json={**GEN, "override_settings": {"CLIP_stop_at_last_layers": 3},
                                               "override_settings_restore_afterwards": False})
    assert r.status_code == 200, r.text
    assert _infotext_fields(r.json())["Clip skip"] == "3"
    assert env["engine"].options.get("CLIP_stop_at_last_layers") == 3


def test_override_checkpoint_for_one_request(client, env):
    engine = env["engine"]
    first = engine.checkpoint_info.title
    other = next(c for c in engine.available_checkpoints() if c.title != first)
    r = client.post("/sdapi/v1/txt2img", json={**GEN, "override_settings": {"sd_model_checkpoint": other.model_name}})
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["info"])["sd_model_name"] == other.name_for_extra
    assert engine.options.get("sd_model_checkpoint") == first


@pytest.mark.parametrize("overrides, needle", [
    ({"no_such_setting": 1}, "override_settings.no_such_setting"),
    ({"CLIP_stop_at_last_layers": "x"}, "override_settings.CLIP_stop_at_last_layers"),
    ({"sd_model_checkpoint": "zzz-missing"}, "zzz-missing"),
])
def test_bad_override_settings_are_422(client, overrides, needle):
    _error(client.post("/sdapi/v1/txt2img", json={**GEN, "override_settings": overrides}), 422, needle)


def test_scripts_unknown_is_422_and_empty_is_fine(client):
    body = _error(client.post("/sdapi/v1/txt2img", json={**GEN, "script_name": "X/Y/Z plots"}), 422)
    assert body["detail"] == "Script 'X/Y/Z plots' not found"
    body = _error(client.post("/sdapi/v1/txt2img", json={**GEN, "alwayson_scripts": {"ADetailer": {"args": []}}}), 422)
    assert body["detail"] == "always on script ADetailer not found"
    r = client.post("/sdapi/v1/txt2img", json={**GEN, "script_name": "", "script_args": [], "alwayson_scripts": {}})
    assert r.status_code == 200
    assert client.post("/sdapi/v1/txt2img", json={**GEN, "script_name": None}).status_code == 200


def test_infotext_fills_unset_fields(client):
    text = "a dog\nNegative prompt: ugly\nSteps: 3, Sampler: Euler a, CFG scale: 5, Seed: 4242, Size: 64x64, Clip skip: 2"
    r = client.post("/sdapi/v1/txt2img", json={"infotext": text, "steps": 2})
    assert r.status_code == 200, r.text
    info = json.loads(r.json()["info"])
    assert info["prompt"] == "a dog" and info["negative_prompt"] == "ugly"
    assert info["steps"] == 2  # set explicitly: the request wins
    assert info["all_seeds"] == [4242] and info["sampler_name"] == "Euler a" and info["cfg_scale"] == 5.0
    assert (info["width"], info["height"]) == (64, 64) and info["clip_skip"] == 2
    assert r.json()["parameters"]["seed"] == 4242


def test_infotext_values_out_of_bounds_are_422(client):
    text = "a dog\nSteps: 3, Sampler: Euler a, Seed: 123456789012345678901234567890, Size: 64x64"
    _error(client.post("/sdapi/v1/txt2img", json={"infotext": text}), 422, "infotext", "seed")


def test_txt2img_styles_and_no_images(client):
    r = client.post("/sdapi/v1/txt2img", json={**GEN, "styles": ["Painted"], "send_images": False})
    assert r.status_code == 200
    body = r.json()
    assert body["images"] == []
    info = json.loads(body["info"])
    assert info["prompt"] == "a cat, oil painting" and info["negative_prompt"] == "blurry"


def test_images_follow_samples_format(client):
    client.post("/sdapi/v1/options", json={"samples_format": "webp"})
    r = client.post("/sdapi/v1/txt2img", json=GEN)
    img = _image(r.json()["images"][0])
    assert img.format == "WEBP"
    assert infotext.parse_generation_parameters(images.read_info_from_image(img)[0])["Seed"] == "11"


def test_img2img_inpainting_fields(client):
    init = _b64_png(_gradient(64, 64))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    payload = {**GEN, "init_images": ["data:image/png;base64," + init], "mask": _b64_png(mask), "mask_blur": 2,
               "inpainting_fill": 1, "inpaint_full_res": False, "inpainting_mask_invert": True,
               "denoising_strength": 0.6, "include_init_images": True}
    r = client.post("/sdapi/v1/img2img", json=payload)
    assert r.status_code == 200, r.text
    body = r.json()
    assert _image(body["images"][0]).size == (64, 64)
    assert body["parameters"]["init_images"] == payload["init_images"] and body["parameters"]["mask_blur"] == 2
    assert "include_init_images" not in body["parameters"]
    fields = _infotext_fields(body)
    assert fields["Denoising strength"] == "0.6" and fields["Mask blur"] == "2"


def test_img2img_errors_name_the_field(client):
    png = _b64_png(_gradient(64, 64))
    _error(client.post("/sdapi/v1/img2img", json={**GEN}), 422, "Init image not found")
    _error(client.post("/sdapi/v1/img2img", json={**GEN, "init_images": [png, "@@@"]}), 422, "init_images[1]")
    _error(client.post("/sdapi/v1/img2img", json={**GEN, "init_images": [png], "mask": "nope"}), 422, "mask")
    _error(client.post("/sdapi/v1/img2img", json={**GEN, "init_images": ["http://example.com/a.png"]}), 422, "init_images[0]")
    _error(client.post("/sdapi/v1/img2img", json={**GEN, "init_images": [png], "inpainting_mask_invert": 3}), 422,
           "inpainting_mask_invert")


# ---- extras, png-info, interrogate ---------------------------------------------------------------------

def test_extra_single_image_doubles_with_lanczos(client):
    src = _gradient(64, 48)
    r = client.post("/sdapi/v1/extra-single-image", json={
        "image": "data:image/png;base64," + _b64_png(src, parameters="a cat\nSteps: 20, Sampler: Euler, Seed: 1"),
        "upscaler_1": "Lanczos", "upscaling_resize": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"html_info", "image"}
    out = _image(body["image"])
    assert out.size == (128, 96)
    assert list(out.convert("RGB").getdata()) == list(src.resize((128, 96), Image.Resampling.LANCZOS).getdata())
    assert body["html_info"] == "<p>Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos</p>"
    assert out.info["postprocessing"] == "Postprocess upscale by: 2.0, Postprocess upscaler: Lanczos"
    assert out.info["parameters"].startswith("a cat")  # the input's infotext survives


def test_extra_single_image_to_size_and_none(client):
    src = _b64_png(_gradient(64, 48))
    r = client.post("/sdapi/v1/extra-single-image", json={"image": src, "upscaler_1": "Nearest", "resize_mode": 1,
                                                          "upscaling_resize_w": 100, "upscaling_resize_h": 100})
    assert r.status_code == 200 and _image(r.json()["image"]).size == (100, 100)
    assert "Postprocess upscale to: 100x100" in r.json()["html_info"]
    r = client.post("/sdapi/v1/extra-single-image", json={"image": src})  # upscaler_1 "None": unchanged
    assert r.status_code == 200 and _image(r.json()["image"]).size == (64, 48)
    assert r.json()["html_info"] == "<p></p>"


def test_extra_single_image_errors(client, env):
    src = _b64_png(_gradient(64, 48))
    _error(client.post("/sdapi/v1/extra-single-image", json={"image": src, "upscaler_1": "ESRGAN_9x"}), 422, "upscaler_1")
    _error(client.post("/sdapi/v1/extra-single-image", json={"image": "", "upscaler_1": "Lanczos"}), 422, "image")
    _error(client.post("/sdapi/v1/extra-single-image", json={"image": src, "upscaling_resize": 50}), 422, "upscaling_resize")
    env["engine"].options.set("img_max_size_mp", 0.01)  # 10,000 pixels
    _error(client.post("/sdapi/v1/extra-single-image", json={"image": src, "upscaler_1": "Lanczos", "upscaling_resize": 4}),
           422, "megapixel")


def test_extra_batch_images(client):
    a, b = _gradient(32, 32), _gradient(40, 24)
    r = client.post("/sdapi/v1/extra-batch-images", json={
        "imageList": [{"data": _b64_png(a), "name": "a.png"}, {"data": _b64_png(b), "name": "b.png"}],
        "upscaler_1": "Lanczos", "upscaling_resize": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"html_info", "images"}
    assert [_image(i).size for i in body["images"]] == [(64, 64), (80, 48)]
    assert "Postprocess upscaler: Lanczos" in body["html_info"]
    empty = client.post("/sdapi/v1/extra-batch-images", json={"imageList": [], "upscaler_1": "Lanczos"})
    assert empty.status_code == 200 and empty.json() == {"html_info": "", "images": []}
    _error(client.post("/sdapi/v1/extra-batch-images", json={"imageList": [{"data": "xx", "name": "x"}]}), 422,
           "imageList[0].data")


def test_png_info_of_real_a1111_image(client, real_fixtures):
    raw = (real_fixtures / "images" / "sdparsers_automatic1111_cropped.png").read_bytes()
    r = client.post("/sdapi/v1/png-info", json={"image": base64.b64encode(raw).decode()})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["info"].startswith("photo of a duck\nNegative prompt: monochrome\nSteps: 15")
    p = body["parameters"]
    assert (p["Steps"], p["Sampler"], p["Seed"], p["CFG scale"]) == ("15", "UniPC", "235284042", "5")
    assert (p["Size-1"], p["Size-2"], p["Model hash"]) == ("512", "400", "c0d1994c73")
    assert p["Prompt"] == "photo of a duck" and p["Negative prompt"] == "monochrome"
    assert body["items"] == {}


def test_png_info_empty_items_and_errors(client):
    # A1111 answers an empty image with empty fields; here it is the client's mistake (issue 17)
    _error(client.post("/sdapi/v1/png-info", json={"image": ""}), 422, "image")
    r = client.post("/sdapi/v1/png-info", json={"image": _b64_png(_gradient(8, 8), Software="paint", parameters="x, y")})
    assert r.json()["items"] == {"Software": "paint"}
    raw = base64.b64decode(_b64_png(_gradient(64, 64)))
    _error(client.post("/sdapi/v1/png-info", json={"image": base64.b64encode(raw[: len(raw) // 2]).decode()}), 422, "image")


def test_interrogate_answers_as_a1111_without_interrogators(client):
    png = _b64_png(_gradient(8, 8))
    assert _error(client.post("/sdapi/v1/interrogate", json={"image": png, "model": "nope"}), 404)["detail"] == "Model not found"
    _error(client.post("/sdapi/v1/interrogate", json={"image": png, "model": "clip"}), 501, "clip")
    _error(client.post("/sdapi/v1/interrogate", json={"model": "clip"}), 422, "image")


# ---- progress, control, unsupported features, internal routes --------------------------------------------

def test_progress_interrupt_skip_idle(client):
    r = client.get("/sdapi/v1/progress?skip_current_image=true")
    body = r.json()
    assert body["progress"] == 0 and body["eta_relative"] == 0 and body["current_image"] is None
    assert set(body["state"]) == {"skipped", "interrupted", "stopping_generation", "job", "job_count", "job_timestamp",
                                  "job_no", "sampling_step", "sampling_steps"}
    assert client.post("/sdapi/v1/interrupt").json() == {}
    assert client.post("/sdapi/v1/skip").json() is None
    assert "x-process-time" in r.headers


@pytest.mark.parametrize("path,field", [("create/embedding", "num_vectors_per_token"),
                                        ("create/hypernetwork", "enable_sizes"),
                                        ("train/embedding", "embedding_name"), ("train/hypernetwork", "hypernetwork_name")])
def test_training_routes_answer_422_for_a_bad_body(client, path, field):
    # The routes themselves are tested in tests/server/test_api_training.py.
    _error(client.post(f"/sdapi/v1/{path}", json={"name": "x", field: {"not": "valid"}}), 422, field)


def test_server_routes_need_the_flag(client):
    assert client.post("/sdapi/v1/server-stop").status_code == 404
    _error(client.get("/sdapi/v1/no-such-endpoint"), 404)


def _app_with_flags(engine, data, *flags: str) -> FastAPI:
    from modules.scripting.host import ScriptHost
    from modules.server.api.api import mount_api

    args = cmd_args.parse_args(["--data-dir", str(data), "--nowebui", *flags], environ={})
    app = FastAPI()
    old_args, engine.args = engine.args, args
    try:
        mount_api(app, ScriptHost.for_engine(engine))
    finally:
        engine.args = old_args
    return app


def test_api_log(env, caplog):
    c = TestClient(_app_with_flags(env["engine"], env["data"], "--api-log"))
    with caplog.at_level("INFO", logger="modules.server.api.api"):
        c.get("/sdapi/v1/samplers")
        c.get("/internal/ping")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("API ")]
    assert len(lines) == 1
    assert " 200 http/1.1 GET /sdapi/v1/samplers testclient:" in lines[0]


def test_frozen_and_hidden_settings(env, client):
    engine = env["engine"]
    original = engine.args

    def flags(*extra: str) -> None:  # the settings code reads the flags at request time
        engine.args = cmd_args.parse_args(["--data-dir", str(env["data"]), "--nowebui", *extra], environ={})

    try:
        flags("--freeze-specific-settings", "samples_format,jpeg_quality")
        _error(client.post("/sdapi/v1/options", json={"jpeg_quality": 90}), 422, "jpeg_quality", "frozen")
        assert client.post("/sdapi/v1/options", json={"jpeg_quality": 80}).status_code == 200  # unchanged: fine
        assert client.post("/sdapi/v1/options", json={"samples_save": False}).status_code == 200
        flags("--freeze-settings-in-sections", "saving-images")
        _error(client.post("/sdapi/v1/options", json={"samples_save": True}), 422, "samples_save", "frozen")
        flags("--freeze-settings")
        _error(client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 2}), 422, "frozen")
        flags("--hide-ui-dir-config")
        assert client.post("/sdapi/v1/options", json={"outdir_samples": "/elsewhere"}).status_code == 200
        assert engine.options.get("outdir_samples") == ""
    finally:
        engine.args = original


def test_server_routes_with_flag(env):
    calls = []
    app = _app_with_flags(env["engine"], env["data"], "--api-server-stop")
    c = TestClient(app)
    _error(c.post("/sdapi/v1/server-stop"), 501)  # nothing wired to stop
    _error(c.post("/sdapi/v1/server-restart"), 501)
    app.state.request_shutdown = lambda: calls.append("stop")
    app.state.request_kill = lambda: calls.append("kill")
    r = c.post("/sdapi/v1/server-stop")
    assert r.status_code == 200 and r.text == "Stopping."
    assert c.post("/sdapi/v1/server-kill").text == "Killing."
    assert calls == ["stop", "kill"]


def test_internal_routes(client):
    assert client.get("/internal/ping").json() == {}
    assert client.get("/internal/pending-tasks").json() == {"size": 0, "tasks": []}
    r = client.post("/sdapi/v1/txt2img", json={**GEN, "force_task_id": "task(txt2img-DONE123)"})
    assert r.status_code == 200
    body = client.post("/internal/progress", json={"id_task": "task(txt2img-DONE123)"}).json()
    ours = ("sampling_step", "sampling_steps", "job_no", "job_count")  # our page's step counts, null when idle
    assert {k: v for k, v in body.items() if k not in ours} == {
        "active": False, "queued": False, "completed": True, "progress": None, "eta": None,
        "live_preview": None, "id_live_preview": -1, "textinfo": "Waiting..."}
    assert all(body[k] is None for k in ours)


def test_postprocessing_saves_for_the_ui(env):
    """The Extras tab calls the same function with save=True: files land in outputs/extras-images."""
    from modules.engine import postprocessing

    engine = env["engine"]
    src = _gradient(16, 16)
    src.info["parameters"] = "a cat\nSteps: 20, Sampler: Euler, Seed: 1"
    result = postprocessing.run_postprocessing(engine, [(src, "holiday.jpg")],
                                               postprocessing.ExtrasParams(upscaler_1="Nearest"), save=True)
    assert [im.size for im in result.images] == [(32, 32)] and result.infotexts == [
        "Postprocess upscale by: 2.0, Postprocess upscaler: Nearest"]
    saved = Image.open(result.saved_paths[0])
    assert saved.size == (32, 32) and saved.info["postprocessing"] == result.infotexts[0]
    assert saved.info["parameters"].startswith("a cat")
    assert result.saved_paths[0].startswith(str(env["data"] / "outputs" / "extras-images"))
    assert result.saved_paths[0].endswith("-holiday.png")
    assert engine.state.job == "" and engine.state.job_count == 0
