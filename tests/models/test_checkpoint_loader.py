"""modules/checkpoint_loader.py, ldm_export.py and builtin_model.py: offline single-file round trips."""
from __future__ import annotations

import hashlib
import os
import socket
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from modules.models import checkpoint_loader as cl
from modules.models.builtin_model import BUILTIN_FILENAME, ensure_builtin_model
from modules.models.ldm_export import components_to_ldm, save_single_file
from modules.models.safe_load import CheckpointLoadError, read_safetensors_metadata
from tests.tiny_models import tiny_sd1, tiny_sd2, tiny_sdxl, write_single_file


@pytest.fixture
def no_network(monkeypatch):
    """Any socket use fails the test (even if the caller would swallow the error)."""
    attempts: list[str] = []

    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            attempts.append(f"socket{args}")
            raise OSError("network disabled in tests")

    def refuse(*args, **kwargs):
        attempts.append(f"connect{args}")
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "socket", NoSocket)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert not attempts, f"network access attempted: {attempts}"


def _pairs(comps: dict, model: cl.LoadedModel):
    out = [("unet", comps["unet"], model.unet), ("vae", comps["vae"], model.vae),
           ("text_encoder", comps["text_encoder"], model.text_encoders[0])]
    if "text_encoder_2" in comps:
        out.append(("text_encoder_2", comps["text_encoder_2"], model.text_encoders[1]))
    return out


def assert_same_weights(comps: dict, model: cl.LoadedModel, dtype=None):
    for name, a, b in _pairs(comps, model):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys(), name
        for k in sa:
            want = sa[k].to(dtype) if dtype is not None and sa[k].is_floating_point() else sa[k]
            assert sb[k].dtype == want.dtype, (name, k)
            assert torch.equal(sb[k], want), (name, k)


FAMILIES = {
    "sd1": (tiny_sd1, "sd1", dict(prediction="epsilon", native=512, n_te=1)),
    "sd2-v": (lambda: tiny_sd2(v_prediction=True), "sd2", dict(prediction="v_prediction", native=768, n_te=1)),
    "sd2-eps": (lambda: tiny_sd2(v_prediction=False), "sd2", dict(prediction="epsilon", native=512, n_te=1)),
    "sdxl": (tiny_sdxl, "sdxl", dict(prediction="epsilon", native=1024, n_te=2)),
}


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    out = {}
    for name, (make, family, _) in FAMILIES.items():
        comps = make()
        out[name] = (comps, write_single_file(comps, root / f"{name}.safetensors", family))
    return out


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_single_file_round_trip_offline(tiny_files, name, no_network):
    comps, path = tiny_files[name]
    _, family, expect = FAMILIES[name]
    m = cl.load_checkpoint(path, device="cpu", dtype=torch.float32)
    assert (m.family, m.is_inpainting, m.prediction_type, m.native_size) == (
        family, False, expect["prediction"], expect["native"])
    assert m.scheduler_config["prediction_type"] == expect["prediction"]
    assert m.scheduler_config["_class_name"] == comps["scheduler"].__class__.__name__
    assert len(m.text_encoders) == len(m.tokenizers) == expect["n_te"]
    assert [t.pad_token for t in m.tokenizers] == [t.pad_token for t in
                                                   [comps["tokenizer"], comps.get("tokenizer_2")] if t]
    assert m.unet.config.sample_size * m.vae_scale_factor == expect["native"]
    assert m.latent_channels == 4 and m.vae_scale_factor == 8
    assert m.path == str(path) and m.ignored_keys == [] and m.warnings == []
    assert set(m.config) >= {"unet", "vae", "text_encoder", "scheduler"}
    assert_same_weights(comps, m)
    assert not any(p.requires_grad for p in m.unet.parameters())
    assert not m.unet.training


def test_half_precision_load(tiny_files, no_network):
    comps, path = tiny_files["sdxl"]
    m = cl.load_checkpoint(path, dtype=torch.float16, vae_dtype=torch.float32)
    for name, a, b in _pairs(comps, m):
        want = torch.float32 if name == "vae" else torch.float16
        for k, v in a.state_dict().items():
            assert torch.equal(b.state_dict()[k], v.to(want)), (name, k)


def test_ckpt_round_trip_and_old_clip_layout(tiny_files, tmp_path, no_network):
    comps, path = tiny_files["sd1"]
    ldm = load_file(path)
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": ldm, "global_step": 1000, "epoch": 1}, ckpt)
    assert_same_weights(comps, cl.load_checkpoint(ckpt))
    old = {k.replace("cond_stage_model.transformer.text_model.", "cond_stage_model.transformer."): v
           for k, v in ldm.items()}
    old["cond_stage_model.transformer.embeddings.position_ids"] = torch.arange(77)[None]
    old_path = tmp_path / "old-layout.safetensors"
    save_file(old, old_path)
    m = cl.load_checkpoint(old_path)
    assert m.family == "sd1" and m.ignored_keys == []
    assert_same_weights(comps, m)


