"""Pasting infotext (modules/infotext_paste.py, modules/ui_paste.py): real A1111 images and infotexts → fields.

No model is loaded: the engine only lists files (checkpoints, LoRAs, styles), which is all a paste needs.
"""
from __future__ import annotations

import io
import json
import random
from pathlib import Path

import gradio as gr
import pytest
import torch
from PIL import Image

from modules.models import hashes
from modules.core.image_files import exif_user_comment
from modules.page.infotext_paste import paste_fields
from modules.page.paste import ImageInfoError, paste_updates, problems_text, read_generation_parameters
from tests.network_files import save_safetensors
from tools import demo_extra_networks as demo

WEBUI_PNG = "images/sdmetadata_sd-webui.png"
DUCK_PNG = "images/sdparsers_automatic1111_cropped.png"


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    for sub in ("Lora", "Stable-diffusion"):
        (tmp_path / "models" / sub).mkdir(parents=True)
    return tmp_path


@pytest.fixture()
def engine(data_dir: Path):
    return demo.make_engine(data_dir)


def samples(real_fixtures: Path) -> list[dict]:
    return json.loads((real_fixtures / "infotext" / "a1111_infotext_samples.json").read_text(encoding="utf-8"))


def write_lora(path: Path, metadata: dict[str, str] | None = None, seed: int = 0) -> str:
    """A small kohya-style LoRA; returns its A1111 short hash (addnet hash, 12 hex)."""
    gen = torch.Generator().manual_seed(seed)
    tensors = {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.randn(4, 32, generator=gen),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.randn(32, 4, generator=gen),
        "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": torch.tensor(2.0),
    }
    save_safetensors(tensors, path, metadata)
    return hashes.addnet_hash_safetensors(path)[:12]


# ------------------------------------------------------------------------------------------------ real images


def test_real_a1111_png_to_txt2img(engine, real_fixtures):
    text, items = read_generation_parameters(str(real_fixtures / WEBUI_PNG))
    assert items == {}
    assert text.endswith("Model: waiIllustriousSDXL_v160, Version: v1.10.1")
    result = paste_fields(engine, text, is_img2img=False)
    assert result.has_parameters
    assert result.fields == {
        # A1111's parser strips each line and keeps the blank line before "Negative prompt:" as a trailing \n
        "prompt": "general, masterpiece, best quality, amazing quality,\n1girl, solo, hatsune miku, テスト\n",
        "negative_prompt": "bad quality, worst quality, worst detail, sketch, censor,\n",
        "steps": 20,
        "sampler_name": "DPM++ 2M",
        "scheduler": "Karras",  # shown as the infotext names it (A1111 shows Automatic, its default)
        "cfg_scale": 7.0,
        "seed": 3782896554,
        "width": 1024,
        "height": 1024,
        "clip_skip": 1,
        "enable_hr": False,
        "hr_resize_x": 0,
        "hr_resize_y": 0,
        "hr_sampler_name": None,
        "hr_scheduler": None,
        "hr_prompt": "",
        "hr_negative_prompt": "",
        "subseed_strength": 0.0,
        "seed_resize_from_w": 0,
        "seed_resize_from_h": 0,
    }
    assert result.settings["CLIP_stop_at_last_layers"] == 1
    assert result.settings["randn_source"] == "GPU"
    assert "sd_model_checkpoint" not in result.settings
    assert result.override_settings == {}  # every setting it names has the current value
    assert result.problems == ["Model hash: no local checkpoint with hash 45a21ea00a (waiIllustriousSDXL_v160)"]


