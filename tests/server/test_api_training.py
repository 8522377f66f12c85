"""The four training routes driven as an A1111 client drives them, on a tiny SD1 checkpoint: create, train,
progress while training, interrupt, the files' A1111 layouts, and the results used at once in a generation."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from modules.settings import cmd_args
from tests import tiny_models


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    import webui

    data = tmp_path_factory.mktemp("api-training")
    ckpt_dir = data / "models" / "Stable-diffusion"
    ckpt_dir.mkdir(parents=True)
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=1), ckpt_dir / "tiny.safetensors", "sd1")
    pics = data / "pics"
    pics.mkdir()
    for i in range(4):
        Image.new("RGB", (64, 64), (40 * i, 120, 200)).save(pics / f"{i:02d}-blue square.png")
    (pics / "00-blue square.txt").write_text("a blue square, stripes", encoding="utf-8")
    args = cmd_args.parse_args(["--data-dir", str(data), "--nowebui"], environ={})
    engine = webui.build_engine(args)
    engine.ensure_model()
    app = webui.create_app(engine, args)
    return {"engine": engine, "client": TestClient(app), "data": data, "pics": pics}


def _train_body(env, **kw):
    body = dict(learn_rate="0.005:2, 0.001", batch_size=2, gradient_step=1, data_root=str(env["pics"]),
                training_width=64, training_height=64, steps=3, create_image_every=0, template_filename="subject.txt")
    body.update(kw)
    return body


def _weights(engine):
    model = engine.model
    out = {f"unet.{k}": v.clone() for k, v in model.unet.state_dict().items()}
    out.update({f"te.{k}": v.clone() for k, v in model.text_encoders[0].state_dict().items()})
    out.update({f"vae.{k}": v.clone() for k, v in model.vae.state_dict().items()})
    return out


def _generate(client, prompt):
    r = client.post("/sdapi/v1/txt2img", json={"prompt": prompt, "steps": 2, "width": 64, "height": 64, "seed": 5,
                                               "sampler_name": "Euler"})
    assert r.status_code == 200, r.text
    # Pixels, not the PNG: the infotext in it names the prompt.
    return np.asarray(convert_b64(r.json()["images"][0])).tobytes()


def convert_b64(data: str) -> Image.Image:
    import base64
    import io

    return Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")


def test_create_embedding_answer_file_and_word(env):
    client, engine = env["client"], env["engine"]
    r = client.post("/sdapi/v1/create/embedding", json={"name": "api-emb", "num_vectors_per_token": 3,
                                                         "overwrite_old": False, "init_text": "red circle"})
    assert r.status_code == 200, r.text
    info = r.json()["info"]
    assert info.startswith("create embedding filename: ") and info.endswith("api-emb.pt")
    path = info.removeprefix("create embedding filename: ")
    data = torch.load(path, weights_only=True)
    assert set(data) == {"string_to_token", "string_to_param", "name", "step", "sd_checkpoint", "sd_checkpoint_name"}
    assert data["string_to_token"] == {"*": 265} and data["step"] == 0 and data["name"] == "api-emb"
    vec = data["string_to_param"]["*"]
    assert vec.shape == (3, tiny_models.TINY_TEXT_WIDTH)
    table = engine.model.text_encoders[0].get_input_embeddings().weight
    ids = engine.model.tokenizers[0]("red circle", add_special_tokens=False)["input_ids"]
    # Two init tokens over three vectors: 0 -> token 0, 1 -> token 0, 2 -> token 1 (A1111's spreading).
    assert torch.equal(vec[0], table[ids[0]]) and torch.equal(vec[1], table[ids[0]]) and torch.equal(vec[2], table[ids[1]])
    listed = client.get("/sdapi/v1/embeddings").json()["loaded"]
    assert listed["api-emb"]["vectors"] == 3 and listed["api-emb"]["step"] == 0
    # Exists and no overwrite: 422 naming the field; with overwrite it is replaced.
    r = client.post("/sdapi/v1/create/embedding", json={"name": "api-emb", "num_vectors_per_token": 1})
    assert r.status_code == 422 and "overwrite_old" in r.text
    r = client.post("/sdapi/v1/create/embedding", json={"name": "api-emb", "num_vectors_per_token": 1,
                                                         "overwrite_old": True, "init_text": ""})
    assert r.status_code == 200
    assert torch.count_nonzero(torch.load(path, weights_only=True)["string_to_param"]["*"]) == 0


def test_create_hypernetwork_layout(env):
    client = env["client"]
    r = client.post("/sdapi/v1/create/hypernetwork", json={
        "name": "api-hn", "enable_sizes": ["32", "64"], "overwrite_old": False, "layer_structure": "1, 2, 1",
        "activation_func": "relu", "weight_init": "XavierNormal", "add_layer_norm": True, "use_dropout": True,
        "dropout_structure": "0, 0.1, 0"})
    assert r.status_code == 200, r.text
    path = r.json()["info"].removeprefix("create hypernetwork filename: ")
    data = torch.load(path, weights_only=True)
    assert sorted(k for k in data if isinstance(k, int)) == [32, 64]
    assert data["layer_structure"] == [1.0, 2.0, 1.0] and data["activation_func"] == "relu"
    assert data["is_layer_norm"] is True and data["weight_initialization"] == "XavierNormal"
    assert data["dropout_structure"] == [0.0, 0.1, 0.0] and data["use_dropout"] is True and data["step"] == 0
    # Linear 0, ReLU 1, LayerNorm 2, Dropout 3, Linear 4, LayerNorm 5: A1111's Sequential slots.
    assert sorted(data[32][0]) == ["linear.0.bias", "linear.0.weight", "linear.2.bias", "linear.2.weight",
                                   "linear.4.bias", "linear.4.weight", "linear.5.bias", "linear.5.weight"]
    hns = {h["name"] for h in client.get("/sdapi/v1/hypernetworks").json()}
    assert "api-hn" in hns
    for body, field in ((dict(name="x", layer_structure="2, 1"), "layer_structure"),
                        (dict(name="x", weight_init="Zeros"), "weight_init"),
                        (dict(name="x", activation_func="nosuch"), "activation_func"),
                        (dict(name="///"), "name"), (dict(name="x", bogus=1), "bogus")):
        r = client.post("/sdapi/v1/create/hypernetwork", json=body)
        assert r.status_code == 422 and field in r.text, (body, r.text)


def test_train_embedding_then_use_the_word(env):
    client, engine = env["client"], env["engine"]
    client.post("/sdapi/v1/create/embedding", json={"name": "api-train-emb", "num_vectors_per_token": 2})
    before = _weights(engine)
    r = client.post("/sdapi/v1/train/embedding", json={"embedding_name": "api-train-emb", **_train_body(env),
                                                        "save_embedding_every": 2})
    assert r.status_code == 200, r.text
    info = r.json()["info"]
    assert info.startswith("train embedding complete: filename: ") and info.endswith("api-train-emb.pt error: None")
    path = info.split("filename: ")[1].split(" error:")[0]
    data = torch.load(path, weights_only=True)
    assert data["step"] == 3 and data["sd_checkpoint_name"] == "tiny"
    optim = torch.load(path + ".optim", weights_only=True)
    assert set(optim) == {"hash", "optimizer_name", "optimizer_state_dict"} and optim["optimizer_name"] == "AdamW"
    after = _weights(engine)
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
    # The trained word is used at once: the picture differs from the one without it.
    assert _generate(client, "api-train-emb square") != _generate(client, "square")


def test_train_hypernetwork_multiplier_zero_is_base(env):
    client, engine = env["client"], env["engine"]
    client.post("/sdapi/v1/create/hypernetwork", json={"name": "api-train-hn", "enable_sizes": [32, 64],
                                                        "activation_func": "relu", "weight_init": "KaimingUniform"})
    before = _weights(engine)
    r = client.post("/sdapi/v1/train/hypernetwork", json={"hypernetwork_name": "api-train-hn", **_train_body(env),
                                                           "learn_rate": "0.01", "save_hypernetwork_every": 0,
                                                           "template_filename": "hypernetwork.txt",
                                                           "clip_grad_mode": "value", "clip_grad_value": "0.5"})
    assert r.status_code == 200, r.text
    assert r.json()["info"].startswith("train hypernetwork complete: filename: ")
    assert [k for k in before if not torch.equal(before[k], _weights(engine)[k])] == []
    base = _generate(client, "square")
    assert _generate(client, "square <hypernet:api-train-hn:0>") == base
    assert _generate(client, "square <hypernet:api-train-hn:1>") != base


@pytest.mark.parametrize("field,value", [("learn_rate", "0.1:abc"), ("batch_size", 0), ("data_root", "/no/such/dir"),
                                         ("template_filename", "nosuch.txt"), ("latent_sampling_method", "sometimes"),
                                         ("clip_grad_mode", "maybe"), ("embedding_name", "unknown-word")])
def test_train_bad_fields_are_422(env, field, value):
    client = env["client"]
    client.post("/sdapi/v1/create/embedding", json={"name": "api-bad", "num_vectors_per_token": 1, "overwrite_old": True})
    body = {"embedding_name": "api-bad", **_train_body(env), field: value}
    r = client.post("/sdapi/v1/train/embedding", json=body)
    assert r.status_code == 422 and field in r.text, r.text
    assert env["engine"].state.job == ""


def test_progress_and_interrupt_during_training(env):
    client, engine = env["client"], env["engine"]
    client.post("/sdapi/v1/create/hypernetwork", json={"name": "api-long", "enable_sizes": [32]})
    answer: dict = {}

    def run():
        answer["r"] = client.post("/sdapi/v1/train/hypernetwork", json={
            "hypernetwork_name": "api-long", **_train_body(env, steps=100000, batch_size=1), "learn_rate": "0.001",
            "template_filename": "hypernetwork.txt", "id_task": "task(train-1)"})

    thread = threading.Thread(target=run)
    thread.start()
    seen = None
    deadline = time.time() + 60
    while time.time() < deadline:
        body = client.get("/sdapi/v1/progress?skip_current_image=true").json()
        if body["state"]["job"] == "train_hypernetwork" and body["state"]["job_no"] >= 2:
            seen = body
            break
        time.sleep(0.05)
    assert seen is not None, "training never showed progress"
    assert "Loss:" in seen["textinfo"] and "Step:" in seen["textinfo"] and "Learning rate: 0.001" in seen["textinfo"]
    assert seen["state"]["job_count"] == 100000 and 0 < seen["progress"] < 1 and seen["eta_relative"] > 0
    internal = client.post("/internal/progress", json={"id_task": "task(train-1)"}).json()
    assert internal["active"] is True
    assert client.post("/sdapi/v1/interrupt").json() == {}
    thread.join(60)
    assert not thread.is_alive()
    r = answer["r"]
    assert r.status_code == 200, r.text
    path = r.json()["info"].split("filename: ")[1].split(" error:")[0]
    step = torch.load(path, weights_only=True)["step"]
    assert 2 <= step < 100000
    assert engine.state.job == "" and not engine.state.active
    # The queue is free again: a generation runs.
    assert _generate(client, "square")