def test_load_any_dispatches(tiny_files, tmp_path):
    comps, path = tiny_files["sd1"]
    assert_same_weights(comps, cl.load_any(path))


def _generate(m: cl.LoadedModel):
    import diffusers

    sched = getattr(diffusers, m.scheduler_config["_class_name"]).from_config(m.scheduler_config)
    common = dict(vae=m.vae, unet=m.unet, scheduler=sched, text_encoder=m.text_encoders[0], tokenizer=m.tokenizers[0])
    if m.family == "sdxl":
        pipe = diffusers.StableDiffusionXLPipeline(text_encoder_2=m.text_encoders[1], tokenizer_2=m.tokenizers[1],
                                                   **common)
    else:
        pipe = diffusers.StableDiffusionPipeline(safety_checker=None, feature_extractor=None,
                                                 requires_safety_checker=False, **common)
    pipe.set_progress_bar_config(disable=True)
    return pipe("a red apple", num_inference_steps=1, height=64, width=64, output_type="np",
                generator=torch.Generator().manual_seed(0)).images


@pytest.mark.parametrize("name", ["sd1", "sdxl"])
def test_loaded_model_generates(tiny_files, name, no_network):
    _, path = tiny_files[name]
    images = _generate(cl.load_checkpoint(path))
    assert images.shape == (1, 64, 64, 3)
    assert torch.isfinite(torch.from_numpy(images)).all()


def test_inpainting_variant(tmp_path):
    from diffusers import UNet2DConditionModel

    comps = tiny_sd1()
    cfg = dict(comps["unet"].config)
    cfg["in_channels"] = 9
    torch.manual_seed(5)
    comps["unet"] = UNet2DConditionModel.from_config(cfg).eval()
    path = write_single_file(comps, tmp_path / "inpaint.safetensors", "sd1")
    m = cl.load_checkpoint(path)
    assert (m.family, m.is_inpainting, m.prediction_type, m.native_size) == ("sd1", True, "epsilon", 512)
    assert m.unet.config.in_channels == 9 and m.latent_channels == 4
    assert_same_weights(comps, m)


def test_sdxl_v_prediction_marker(tmp_path):
    from diffusers import EulerDiscreteScheduler

    comps = tiny_sdxl()
    comps["scheduler"] = EulerDiscreteScheduler.from_config(comps["scheduler"].config, prediction_type="v_prediction",
                                                            rescale_betas_zero_snr=True)
    path = write_single_file(comps, tmp_path / "xl-v.safetensors", "sdxl")
    assert {"v_pred", "ztsnr"} <= set(load_file(path))
    m = cl.load_checkpoint(path)
    assert m.prediction_type == "v_prediction" and m.scheduler_config["rescale_betas_zero_snr"] is True
    assert m.ignored_keys == []


def test_metadata_written_and_bytes_reproducible(tmp_path):
    comps = tiny_sd1()
    meta = {"modelspec.title": "x", "a": "1", "z": "2"}
    path = write_single_file(comps, tmp_path / "meta.safetensors", "sd1", metadata=meta)
    assert read_safetensors_metadata(path) == {"format": "pt", **meta}
    again = write_single_file(comps, tmp_path / "again.safetensors", "sd1", metadata=dict(reversed(meta.items())))
    assert again.read_bytes() == path.read_bytes()
    assert not list(tmp_path.glob("*.tmp"))
    ref = components_to_ldm(comps, "sd1")
    back = load_file(path)
    assert back.keys() == ref.keys() and all(torch.equal(back[k], ref[k]) for k in ref)


# --- errors ----------------------------------------------------------------------------------

def _edited(tiny_files, tmp_path, name, edit):
    ldm = load_file(tiny_files[name][1])
    edit(ldm)
    p = tmp_path / f"edited-{name}.safetensors"
    save_file(ldm, p)
    return p


def _load_error(path) -> CheckpointLoadError:
    with pytest.raises(CheckpointLoadError) as ei:
        cl.load_checkpoint(path)
    assert ei.value.path == str(path) and str(path) in str(ei.value)
    return ei.value


def test_missing_key(tiny_files, tmp_path):
    p = _edited(tiny_files, tmp_path, "sd1", lambda sd: sd.pop("model.diffusion_model.input_blocks.1.0.in_layers.0.bias"))
    assert "missing unet keys: down_blocks.0.resnets.0.norm1.bias" in _load_error(p).reason