def test_real_a1111_png_to_img2img(engine, real_fixtures):
    text, _ = read_generation_parameters(Image.open(real_fixtures / DUCK_PNG))
    assert text == ("photo of a duck\nNegative prompt: monochrome\nSteps: 15, Sampler: UniPC, CFG scale: 5, "
                    "Seed: 235284042, Size: 512x400, Model hash: c0d1994c73, Model: realistic_realisticVisionV20_v20")
    fields = paste_fields(engine, text, is_img2img=True).fields
    assert fields == {
        "prompt": "photo of a duck",
        "negative_prompt": "monochrome",
        "steps": 15,
        "sampler_name": "UniPC",
        "scheduler": "Automatic",
        "cfg_scale": 5.0,
        "seed": 235284042,
        "width": 512,
        "height": 400,
        "clip_skip": 1,
        # A1111's parser defaults for the inpainting controls
        "inpainting_fill": 1,
        "inpaint_full_res": False,
        "inpaint_full_res_padding": 32,
        "inpainting_mask_invert": 0,
        "subseed_strength": 0.0,
        "seed_resize_from_w": 0,
        "seed_resize_from_h": 0,
    }


def test_real_hires_and_old_combined_sampler(engine, real_fixtures):
    by_file = {s["file"]: s["parameters"] for s in samples(real_fixtures)}
    hires = paste_fields(engine, by_file["images/sdmetadata_sd-webui-hires.png"], is_img2img=False)
    assert {k: hires.fields[k] for k in ("enable_hr", "hr_scale", "hr_second_pass_steps", "denoising_strength",
                                         "cfg_scale", "seed")} == {
        "enable_hr": True, "hr_scale": 1.5, "hr_second_pass_steps": 10, "denoising_strength": 0.3,
        "cfg_scale": 5.5, "seed": 3888671826}
    assert "hr_upscaler" not in hires.fields
    assert "Hires upscaler: 'R-ESRGAN 4x+ Anime6B' is not available here" in hires.problems

    old = paste_fields(engine, by_file["images/daam_00006-2623256163.png"], is_img2img=False)
    assert (old.fields["sampler_name"], old.fields["scheduler"]) == ("DPM++ 2M", "Karras")  # "Sampler: DPM++ 2M Karras"
    assert old.fields["clip_skip"] == 2
    assert old.settings["eta_noise_seed_delta"] == 31337
    assert old.override_settings == {"eta_noise_seed_delta": 31337, "CLIP_stop_at_last_layers": 2}

    forge = paste_fields(engine, by_file["images/sdmetadata_forge-neo.png"], is_img2img=True)
    assert forge.override_settings == {"randn_source": "CPU", "CLIP_stop_at_last_layers": 2}
    sde = paste_fields(engine, samples(real_fixtures)[-1]["parameters"], is_img2img=False)
    assert (sde.fields["sampler_name"], sde.fields["scheduler"]) == ("DPM++ 2M SDE", "Karras")
    assert (sde.fields["enable_hr"], sde.fields["hr_upscaler"], sde.fields["hr_scale"]) == (True, "Latent", 2.0)
    assert "Lora 'BlueArchive10': no local Lora file by that name" in sde.problems


def test_jpeg_and_webp_exif_user_comment(engine, real_fixtures, tmp_path):
    text, _ = read_generation_parameters(str(real_fixtures / WEBUI_PNG))
    for fmt in ("JPEG", "WEBP"):
        path = tmp_path / f"copy.{fmt.lower()}"
        Image.new("RGB", (16, 16), "red").save(path, fmt, exif=exif_user_comment(text))
        read, items = read_generation_parameters({"path": str(path), "orig_name": path.name})
        assert read == text
        assert "exif" not in items
        assert paste_fields(engine, read, False).fields["seed"] == 3782896554


# ------------------------------------------------------------------------------------------------ A1111 rules


def test_bare_prompt_pastes_only_the_prompt(engine):
    result = paste_fields(engine, "a photo of a cat, (red scarf:1.2)", is_img2img=False)
    assert not result.has_parameters
    assert result.fields == {"prompt": "a photo of a cat, (red scarf:1.2)"}
    assert result.settings == {} and result.override_settings == {} and result.problems == []
    # fewer than 3 pairs on the last line: still prompt text (A1111's rule)
    assert paste_fields(engine, "p\nSteps: 20, Seed: 1", False).fields == {"prompt": "p\nSteps: 20, Seed: 1"}
    with_negative = paste_fields(engine, "a cat\nNegative prompt: blurry", False)
    assert with_negative.fields == {"prompt": "a cat", "negative_prompt": "blurry"}


