"""Extra Networks browser, Python side (modules/ui_extra_networks.py): card data, routes, sidecar saves."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from modules.page import extra_networks as uen
from tools import demo_extra_networks as demo

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    lora = models / "Lora"
    lora.mkdir(parents=True)
    meta = {"ss_output_name": "plain-alias", "sshs_model_hash": "AB" * 32}
    (lora / "plain.safetensors").write_bytes(demo.tiny_lora(meta))
    (lora / "plain.png").write_bytes(demo.preview_pngs(1, 8)[0])
    (lora / "sub").mkdir()
    (lora / "sub" / "xl.safetensors").write_bytes(demo.tiny_lora({"ss_base_model_version": "sdxl_base_v1-0"}))
    (lora / "sub" / "xl.description.txt").write_text("Painterly XL style", encoding="utf-8")
    # Two files sharing one alias: the alias is forbidden and their cards use the file names.
    (lora / "twin_a.safetensors").write_bytes(demo.tiny_lora({"ss_output_name": "twin"}))
    (lora / "twin_b.safetensors").write_bytes(demo.tiny_lora({"ss_output_name": "twin"}))
    (lora / ".hidden").mkdir()
    (lora / ".hidden" / "secret.safetensors").write_bytes(demo.tiny_lora(None))
    emb = models / "embeddings"
    emb.mkdir(parents=True)
    (emb / "goodword.safetensors").write_bytes(demo.tiny_embedding(768))
    (emb / "sd2word.safetensors").write_bytes(demo.tiny_embedding(1024))
    hyper = models / "hypernetworks"
    hyper.mkdir(parents=True)
    (hyper / "anime.pt").write_bytes(b"not read while listing")
    ckpt = models / "Stable-diffusion"
    ckpt.mkdir(parents=True)
    (ckpt / "model-a.safetensors").write_bytes(demo.tiny_lora({"x": "not a checkpoint"}))
    (ckpt / "model-a.jpg").write_bytes(b"\xff\xd8\xff\xe0 tiny jpeg bytes")
    (ckpt / "model-a.txt").write_text("My favourite model", encoding="utf-8")
    (ckpt / "model-b.safetensors").write_bytes(demo.tiny_lora({"x": "not a checkpoint"}))
    return tmp_path


@pytest.fixture()
def engine(data_dir: Path):
    return demo.make_engine(data_dir)


@pytest.fixture()
def service(engine):
    return uen.ExtraNetworksService(engine)


@pytest.fixture()
def client(engine):
    app = fastapi.FastAPI()
    uen.mount_extra_networks_routes(app, engine)
    with TestClient(app) as c:
        yield c


def cards_by_name(payload: dict) -> dict[str, dict]:
    return {c["name"]: c for c in payload["cards"]}


# --- pure helpers -------------------------------------------------------------------------------------


def test_pages_in_a1111_order_and_reordered():
    assert [p.title for p in uen.ordered_pages("")] == ["Textual Inversion", "Hypernetworks", "Checkpoints", "Lora"]
    assert [p.name for p in uen.ordered_pages("lora, check")] == ["lora", "checkpoints", "textual_inversion",
                                                                  "hypernetworks"]
    assert [p.name for p in uen.ordered_pages("nothing-matches")][0] == "textual_inversion"


@pytest.mark.parametrize("value, text", [(1.0, "1"), (0.8, "0.8"), (2, "2"), (0.75, "0.75"), (1.25, "1.25")])
def test_multiplier_printed_as_javascript_prints_numbers(value, text):
    assert uen.format_multiplier(value) == text


def test_validation_names_the_field():
    lora = uen.PAGES_BY_NAME["lora"]
    assert uen.validate_user_metadata(lora, {"preferred weight": "0.5", "sd version": "SDXL"}) == {
        "preferred weight": 0.5, "sd version": "SDXL"}
    bad = [({"preferred weight": 2.5}, "preferred weight"), ({"preferred weight": True}, "preferred weight"),
           ({"preferred weight": "abc"}, "preferred weight"), ({"sd version": "SD3"}, "sd version"),
           ({"notes": 5}, "notes"), ({"color": "red"}, "color")]
    for data, field in bad:
        with pytest.raises(uen.UserMetadataError) as info:
            uen.validate_user_metadata(lora, data)
        assert info.value.field == field
        assert str(info.value).startswith(field + ":")
    with pytest.raises(uen.UserMetadataError, match="activation text: not an editable field of Textual Inversion"):
        uen.validate_user_metadata(uen.PAGES_BY_NAME["textual_inversion"], {"activation text": "x"})


# --- card data ---------------------------------------------------------------------------------------


def test_lora_cards(service, data_dir):
    payload = service.page("lora")
    assert payload["page"] == "lora" and payload["title"] == "Lora"
    assert payload["fields"] == ["description", "notes", "sd version", "activation text", "negative text",
                                 "preferred weight"]
    cards = cards_by_name(payload)
    assert set(cards) == {"plain", "xl", "twin_a", "twin_b", "secret"}
    plain = cards["plain"]
    assert plain["prompt"] == "<lora:plain-alias:1>"
    assert plain["alias"] == "plain-alias" and plain["relpath"] == "Lora/plain.safetensors" and plain["dir"] == "Lora"
    assert plain["family"] == "SD1" and plain["action"] == "insert" and plain["allow_negative"] is False
    assert plain["tag"] == {"kinds": ["lora", "lyco"], "names": ["plain", "plain-alias"]}
    # search terms: lower-case relpath and the hash already known from the metadata
    assert "lora/plain.safetensors" in plain["search"] and "ab" * 32 in plain["search"]
    assert plain["preview"].startswith("/sd_extra_networks/thumb?filename=")
    assert Path(uen._filename_of(plain["preview"])) == data_dir / "models/Lora/plain.png"
    xl = cards["xl"]
    assert xl["family"] == "SDXL" and xl["dir"] == "Lora/sub" and xl["description"] == "Painterly XL style"
    assert xl["preview"] is None and "painterly" in xl["search"]
    assert cards["twin_a"]["prompt"] == "<lora:twin_a:1>"  # the shared alias is forbidden
    assert cards["secret"]["hidden"] is True and plain["hidden"] is False
    st = os.stat(data_dir / "models/Lora/sub/xl.safetensors")
    assert xl["sort"] == {"default": xl["sort"]["default"], "name": "xl", "date": st.st_mtime, "size": st.st_size,
                          "path": "lora/sub/xl.safetensors"}
    assert sorted(c["sort"]["default"] for c in payload["cards"]) == list(range(5))
    assert payload["options"]["extra_networks_add_text_separator"] == " "
    assert payload["options"]["extra_networks_hidden_models"] == "When searched"
    assert payload["model_family"] is None


def test_lora_prompt_follows_options_and_user_metadata(engine, service, data_dir):
    engine.options.set("extra_networks_default_multiplier", 0.6)
    assert cards_by_name(service.page("lora"))["plain"]["prompt"] == "<lora:plain-alias:0.6>"
    engine.options.set("lora_preferred_name", "Filename")
    assert cards_by_name(service.page("lora"))["plain"]["prompt"] == "<lora:plain:0.6>"
    engine.options.set("lora_preferred_name", "Alias from file")
    (data_dir / "models/Lora/plain.json").write_text(json.dumps(
        {"preferred weight": 0.8, "activation text": "red hat", "negative text": "blurry"}), encoding="utf-8")
    engine.networks.loras.refresh()
    plain = cards_by_name(service.page("lora"))["plain"]
    assert plain["prompt"] == "<lora:plain-alias:0.8> red hat"
    assert plain["negative"] == "(blurry:1)"


def test_hypernetwork_and_checkpoint_cards(engine, service, data_dir):
    hn = service.page("hypernetworks")["cards"]
    assert [c["prompt"] for c in hn] == ["<hypernet:anime:1>"]
    assert hn[0]["tag"] == {"kinds": ["hypernet"], "names": ["anime"]}
    ckpts = cards_by_name(service.page("checkpoints"))
    a = ckpts["model-a"]
    assert a["action"] == "checkpoint" and a["title"] == "model-a.safetensors" and a["prompt"] == ""
    assert a["relpath"] == "Stable-diffusion/model-a.safetensors" and a["description"] == "My favourite model"
    assert Path(uen._filename_of(a["preview"])) == data_dir / "models/Stable-diffusion/model-a.jpg"
    assert ckpts["model-b"]["preview"] is None


def test_embedding_cards_and_skipped(engine, service):
    # No model loaded and nothing checked yet: every file is a card.
    assert sorted(c["name"] for c in service.page("textual_inversion")["cards"]) == ["goodword", "sd2word"]
    demo.check_embeddings_without_model(engine, 768)
    payload = service.page("textual_inversion")
    assert [c["name"] for c in payload["cards"]] == ["goodword"]
    card = payload["cards"][0]
    assert card["prompt"] == "goodword" and card["allow_negative"] is True and card["tag"] is None
    assert payload["fields"] == ["description", "notes"]
    assert len(payload["skipped"]) == 1
    skipped = payload["skipped"][0]
    assert skipped["name"] == "sd2word" and skipped["filename"].endswith("sd2word.safetensors")
    assert skipped["reason"].startswith("width mismatch: vector width 1024 (SD2)")


def test_page_is_cached_until_something_changes(engine, service, data_dir):
    first = service.page("lora")
    assert service.page("lora") is first
    assert service.page_json("lora") is service.page_json("lora")
    engine.options.set("extra_networks_default_multiplier", 0.5)
    second = service.page("lora")
    assert second is not first
    (data_dir / "models/Lora/new_one.safetensors").write_bytes(demo.tiny_lora(None))
    assert service.page("lora") is second  # not listed before a refresh...
    service.refresh()
    assert "new_one" in cards_by_name(service.page("lora"))  # ...and listed after one


def test_five_thousand_cards_build_fast(tmp_path):
    demo.write_loras(tmp_path / "models" / "Lora", 5000, previews=True)
    engine = demo.make_engine(tmp_path)
    engine.networks.loras.refresh()
    service = uen.ExtraNetworksService(engine)
    started = time.perf_counter()
    data = service.page_json("lora")
    elapsed = time.perf_counter() - started
    assert len(json.loads(data)["cards"]) == 5000
    assert elapsed < 3.0, f"building 5,000 cards took {elapsed:.2f}s"


# --- routes -----------------------------------------------------------------------------------------------


def test_cards_route(client):
    r = client.get("/sd_extra_networks/cards", params={"page": "lora"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert {c["name"] for c in r.json()["cards"]} == {"plain", "xl", "twin_a", "twin_b", "secret"}
    r = client.get("/sd_extra_networks/cards", params={"page": "nope"})
    assert r.status_code == 404 and r.json()["field"] == "page" and "unknown page 'nope'" in r.json()["error"]


def test_thumb_route_serves_only_listed_previews(client, data_dir, engine):
    lora = data_dir / "models" / "Lora"
    card = cards_by_name(client.get("/sd_extra_networks/cards", params={"page": "lora"}).json())["plain"]
    r = client.get(card["preview"])
    assert r.status_code == 200 and r.content == (lora / "plain.png").read_bytes()
    assert r.headers["content-type"] == "image/png"

    def thumb(path) -> int:
        r = client.get("/sd_extra_networks/thumb", params={"filename": str(path), "mtime": "1"})
        # Refusals follow file_serving's rules: 403 outside the allowed folders, 404 for what is not there.
        return 404 if r.status_code == 403 else r.status_code

    assert thumb(lora / "sub" / ".." / "plain.png") == 200  # same file once resolved
    assert thumb(lora / "plain.safetensors") == 404  # not an image
    (lora / "stray.png").write_bytes(b"\x89PNG not a preview of anything")
    assert thumb(lora / "stray.png") == 404  # an image, but no listed network's preview
    assert thumb("/etc/passwd") == 404
    assert thumb("") == 404
    # A preview named like an image that links to something else is refused on its real path.
    (lora / "evil.safetensors").write_bytes(demo.tiny_lora(None))
    os.symlink(data_dir / "models/Lora/plain.safetensors", lora / "evil.png")
    engine.networks.loras.refresh()
    assert cards_by_name(client.get("/sd_extra_networks/cards", params={"page": "lora"}).json())["evil"]["preview"]
    assert thumb(lora / "evil.png") == 404
    # Checkpoint previews are served once the checkpoints page has been listed.
    ckpt = cards_by_name(client.get("/sd_extra_networks/cards", params={"page": "checkpoints"}).json())["model-a"]
    assert client.get(ckpt["preview"]).status_code == 200


def test_save_user_metadata_writes_sidecar_and_returns_card(client, data_dir):
    lora = data_dir / "models" / "Lora"
    (lora / "plain.json").write_text(json.dumps({"notes": "keep me", "custom": 1}), encoding="utf-8")
    card_id = str(lora / "plain.safetensors")
    r = client.post("/sd_extra_networks/save-user-metadata", json={
        "page": "lora", "id": card_id,
        "data": {"preferred weight": 0.7, "activation text": "trigger", "description": "Edited", "sd version": "SD1"}})
    assert r.status_code == 200, r.text
    card = r.json()["card"]
    assert card["prompt"] == "<lora:plain-alias:0.7> trigger" and card["description"] == "Edited"
    saved = json.loads((lora / "plain.json").read_text(encoding="utf-8"))
    assert saved == {"notes": "keep me", "custom": 1, "preferred weight": 0.7, "activation text": "trigger",
                     "description": "Edited", "sd version": "SD1"}
    assert not [p for p in lora.iterdir() if p.name.endswith(".tmp")]  # atomic write left nothing behind
    listed = cards_by_name(client.get("/sd_extra_networks/cards", params={"page": "lora"}).json())["plain"]
    assert listed["prompt"] == "<lora:plain-alias:0.7> trigger"
    meta = client.get("/sd_extra_networks/user-metadata", params={"page": "lora", "id": card_id}).json()
    assert meta["user_metadata"]["notes"] == "keep me" and meta["user_metadata"]["preferred weight"] == 0.7
    assert "custom" not in meta["user_metadata"]


def test_save_user_metadata_errors(client, data_dir):
    card_id = str(data_dir / "models/Lora/plain.safetensors")
    url = "/sd_extra_networks/save-user-metadata"
    r = client.post(url, json={"page": "lora", "id": card_id, "data": {"preferred weight": 3}})
    assert r.status_code == 422 and r.json()["field"] == "preferred weight" and "from 0 to 2" in r.json()["error"]
    r = client.post(url, json={"page": "lora", "id": card_id, "data": {"colour": "red"}})
    assert r.status_code == 422 and r.json()["field"] == "colour"
    r = client.post(url, json={"page": "lora", "id": "/nowhere.safetensors", "data": {"notes": "x"}})
    assert r.status_code == 404 and r.json()["field"] == "id"
    r = client.post(url, json={"page": "wat", "id": card_id, "data": {}})
    assert r.status_code == 422 and r.json()["field"] == "page"
    assert not (data_dir / "models/Lora/plain.json").exists()


def test_save_checkpoint_and_embedding_metadata(client, data_dir):
    ckpt = data_dir / "models/Stable-diffusion/model-b.safetensors"
    r = client.post("/sd_extra_networks/save-user-metadata",
                    json={"page": "checkpoints", "id": str(ckpt), "data": {"description": "Fast", "notes": "n"}})
    assert r.status_code == 200, r.text
    assert r.json()["card"]["description"] == "Fast"
    assert json.loads(ckpt.with_suffix(".json").read_text(encoding="utf-8")) == {"description": "Fast", "notes": "n"}
    emb = data_dir / "models/embeddings/goodword.safetensors"
    r = client.post("/sd_extra_networks/save-user-metadata",
                    json={"page": "textual_inversion", "id": str(emb), "data": {"description": "A word"}})
    assert r.status_code == 200 and r.json()["card"]["description"] == "A word"


def test_refresh_route_picks_up_new_files(client, data_dir):
    assert "fresh" not in cards_by_name(client.get("/sd_extra_networks/cards", params={"page": "lora"}).json())
    (data_dir / "models/Lora/fresh.safetensors").write_bytes(demo.tiny_lora(None))
    (data_dir / "models/Stable-diffusion/model-c.safetensors").write_bytes(demo.tiny_lora(None))
    assert client.post("/sd_extra_networks/refresh").json() == {"ok": True}
    assert "fresh" in cards_by_name(client.get("/sd_extra_networks/cards", params={"page": "lora"}).json())
    assert "model-c" in cards_by_name(client.get("/sd_extra_networks/cards", params={"page": "checkpoints"}).json())


def test_checkpoint_switch_runs_in_background(client, engine, monkeypatch):
    calls = []

    def fake_load():  # records the request and stands in for the load (select_checkpoint reads checkpoint_info)
        calls.append(engine.options.get("sd_model_checkpoint"))
        monkeypatch.setattr(engine, "checkpoint_info", engine.resolve_checkpoint(calls[-1]))

    monkeypatch.setattr(engine, "ensure_model", fake_load)
    r = client.post("/sd_extra_networks/checkpoint", json={"title": "model-b.safetensors"})
    assert r.status_code == 202 and r.json()["state"] == "loading"
    status = engine_service(client).switcher.wait(10)
    assert status["state"] == "done" and status["title"] == "model-b.safetensors"
    assert calls == ["model-b.safetensors"]
    assert client.get("/sd_extra_networks/checkpoint-status").json()["state"] == "done"
    r = client.post("/sd_extra_networks/checkpoint", json={"title": "no-such-model"})
    assert r.status_code == 404 and "not found" in r.json()["error"]
    r = client.post("/sd_extra_networks/checkpoint", json={})
    assert r.status_code == 422 and r.json()["field"] == "title"


def test_checkpoint_switch_error_is_reported_and_setting_restored(client, engine):
    engine.options.set("sd_model_checkpoint", "model-a.safetensors")
    r = client.post("/sd_extra_networks/checkpoint", json={"title": "model-b.safetensors"})
    assert r.status_code == 202
    status = engine_service(client).switcher.wait(60)
    assert status["state"] == "error" and status["title"] == "model-b.safetensors"
    assert status["error"]  # the loader's message, shown on the page
    assert engine.options.get("sd_model_checkpoint") == "model-a.safetensors"


def engine_service(client) -> uen.ExtraNetworksService:
    return client.app.state.extra_networks


def test_static_route_serves_only_the_browser_files(client):
    r = client.get("/sd_extra_networks/static/extraNetworks.js")
    assert r.status_code == 200 and "window.sdExtraNetworks" in r.text
    assert r.headers["content-type"].startswith("text/javascript")
    assert client.get("/sd_extra_networks/static/extra_networks.css").status_code == 200
    assert client.get("/sd_extra_networks/static/..%2Fwebui.py").status_code == 404
    assert client.get("/sd_extra_networks/static/webui.py").status_code == 404


# --- Gradio side ------------------------------------------------------------------------------------------


def test_routes_win_over_gradio_mounted_first_and_tabs_have_a1111_ids(engine):
    app = demo.create_app(engine)  # mounts Gradio at "/" first, then the routes
    with TestClient(app) as c:
        r = c.get("/sd_extra_networks/cards", params={"page": "hypernetworks"})
        assert r.status_code == 200 and r.json()["cards"][0]["name"] == "anime"
        config = c.get("/config").json()
    ids = [comp["props"].get("elem_id") for comp in config["components"]]
    tab_ids = [i for i in ids if i in {"txt2img_textual_inversion", "txt2img_hypernetworks", "txt2img_checkpoints",
                                       "txt2img_lora"}]
    assert tab_ids == ["txt2img_textual_inversion", "txt2img_hypernetworks", "txt2img_checkpoints", "txt2img_lora"]
    html = next(comp for comp in config["components"] if comp["props"].get("elem_id") == "txt2img_lora_cards_html")
    assert "/sd_extra_networks/static/extraNetworks.js" in html["props"]["head"]
    js = html["props"]["js_on_load"]
    assert '"page": "lora"' in js and '"prompt": "txt2img_prompt"' in js and '"negPrompt": "txt2img_neg_prompt"' in js