def test_unexpected_keys(tiny_files, tmp_path):
    def add(sd):
        sd["model.diffusion_model.input_blocks.1.1.bogus.weight"] = torch.zeros(2)

    assert "unexpected unet keys: down_blocks.0.attentions.0.bogus.weight" in _load_error(
        _edited(tiny_files, tmp_path, "sd1", add)).reason

    def add_te(sd):
        sd["conditioner.embedders.1.model.transformer.resblocks.0.extra.weight"] = torch.zeros(2)

    assert "unexpected text_encoder_2 keys" in _load_error(_edited(tiny_files, tmp_path, "sdxl", add_te)).reason


def test_shape_mismatch(tiny_files, tmp_path):
    key = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"
    p = _edited(tiny_files, tmp_path, "sd1", lambda sd: sd.__setitem__(key, torch.zeros(7, 32)))
    assert "shapes do not fit" in _load_error(p).reason


def test_unknown_top_level_keys_are_ignored(tiny_files, tmp_path):
    p = _edited(tiny_files, tmp_path, "sd1", lambda sd: sd.update({"some_extension.weight": torch.ones(3),
                                                                    "alphas_cumprod": torch.ones(1000)}))
    m = cl.load_checkpoint(p)
    assert m.ignored_keys == ["some_extension.weight"]
    assert any("some_extension.weight" in w for w in m.warnings)


def test_unsupported_and_foreign_files(tmp_path):
    sd3 = tmp_path / "sd3.safetensors"
    save_file({"model.diffusion_model.x_embedder.proj.weight": torch.zeros(4, 16, 2, 2),
               "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": torch.zeros(12, 4)}, sd3)
    e = _load_error(sd3)
    assert e.reason.startswith("unsupported architecture: SD3")
    lora = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32),
               "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(32, 4)}, lora)
    assert "LoRA" in _load_error(lora).reason


def test_corrupt_and_malicious_checkpoints(tiny_files, tmp_path):
    data = tiny_files["sd1"][1].read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    assert "truncated" in _load_error(cut).reason

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": load_file(tiny_files["sd1"][1]), "x": Evil()}, evil)
    assert _load_error(evil).reason.startswith("refused: the pickle references builtins.exec")
    assert not marker.exists()
    assert "file not found" in _load_error(tmp_path / "missing.safetensors").reason


# --- VAE ----------------------------------------------------------------------------------------

def test_vae_files_in_every_layout(tiny_files, tmp_path):
    comps, _ = tiny_files["sd1"]
    ref = comps["vae"].state_dict()
    ldm = {k: v for k, v in components_to_ldm(comps, "sd1").items() if k.startswith("first_stage_model.")}
    files = {}
    files["ldm-prefixed"] = tmp_path / "a.vae.safetensors"
    save_file(ldm, files["ldm-prefixed"])
    files["ldm-plain-pt"] = tmp_path / "vae-ft-mse.pt"
    torch.save({"state_dict": {**{k.removeprefix("first_stage_model."): v for k, v in ldm.items()},
                               "loss.logvar": torch.zeros(()), "model_ema.decay": torch.tensor(0.999)}},
               files["ldm-plain-pt"])
    files["diffusers"] = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({k: v.contiguous() for k, v in ref.items()}, files["diffusers"])
    old_names = {}
    for k, v in ref.items():
        for new, old in ((".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")):
            k = k.replace(new, old)
        old_names[k] = v
    files["diffusers-old-attention"] = tmp_path / "old.bin"
    torch.save(old_names, files["diffusers-old-attention"])
    for label, f in files.items():
        sd = cl.load_vae(f)
        assert sd.keys() == ref.keys(), label
        assert all(torch.equal(sd[k], ref[k]) for k in ref), label

    other = tiny_sd1(seed=3)["vae"]
    cl.apply_vae(other, cl.load_vae(files["ldm-prefixed"]))
    assert all(torch.equal(other.state_dict()[k], ref[k]) for k in ref)


def test_external_vae_and_missing_baked_vae(tiny_files, tmp_path, no_network):
    comps, path = tiny_files["sd1"]
    ext = tiny_sd1(seed=7)["vae"]
    vae_file = tmp_path / "ext.vae.safetensors"
    save_file({k: v.contiguous() for k, v in ext.state_dict().items()}, vae_file)
    m = cl.load_checkpoint(path, vae_path=vae_file)
    assert m.has_baked_vae and m.vae_path == str(vae_file)
    assert all(torch.equal(m.vae.state_dict()[k], v) for k, v in ext.state_dict().items())

    no_vae = _edited(tiny_files, tmp_path, "sd1", lambda sd: [sd.pop(k) for k in list(sd)
                                                             if k.startswith("first_stage_model.")])
    assert "no VAE" in _load_error(no_vae).reason
    m = cl.load_checkpoint(no_vae, vae_path=vae_file)
    assert not m.has_baked_vae
    assert all(torch.equal(m.vae.state_dict()[k], v) for k, v in ext.state_dict().items())