def test_size_and_hires_resize_pairs(engine):
    text = ("a\nSteps: 10, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 640x384, Seed resize from: 512x256, "
            "Variation seed: 77, Variation seed strength: 0.25, Denoising strength: 0.5, Hires resize: 1280x768, "
            "Hires steps: 4, Hires upscaler: Latent (nearest-exact), Hires sampler: Euler a, "
            "Hires schedule type: Karras, Hires prompt: \"b, c\"")
    f = paste_fields(engine, text, is_img2img=False).fields
    assert (f["width"], f["height"], f["hr_resize_x"], f["hr_resize_y"]) == (640, 384, 1280, 768)
    seed_extras = (f["seed_resize_from_w"], f["seed_resize_from_h"], f["subseed"], f["subseed_strength"])
    assert seed_extras == (512, 256, 77, 0.25)
    assert (f["enable_hr"], f["hr_upscaler"], f["hr_second_pass_steps"]) == (True, "Latent (nearest-exact)", 4)
    assert (f["hr_sampler_name"], f["hr_scheduler"], f["hr_prompt"]) == ("Euler a", "Karras", "b, c")
    assert "hr_scale" not in f  # no "Hires upscale": the size decides


def test_img2img_fields_and_txt2img_does_not_get_them(engine):
    text = ("x\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Denoising strength: 0.6, "
            "Mask blur: 8, Inpaint area: Only masked, Masked area padding: 48, Masked content: latent noise, "
            "Mask mode: Inpaint not masked, Resize mode: Crop and resize")
    f = paste_fields(engine, text, is_img2img=True).fields
    assert {k: f[k] for k in ("denoising_strength", "mask_blur", "inpaint_full_res", "inpaint_full_res_padding",
                              "inpainting_fill", "inpainting_mask_invert", "resize_mode")} == {
        "denoising_strength": 0.6, "mask_blur": 8, "inpaint_full_res": True, "inpaint_full_res_padding": 48,
        "inpainting_fill": 2, "inpainting_mask_invert": 1, "resize_mode": 1}
    assert "enable_hr" not in f and "hr_prompt" not in f
    t = paste_fields(engine, text, is_img2img=False).fields
    assert "mask_blur" not in t and "inpainting_fill" not in t and t["enable_hr"] is False


def test_problems_for_bad_values(engine):
    text = ("x\nSteps: many, Sampler: Warp drive, Schedule type: Wobbly, CFG scale: 7, Seed: 1, Size: 100000x512, "
            "Emphasis: Loud, RNG: Quantum, Hires upscaler: Nope, Denoising strength: 3, Clip skip: 40")
    result = paste_fields(engine, text, is_img2img=False)
    for name in ("steps", "sampler_name", "scheduler", "width", "hr_upscaler", "denoising_strength", "clip_skip"):
        assert name not in result.fields, name
    assert result.fields["height"] == 512 and result.fields["cfg_scale"] == 7.0  # the rest still pastes
    assert "emphasis" not in result.settings and "randn_source" not in result.settings
    assert "CLIP_stop_at_last_layers" not in result.settings
    assert len([p for p in result.problems if p.startswith("Clip skip")]) == 1
    assert set(result.problems) >= {
        "Steps: cannot read 'many'",
        "Sampler: 'Warp drive' is not a sampler here",
        "Schedule type: 'Wobbly' is not a schedule type here",
        "Size-1: must be between 64 and 4096, got 100000",
        "Hires upscaler: 'Nope' is not available here",
        "Denoising strength: must be between 0 and 1, got 3.0",
        "Clip skip: must be between 1 and 12, got 40",
    }
    assert any(p.startswith("Emphasis: setting 'emphasis': 'Loud' is not one of") for p in result.problems)
    assert any(p.startswith("RNG: setting 'randn_source': 'Quantum'") for p in result.problems)


