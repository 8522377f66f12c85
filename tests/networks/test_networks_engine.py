"""Adapters end to end through the Engine on a tiny SD1 checkpoint: tags in the prompt change the picture, the
weights are exactly what each request asks for (also after failures), warnings and infotext hashes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modules.settings import cmd_args
from modules.core import infotext
from modules.core.request import GenerationRequest
from tests import network_files, tiny_models

TEXT_WIDTH = tiny_models.TINY_TEXT_WIDTH


def _hypernet_file(widths, seed: int) -> dict:
    """A1111 layout, structure [1, 2, 1] with relu: Sequential slots Linear(0), ReLU(1), Linear(2)."""
    gen = torch.Generator().manual_seed(seed)

    def mlp(dim):
        return {"linear.0.weight": torch.randn(2 * dim, dim, generator=gen) * 0.3, "linear.0.bias": torch.zeros(2 * dim),
                "linear.2.weight": torch.randn(dim, 2 * dim, generator=gen) * 0.3, "linear.2.bias": torch.zeros(dim)}

    data = {w: [mlp(w), mlp(w)] for w in widths}
    data.update(layer_structure=[1, 2, 1], activation_func="relu", is_layer_norm=False, activate_output=False,
                use_dropout=False, name="inner-name", step=10)
    return data


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    import webui

    data = tmp_path_factory.mktemp("networks")
    models = data / "models"
    components = tiny_models.tiny_sd1(seed=0)
    tiny_models.write_single_file(components, models / "Stable-diffusion" / "tiny.safetensors", "sd1")
    network_files.save_safetensors(network_files.kohya_lora(components, seed=1), models / "Lora" / "sub" / "tiny_lora.safetensors",
                                   metadata={"ss_output_name": "tinyalias", "ss_network_module": "networks.lora"})
    network_files.save_safetensors(network_files.kohya_lora(components, seed=2, text_encoder=False), models / "Lora" / "unet_only.safetensors")
    sdxl = tiny_models.tiny_sdxl(seed=0)
    network_files.save_safetensors(network_files.kohya_lora(sdxl, seed=3), models / "Lora" / "for_sdxl.safetensors",
                                   metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    (models / "embeddings").mkdir(parents=True)
    gen = torch.Generator().manual_seed(4)
    network_files.save_safetensors({"emb_params": torch.randn(2, TEXT_WIDTH, generator=gen)}, models / "embeddings" / "tinyemb.safetensors")
    network_files.save_safetensors({"emb_params": torch.randn(2, 768, generator=gen)}, models / "embeddings" / "wideemb.safetensors")
    (models / "hypernetworks").mkdir(parents=True)
    torch.save(_hypernet_file([32, 64], seed=5), models / "hypernetworks" / "tinyhyper.pt")
    args = cmd_args.parse_args(["--data-dir", str(data)], environ={})
    eng = webui.build_engine(args)
    eng.ensure_model()
    return eng


def _gen(engine, prompt="a cat", **kw):
    base = dict(prompt=prompt, negative_prompt="", steps=3, width=64, height=64, cfg_scale=5.0, sampler_name="Euler",
                seed=77, do_not_save_samples=True, do_not_save_grid=True)
    base.update(kw)
    return engine.generate(GenerationRequest(**base))


def _pixels(out) -> np.ndarray:
    return np.asarray(out.images[0].convert("RGB"), dtype=np.int16)


def _weights(engine) -> dict[str, torch.Tensor]:
    model = engine.model
    state = {f"unet.{k}": v.clone() for k, v in model.unet.state_dict().items()}
    for i, te in enumerate(model.text_encoders):
        state.update({f"te{i}.{k}": v.clone() for k, v in te.state_dict().items()})
    return state


def _assert_same_weights(engine, reference):
    now = _weights(engine)
    changed = [k for k, v in reference.items() if not torch.equal(v, now[k])]
    assert changed == []


@pytest.fixture(scope="module")
def baseline(engine):
    return _pixels(_gen(engine)), _weights(engine)


def test_multiplier_zero_is_bit_identical_to_no_tag(engine, baseline):
    pixels, weights = baseline
    out = _gen(engine, "a cat <lora:tiny_lora:0>")
    assert np.array_equal(_pixels(out), pixels)
    _assert_same_weights(engine, weights)
    assert out.warnings == []


def test_lora_changes_picture_writes_hash_and_unloads_exactly(engine, baseline):
    pixels, weights = baseline
    out = _gen(engine, "a cat <lora:tiny_lora:1>")
    assert np.abs(_pixels(out) - pixels).mean() > 1.0
    fields = infotext.parse_generation_parameters(out.infotexts[0])
    assert fields["Prompt"] == "a cat <lora:tiny_lora:1>"
    entry = engine.networks.loras.get("tiny_lora")
    from modules.models.hashes import addnet_hash_safetensors

    assert fields["Lora hashes"] == f"tiny_lora: {addnet_hash_safetensors(entry.path)[:12]}"
    again = _gen(engine, "a cat")
    assert np.array_equal(_pixels(again), pixels)
    _assert_same_weights(engine, weights)


def test_alias_lyco_and_named_multipliers_resolve_the_same_file(engine, baseline):
    a = _pixels(_gen(engine, "a cat <lora:tiny_lora:0.7>"))
    b = _pixels(_gen(engine, "a cat <lyco:tinyalias:te=0.7:unet=0.7>"))
    assert np.array_equal(a, b)


def test_text_encoder_and_unet_multipliers_act_separately(engine, baseline):
    pixels, _ = baseline
    te_only = _pixels(_gen(engine, "a cat <lora:tiny_lora:1:0>"))
    unet_only = _pixels(_gen(engine, "a cat <lora:tiny_lora:0:1>"))
    both = _pixels(_gen(engine, "a cat <lora:tiny_lora:1:1>"))
    assert not np.array_equal(te_only, pixels) and not np.array_equal(unet_only, pixels)
    assert not np.array_equal(te_only, both) and not np.array_equal(unet_only, both)


def test_missing_and_incompatible_files_warn_and_generation_goes_on(engine, baseline):
    pixels, weights = baseline
    out = _gen(engine, "a cat <lora:nosuchlora:1> <lora:for_sdxl:1> <hypernet:nosuchnet>")
    assert np.array_equal(_pixels(out), pixels)
    text = "\n".join(out.warnings)
    assert "Lora not found: nosuchlora" in text
    assert "for_sdxl" in text and "match no module" in text and "SDXL" in text
    assert "Hypernetwork not found: nosuchnet" in text
    assert out.info["warnings"] == out.warnings
    _assert_same_weights(engine, weights)


def test_failed_generation_leaves_the_weights_the_next_request_asks_for(engine, baseline, monkeypatch):
    pixels, weights = baseline
    from modules.engine import pipeline as processing

    def boom(*a, **k):
        raise RuntimeError("sampler exploded")

    monkeypatch.setattr(processing, "_sample", boom)
    with pytest.raises(RuntimeError, match="exploded"):
        _gen(engine, "a cat <lora:tiny_lora:1> <hypernet:tinyhyper:1>")
    monkeypatch.undo()
    out = _gen(engine, "a cat")
    assert np.array_equal(_pixels(out), pixels)
    _assert_same_weights(engine, weights)


def test_two_loras_stack_and_order_does_not_matter_for_plain_lora(engine, baseline):
    pixels, _ = baseline
    one = _pixels(_gen(engine, "a cat <lora:tiny_lora:0.5>"))
    a = _pixels(_gen(engine, "a cat <lora:tiny_lora:0.5> <lora:unet_only:0.8>"))
    b = _pixels(_gen(engine, "a cat <lora:unet_only:0.8> <lora:tiny_lora:0.5>"))
    # Float32 sums in another order round differently; the pictures agree to a level of 8-bit rounding.
    assert np.abs(a - b).max() <= 2 and np.abs(a - b).mean() < 0.05
    assert np.abs(a - one).mean() > 1.0 and np.abs(one - pixels).mean() > 1.0


def test_embedding_changes_conditioning_and_writes_ti_hash(engine, baseline):
    pixels, _ = baseline
    out = _gen(engine, "a tinyemb cat")
    plain = _pixels(_gen(engine, "a cat"))
    assert not np.array_equal(_pixels(out), plain)
    fields = infotext.parse_generation_parameters(out.infotexts[0])
    from modules.models.hashes import sha256_file

    path = engine.networks.embedding_files.get("tinyemb").path
    assert fields["TI hashes"] == f"tinyemb: {sha256_file(path)[:12]}"
    loaded, skipped = engine.networks.embeddings_report(True)
    assert [e.name for e in loaded] == ["tinyemb"]
    assert [e.name for e in skipped] == ["wideemb"]


def test_hypernetwork_changes_picture_and_zero_or_removal_restores(engine, baseline):
    pixels, weights = baseline
    out = _gen(engine, "a cat <hypernet:tinyhyper:1>")
    assert np.abs(_pixels(out) - pixels).mean() > 0.5
    assert _pixels(_gen(engine, "a cat <hypernet:tinyhyper:0>")).tolist() == pixels.tolist()
    assert np.array_equal(_pixels(_gen(engine, "a cat")), pixels)
    processors = engine.model.unet.attn_processors
    assert all(type(p).__name__ != "HypernetworkAttnProcessor" for p in processors.values())
    _assert_same_weights(engine, weights)


def test_default_lora_setting_appends_the_tag(engine, baseline):
    pixels, _ = baseline
    with engine.options.override(sd_lora="tiny_lora", extra_networks_default_multiplier=1.0):
        out = _gen(engine, "a cat")
    assert out.prompts[0] == "a cat<lora:tiny_lora:1>"
    assert not np.array_equal(_pixels(out), pixels)


def test_new_file_is_found_without_a_restart(engine, baseline, tmp_path):
    pixels, _ = baseline
    components = tiny_models.tiny_sd1(seed=0)
    lora_dir = engine.paths.lora_dirs[0]
    network_files.save_safetensors(network_files.kohya_lora(components, seed=9), lora_dir / "dropped_in.safetensors")
    out = _gen(engine, "a cat <lora:dropped_in:1>")
    assert out.warnings == []
    assert not np.array_equal(_pixels(out), pixels)


def test_infotext_key_order_matches_a1111(engine):
    """Spec §6.2: hires fields, then Lora hashes, TI hashes, Emphasis."""
    with engine.options.override(emphasis="No norm"):
        out = _gen(engine, "(a tinyemb cat) <lora:tiny_lora:0.5>", enable_hr=True, hr_scale=1.5, hr_second_pass_steps=1,
                   denoising_strength=0.5)
    line = out.infotexts[0].splitlines()[-1]
    keys = [part.split(":")[0] for part in line.split(", ") if ":" in part]
    order = [k for k in keys if k in ("Hires upscale", "Hires steps", "Hires upscaler", "Lora hashes", "TI hashes", "Emphasis")]
    assert order == ["Hires upscale", "Hires steps", "Hires upscaler", "Lora hashes", "TI hashes", "Emphasis"]


def test_adapters_are_listed_before_any_generation(tmp_path):
    from modules.networks.manager import NetworkManager

    lora_dir = tmp_path / "Lora"
    network_files.save_safetensors({"lora_unet_x.lora_down.weight": torch.zeros(1, 2)}, lora_dir / "a.safetensors")
    manager = NetworkManager(lora_dirs=[lora_dir], hypernetwork_dirs=[tmp_path / "hn"], embeddings_dirs=[tmp_path / "emb"],
                             cache_dir=tmp_path / "cache", hash_cache=None, options=None)
    assert [e.name for e in manager.loras.items()] == ["a"]


def test_embedding_added_between_generations_is_used_by_the_next(engine):
    path = engine.paths.embeddings_dirs[0] / "lateemb.safetensors"
    gen = torch.Generator().manual_seed(11)
    network_files.save_safetensors({"emb_params": torch.randn(1, TEXT_WIDTH, generator=gen)}, path)
    try:
        out = _gen(engine, "a lateemb cat")
        assert "lateemb: " in infotext.parse_generation_parameters(out.infotexts[0])["TI hashes"]
    finally:
        path.unlink()