def test_vae_that_does_not_fit(tiny_files, tmp_path):
    from diffusers import AutoencoderKL

    comps, path = tiny_files["sd1"]
    small = AutoencoderKL(block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D",) * 2,
                          up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=32)
    with pytest.raises(ValueError, match="does not fit"):
        cl.apply_vae(comps["vae"], small.state_dict())
    f = tmp_path / "small.safetensors"
    save_file({k: v.contiguous() for k, v in small.state_dict().items()}, f)
    with pytest.raises(CheckpointLoadError) as ei:
        cl.load_checkpoint(path, vae_path=f)
    assert ei.value.path == str(f)
    junk = tmp_path / "junk.safetensors"
    save_file({"foo.weight": torch.zeros(2)}, junk)
    with pytest.raises(CheckpointLoadError, match="not a VAE"):
        cl.load_vae(junk)


# --- diffusers folders --------------------------------------------------------------------------

def _save_folder(comps: dict, family: str, root):
    import diffusers

    common = dict(vae=comps["vae"], unet=comps["unet"], scheduler=comps["scheduler"],
                  text_encoder=comps["text_encoder"], tokenizer=comps["tokenizer"])
    if family == "sdxl":
        pipe = diffusers.StableDiffusionXLPipeline(text_encoder_2=comps["text_encoder_2"],
                                                   tokenizer_2=comps["tokenizer_2"], **common)
    else:
        pipe = diffusers.StableDiffusionPipeline(safety_checker=None, feature_extractor=None,
                                                 requires_safety_checker=False, **common)
    pipe.save_pretrained(root)
    return root


@pytest.mark.parametrize("name", ["sd1", "sd2-v", "sdxl"])
def test_diffusers_folder(tiny_files, tmp_path, name, no_network):
    comps, _ = tiny_files[name]
    _, family, expect = FAMILIES[name]
    root = _save_folder(comps, family, tmp_path / name)
    m = cl.load_any(root) if name == "sd1" else cl.load_diffusers_folder(root)
    assert (m.family, m.prediction_type, m.native_size) == (family, expect["prediction"], expect["native"])
    assert len(m.tokenizers) == expect["n_te"]
    assert [t.pad_token for t in m.tokenizers] == [t.pad_token for t in
                                                   [comps["tokenizer"], comps.get("tokenizer_2")] if t]
    assert_same_weights(comps, m)


def test_not_a_diffusers_folder(tmp_path):
    with pytest.raises(CheckpointLoadError, match="model_index.json"):
        cl.load_diffusers_folder(tmp_path)


# --- the built-in model ---------------------------------------------------------------------------

BUILTIN_SHA256 = "1253a4e78642a6a001f3b56fab048168d7c6633149d5d7bf555af5731ca3513d"


def test_builtin_model(tmp_path, no_network):
    t0 = time.perf_counter()
    path = ensure_builtin_model(tmp_path / "a")
    took = time.perf_counter() - t0
    assert path == tmp_path / "a" / BUILTIN_FILENAME
    assert took < 10, took
    assert path.stat().st_size < 15 * 1024 * 1024
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == BUILTIN_SHA256  # byte-identical on every machine

    again = ensure_builtin_model(tmp_path / "b")
    assert again.read_bytes() == path.read_bytes()
    mtime = path.stat().st_mtime_ns
    assert ensure_builtin_model(tmp_path / "a") == path and path.stat().st_mtime_ns == mtime

    m = cl.load_checkpoint(path)
    assert (m.family, m.prediction_type, m.native_size, m.is_inpainting) == ("sd1", "epsilon", 512, False)
    assert m.text_encoders[0].config.vocab_size == 49408 and m.warnings == []
    images = _generate(m)
    assert images.shape == (1, 64, 64, 3)


def test_builtin_model_stale_file_is_replaced(tmp_path):
    stale = tmp_path / BUILTIN_FILENAME
    save_file({"x": torch.zeros(1)}, stale, metadata={"sd_webui_diffusers.builtin_version": "0"})
    path = ensure_builtin_model(tmp_path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == BUILTIN_SHA256
    assert sorted(os.listdir(tmp_path)) == [BUILTIN_FILENAME]


def test_save_single_file_accepts_a_loaded_model(tiny_files, tmp_path):
    comps, path = tiny_files["sdxl"]
    m = cl.load_checkpoint(path)
    out = save_single_file(m, tmp_path / "resaved.safetensors", "sdxl")
    a, b = load_file(path), load_file(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