def test_empty_text_pastes_the_last_generation(engine):
    engine.paths.params_txt.write_text("last one\nSteps: 9, Sampler: Euler, CFG scale: 3, Seed: 4", encoding="utf-8")
    result = paste_fields(engine, "  ", is_img2img=False)
    assert (result.fields["prompt"], result.fields["steps"], result.fields["seed"]) == ("last one", 9, 4)
    engine.paths.params_txt.unlink()
    assert paste_fields(engine, "", False).problems == [
        "Nothing to paste: the text is empty and there is no last generation"]


# ------------------------------------------------------------------------------------------------ styles, callbacks


def test_styles_in_the_prompt_are_extracted_per_setting(engine):
    engine.styles.set_style("Fancy", "{prompt}, masterpiece, best quality", "lowres")
    text = "a cat, masterpiece, best quality\nNegative prompt: lowres\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1"
    f = paste_fields(engine, text, False).fields
    assert (f["prompt"], f["negative_prompt"], f["styles"]) == ("a cat", "", ["Fancy"])
    engine.options.set("infotext_styles", "Discard")
    f = paste_fields(engine, text, False).fields
    assert (f["prompt"], "styles" in f) == ("a cat", False)
    engine.options.set("infotext_styles", "Ignore")
    f = paste_fields(engine, text, False).fields
    assert (f["prompt"], f["negative_prompt"], "styles" in f) == ("a cat, masterpiece, best quality", "lowres", False)
    engine.options.set("infotext_styles", "Apply")
    assert paste_fields(engine, "plain\nSteps: 20, Sampler: Euler, CFG scale: 7", False).fields["styles"] == []


def test_infotext_pasted_callbacks_edit_params_before_mapping(engine):
    seen = []

    class Callbacks:
        def run(self, name, infotext, params):
            seen.append((name, infotext))
            params["Steps"] = "33"
            params["Prompt"] += ", edited"

    text = "p\nSteps: 20, Sampler: Euler, CFG scale: 7"
    result = paste_fields(engine, text, False, callbacks=Callbacks())
    assert seen == [("infotext_pasted", text)]
    assert (result.fields["steps"], result.fields["prompt"]) == (33, "p, edited")


def test_engine_callback_registry_edits_and_failures(engine):
    from modules.scripting.callbacks import CallbackRegistry

    registry = CallbackRegistry()

    def add_tag(infotext, params):
        params["Prompt"] += " <lora:x:1>"

    def broken(infotext, params):
        raise KeyError("Nope")

    registry.add("infotext_pasted", add_tag, name="tagger")
    registry.add("infotext_pasted", broken, name="broken-extension")
    result = paste_fields(engine, "p\nSteps: 20, Sampler: Euler, CFG scale: 7", False, callbacks=registry)
    assert result.fields["prompt"] == "p <lora:x:1>"
    assert "infotext_pasted callback broken-extension failed: KeyError: 'Nope'" in result.problems


def test_skip_pasting_setting(engine):
    engine.options.set("infotext_skip_pasting", ["Seed", "CFG scale"])
    f = paste_fields(engine, "p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5", False).fields
    assert "seed" not in f and "cfg_scale" not in f and f["steps"] == 20


# ------------------------------------------------------------------------------------------------ LoRA by hash


def test_lora_alias_is_remapped_to_the_local_file_with_that_hash(data_dir):
    lora_dir = data_dir / "models" / "Lora"
    shorthash = write_lora(lora_dir / "detail_tweaker_v2.safetensors", seed=1)
    write_lora(lora_dir / "other.safetensors", seed=2)
    engine = demo.make_engine(data_dir)
    text = ("a cat <lora:add_detail:0.6>, <lora:other:1>\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, "
            f'Lora hashes: "add_detail: {shorthash}, other: 000000000000"')
    result = paste_fields(engine, text, False)
    # the hash names a local file: the tag follows it; "other" is a local name, its hash unknown yet: kept
    assert result.fields["prompt"] == "a cat <lora:detail_tweaker_v2:0.6>, <lora:other:1>"
    assert not any("Lora" in p for p in result.problems)
    assert engine.hash_cache.cached(lora_dir / "detail_tweaker_v2.safetensors", "lora/detail_tweaker_v2",
                                    "addnet") is not None  # hashed once, cached for the next paste


def test_lora_remap_uses_alias_setting_metadata_hash_and_new_files(data_dir):
    lora_dir = data_dir / "models" / "Lora"
    engine = demo.make_engine(data_dir)
    # written after the engine listed the folder: the lookup rescans; sshs_model_hash spares the hashing
    write_lora(lora_dir / "sub" / "file_stem.safetensors",
               {"ss_output_name": "nice_alias", "sshs_model_hash": "abcdef0123456789" * 4})
    text = ('<lora:someone_elses_name:0.7> x\nSteps: 20, Sampler: Euler, CFG scale: 7, '
            'Lora hashes: "someone_elses_name: abcdef012345"')
    assert paste_fields(engine, text, False).fields["prompt"] == "<lora:nice_alias:0.7> x"
    engine.options.set("lora_preferred_name", "Filename")
    assert paste_fields(engine, text, False).fields["prompt"] == "<lora:file_stem:0.7> x"
    missing = paste_fields(engine, text.replace("abcdef012345", "999999999999"), False)
    assert missing.fields["prompt"] == "<lora:someone_elses_name:0.7> x"
    assert missing.problems == ["Lora 'someone_elses_name': no local Lora file by that name or with hash 999999999999"]


def test_addnet_fields_become_lora_tags(engine):
    text = ("p\nSteps: 20, Sampler: Euler, CFG scale: 7, AddNet Enabled: True, AddNet Module 1: LoRA, "
            "AddNet Model 1: myStyle(8a4bcdef), AddNet Weight A 1: 0.7, AddNet Weight B 1: 0.7")
    assert paste_fields(engine, text, False).fields["prompt"] == "p\n<lora:myStyle:0.7>"


# ------------------------------------------------------------------------------------------------ checkpoints


def test_vae_from_the_infotext_is_a_setting_when_listed_here(data_dir):
    (data_dir / "models" / "VAE").mkdir(parents=True)
    (data_dir / "models" / "VAE" / "vae-ft-mse-840000-ema-pruned.safetensors").write_bytes(demo.tiny_lora(None))
    engine = demo.make_engine(data_dir)
    base = "p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, "
    result = paste_fields(engine, base + "VAE hash: 735e4c3a44, VAE: vae-ft-mse-840000-ema-pruned.safetensors", False)
    assert result.settings["sd_vae"] == "vae-ft-mse-840000-ema-pruned.safetensors"
    assert result.override_settings == {"sd_vae": "vae-ft-mse-840000-ema-pruned.safetensors"}
    missing = paste_fields(engine, base + "VAE: kl-f8-anime2.ckpt", False)
    assert "sd_vae" not in missing.settings and missing.problems == ["VAE: 'kl-f8-anime2.ckpt' is not a VAE here"]


def test_model_hash_resolves_to_a_local_checkpoint(data_dir):
    ckpt = data_dir / "models" / "Stable-diffusion" / "myModel_v3.safetensors"
    other = data_dir / "models" / "Stable-diffusion" / "other.safetensors"
    # stand-ins for checkpoints (only listed and hashed), past 1 MiB so that their old 8-hex hashes differ
    for seed, path in enumerate((ckpt, other)):
        path.write_bytes(torch.randint(0, 256, (0x110000,), generator=torch.Generator().manual_seed(seed),
                                       dtype=torch.uint8).numpy().tobytes())
    engine = demo.make_engine(data_dir)
    info = engine.checkpoints.get_closest("myModel_v3")
    shorthash = engine.checkpoints.calculate_hash(info)
    base = "p\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512, "

    result = paste_fields(engine, base + f"Model hash: {shorthash}, Model: renamed_by_someone", False)
    assert result.settings["sd_model_checkpoint"] == f"myModel_v3.safetensors [{shorthash}]"
    assert result.problems == []
    # A1111's default disable_weights_auto_swap: the checkpoint is not an override
    assert "sd_model_checkpoint" not in result.override_settings
    engine.options.set("disable_weights_auto_swap", False)
    result = paste_fields(engine, base + f"Model hash: {shorthash}", False)
    assert result.override_settings["sd_model_checkpoint"] == f"myModel_v3.safetensors [{shorthash}]"

    old = hashes.old_model_hash(other)  # late-2022 8-hex hashes still resolve
    by_old_hash = paste_fields(engine, base + f"Model hash: {old}", False)
    assert by_old_hash.settings["sd_model_checkpoint"] == "other.safetensors"

    by_name = paste_fields(engine, base + "Model hash: 0123456789, Model: myModel_v3", False)
    assert by_name.settings["sd_model_checkpoint"] == f"myModel_v3.safetensors [{shorthash}]"
    assert by_name.problems == [f"Model: 'myModel_v3' found by name, but its hash {shorthash} is not the "
                                "infotext's 0123456789"]
    no_hash = paste_fields(engine, base + "Model: myModel_v3", False)
    assert (no_hash.settings["sd_model_checkpoint"], no_hash.problems) == (f"myModel_v3.safetensors [{shorthash}]", [])
    unknown = paste_fields(engine, base + "Model hash: 0123456789, Model: nowhere", False)
    assert "sd_model_checkpoint" not in unknown.settings
    assert unknown.problems == ["Model hash: no local checkpoint with hash 0123456789 (nowhere)"]


# ------------------------------------------------------------------------------------------------ images, UI values


def test_unreadable_images_give_a_readable_error(tmp_path, real_fixtures):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image at all")
    with pytest.raises(ImageInfoError, match=r"junk.png: not an image format that can be read"):
        read_generation_parameters({"path": str(junk)})
    # pixel data cut short: the parameters chunk before it still reads
    data = (real_fixtures / WEBUI_PNG).read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    text, _ = read_generation_parameters(str(cut))
    assert text.startswith("general, masterpiece")
    noise = tmp_path / "noise.png"
    Image.frombytes("L", (64, 64), random.Random(0).randbytes(64 * 64)).save(noise)
    cut_plain = tmp_path / "cut-plain.png"
    cut_plain.write_bytes(noise.read_bytes()[:200])
    with pytest.raises(ImageInfoError, match=r"^the image data is damaged \("):
        read_generation_parameters(str(cut_plain))
    assert read_generation_parameters(None) == ("", {})
    plain = io.BytesIO()
    Image.new("RGB", (4, 4)).save(plain, "PNG")
    plain.seek(0)
    assert read_generation_parameters(Image.open(plain)) == ("", {})


def test_paste_updates_fit_values_to_components(engine):
    text = ("p\nSteps: 20, Sampler: euler a, CFG scale: 7, Seed: 3782896554, Size: 4096x512, "
            "Masked content: fill, Clip skip: 2")
    result = paste_fields(engine, text, is_img2img=True)
    targets = {
        "prompt": gr.Textbox(label="Prompt"),
        "steps": gr.Slider(1, 150, step=1, label="Sampling steps"),
        "sampler_name": gr.Dropdown(choices=["DPM++ 2M", "Euler a"], label="Sampling method"),
        "seed": gr.Number(precision=0, label="Seed"),
        "width": gr.Slider(64, 2048, step=8, label="Width"),
        "height": gr.Slider(64, 2048, step=8, label="Height"),
        "inpainting_fill": gr.Radio(list(("fill", "original", "latent noise", "latent nothing")), type="index"),
        "denoising_strength": gr.Slider(0, 1, label="Denoising strength"),
        "override_settings": gr.State({}),
    }
    updates, problems = paste_updates(result, targets)
    values = dict(zip(targets, updates))
    assert values["prompt"]["value"] == "p"
    assert values["steps"]["value"] == 20 and isinstance(values["steps"]["value"], int)
    assert values["sampler_name"]["value"] == "Euler a"
    assert values["seed"]["value"] == 3782896554
    assert "value" not in values["width"]  # 4096 does not fit the slider: left as it is, reported
    assert values["height"]["value"] == 512
    assert values["inpainting_fill"]["value"] == "fill"
    assert "value" not in values["denoising_strength"]  # not in the infotext: unchanged
    assert values["override_settings"] == {"CLIP_stop_at_last_layers": 2}
    assert problems == ["Width: 4096 is outside 64..2048"]
    # radios holding labels (type="value") take the index as the label in A1111's order; the seed extras switch
    labelled = {"inpainting_fill": gr.Radio(["fill", "original", "latent noise", "latent nothing"]),
                "inpaint_full_res": gr.Radio(["Whole picture", "Only masked"]), "seed_extras": gr.Checkbox()}
    updates, _ = paste_updates(result, labelled)
    assert [u["value"] for u in updates] == ["fill", "Whole picture", False]
    with_variation = paste_fields(engine, text + ", Variation seed: 5, Variation seed strength: 0.3", True)
    assert paste_updates(with_variation, {"seed_extras": gr.Checkbox()})[0] == [gr.update(value=True)]
    assert problems_text(problems, gr.Markdown()) == "Pasted, except:\n- Width: 4096 is outside 64..2048"


def _click_fn(blocks):
    return list(blocks.fns.values())[-1].fn


def test_connect_paste_click_from_image_text_and_empty(engine, real_fixtures, tmp_path):
    from modules.page.paste import connect_paste

    with gr.Blocks() as blocks:
        image = gr.Image(type="filepath")
        prompt = gr.Textbox(label="Prompt")
        steps = gr.Slider(1, 150, step=1, label="Sampling steps")
        status = gr.Markdown()
        target_image = gr.Image()
        with gr.Tabs() as tabs:
            with gr.Tab("txt2img", id="txt2img"):
                pass
        button = gr.Button()
        connect_paste(button, image, {"prompt": prompt, "steps": steps}, engine, False, tabs=tabs, tab_id="txt2img",
                      image_source=image, image_target=target_image, status=status)
    from_image = _click_fn(blocks)
    payload = {"path": str(real_fixtures / DUCK_PNG), "orig_name": "duck.png"}
    p, s, tab, img, st = from_image(payload, payload)
    assert (p["value"], s["value"], tab["selected"], img["value"]) == (
        "photo of a duck", 15, "txt2img", str(real_fixtures / DUCK_PNG))
    assert st == "Pasted, except:\n- Model hash: no local checkpoint with hash c0d1994c73 " \
                 "(realistic_realisticVisionV20_v20)"
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    p, s, _tab, _img, st = from_image({"path": str(plain)}, {"path": str(plain)})
    assert "value" not in p and "value" not in s and st == "Pasted, except:\n- The image has no generation parameters"
    junk = tmp_path / "junk.webp"
    junk.write_bytes(b"RIFF....WEBPjunk")
    *_, st = from_image({"path": str(junk)}, {"path": str(junk)})
    assert st == "Pasted, except:\n- junk.webp: not an image format that can be read (PNG, JPEG and WEBP can)"

    engine.paths.params_txt.write_text("last\nSteps: 9, Sampler: Euler, CFG scale: 3", encoding="utf-8")
    with gr.Blocks() as blocks:
        text = gr.Textbox()
        prompt = gr.Textbox()
        send, paste = gr.Button(), gr.Button()
        connect_paste(send, text, {"prompt": prompt}, engine, False)
        send_fn = _click_fn(blocks)
        connect_paste(paste, text, {"prompt": prompt}, engine, False, paste_last_when_empty=True)
        paste_fn = _click_fn(blocks)
    assert send_fn("") == [gr.update()]  # "Send to" with nothing: nothing changes
    assert paste_fn("") == [gr.update(value="last")]  # the paste button: the last generation
    assert send_fn("a bare prompt") == [gr.update(value="a bare prompt")]
