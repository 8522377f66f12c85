"""Infotext writing/parsing against the A1111 v1.10.1 rules (spec §6) and real A1111 images and strings."""
import json

import pytest
from PIL import Image

from modules.core import infotext as it
from modules.core.image_files import read_info_from_image

DEFAULTS = {
    "Clip skip": "1",
    "Hires resize-1": 0,
    "Hires resize-2": 0,
    "Hires sampler": "Use same sampler",
    "Hires schedule type": "Use same scheduler",
    "Hires checkpoint": "Use same checkpoint",
    "Hires prompt": "",
    "Hires negative prompt": "",
    "Mask mode": "Inpaint masked",
    "Masked content": "original",
    "Inpaint area": "Whole picture",
    "Masked area padding": 32,
    "RNG": "GPU",
    "Schedule type": "Automatic",
    "Schedule max sigma": 0,
    "Schedule min sigma": 0,
    "Schedule rho": 0,
    "VAE Encoder": "Full",
    "VAE Decoder": "Full",
    "FP8 weight": "Disable",
    "Refiner switch by sampling steps": False,
}


def subset(d, **expected):
    return {k: d.get(k, "<missing>") for k in expected}


# ------------------------------------------------------------------------------------------------ quote


@pytest.mark.parametrize("value, expected", [
    ("a, b", '"a, b"'),
    ("x:y", '"x:y"'),
    ("line\nbreak", '"line\\nbreak"'),
    ('quo"te, x', '"quo\\"te, x"'),
    (7.0, 7.0),
    (7, 7),
    ("plain", "plain"),
    ("日本語, テスト", '"日本語, テスト"'),
    (True, True),
])
def test_quote_examples(value, expected):
    assert it.quote(value) == expected


def test_unquote():
    assert it.unquote('"a, b"') == "a, b"
    assert it.unquote('"quo\\"te, x"') == 'quo"te, x'
    assert it.unquote('"broken\\"') == '"broken\\"'
    assert it.unquote("plain") == "plain"
    assert it.unquote("") == ""


# ------------------------------------------------------------------------------------------------ spec §6.4

DOCSTRING_EXAMPLE = """girl with an artist's beret, determined, blue eyes, desert scene, computer monitors, heavy makeup, by Alphonse Mucha and Charlie Bowater, ((eyeshadow)), (coquettish), detailed, intricate
Negative prompt: ugly, fat, obese, chubby, (((deformed))), [blurry], bad anatomy, disfigured, poorly drawn face, mutation, mutated, (extra_limb), (ugly), (poorly drawn hands), messy drawing
Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b"""


def test_example_a_docstring():
    res = it.parse_generation_parameters(DOCSTRING_EXAMPLE)
    core = {
        "Steps": "20", "Sampler": "Euler a", "CFG scale": "7", "Seed": "965400086", "Size-1": "512",
        "Size-2": "512", "Model hash": "45dee52b",
        "Prompt": "girl with an artist's beret, determined, blue eyes, desert scene, computer monitors, heavy makeup, "
                  "by Alphonse Mucha and Charlie Bowater, ((eyeshadow)), (coquettish), detailed, intricate",
        "Negative prompt": "ugly, fat, obese, chubby, (((deformed))), [blurry], bad anatomy, disfigured, poorly "
                           "drawn face, mutation, mutated, (extra_limb), (ugly), (poorly drawn hands), messy drawing",
    }
    assert res == {**core, **DEFAULTS, "Emphasis": "Original"}


def test_example_b_v194_img2img_line():
    line = ("Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 3001968073, Size: 985x1266, "
            "Model hash: b513c6287d, Model: realism_engine, Denoising strength: 0.75, Mask blur: 2, Version: v1.9.4")
    res = it.parse_generation_parameters(line)
    assert subset(res, Steps=1, Sampler=1, **{"Schedule type": 1, "CFG scale": 1, "Seed": 1, "Size-1": 1,
                                             "Size-2": 1, "Model hash": 1, "Model": 1, "Denoising strength": 1,
                                             "Mask blur": 1, "Version": 1, "Prompt": 1, "Negative prompt": 1}) == {
        "Steps": "20", "Sampler": "Euler a", "Schedule type": "Automatic", "CFG scale": "7", "Seed": "3001968073",
        "Size-1": "985", "Size-2": "1266", "Model hash": "b513c6287d", "Model": "realism_engine",
        "Denoising strength": "0.75", "Mask blur": "2", "Version": "v1.9.4", "Prompt": "", "Negative prompt": "",
    }
    assert "Downcast alphas_cumprod" not in res


EXAMPLE_C = """masterpiece, 1girl, <lora:add_detail:0.6>, (blue eyes:1.2)
multi-line prompt [cat:dog:0.5]
Negative prompt: EasyNegative, lowres
second negative line
Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, VAE hash: 735e4c3a44, VAE: vae-ft-mse-840000-ema-pruned.safetensors, Denoising strength: 0.45, Clip skip: 2, Hires upscale: 2, Hires steps: 15, Hires upscaler: Latent, Lora hashes: "add_detail: 7c6bad76eb54", TI hashes: "EasyNegative: c74b4e810b03", Emphasis: No norm, Version: v1.10.1"""


def test_example_c_parse():
    res = it.parse_generation_parameters(EXAMPLE_C)
    expected = {
        "Steps": "28", "Sampler": "DPM++ 2M", "Schedule type": "Karras", "CFG scale": "6.5", "Seed": "1234567890",
        "Size-1": "512", "Size-2": "768", "Model hash": "6ce0161689", "Model": "v1-5-pruned-emaonly",
        "VAE hash": "735e4c3a44", "VAE": "vae-ft-mse-840000-ema-pruned.safetensors", "Denoising strength": "0.45",
        "Clip skip": "2", "Hires upscale": "2", "Hires steps": "15", "Hires upscaler": "Latent",
        "Lora hashes": "add_detail: 7c6bad76eb54", "TI hashes": "EasyNegative: c74b4e810b03", "Emphasis": "No norm",
        "Version": "v1.10.1",
        "Prompt": "masterpiece, 1girl, <lora:add_detail:0.6>, (blue eyes:1.2)\nmulti-line prompt [cat:dog:0.5]",
        "Negative prompt": "EasyNegative, lowres\nsecond negative line",
    }
    assert res == {**DEFAULTS, **expected}


def test_example_c_is_what_create_infotext_writes():
    fields = {
        "Steps": 28, "Sampler": "DPM++ 2M", "Schedule type": "Automatic", "CFG scale": 6.5, "Seed": 1234567890,
        "Size": "512x768", "Model hash": "6ce0161689", "Model": "v1-5-pruned-emaonly", "VAE hash": "735e4c3a44",
        "VAE": "vae-ft-mse-840000-ema-pruned.safetensors", "Denoising strength": None, "Clip skip": 2,
        "Face restoration": None, "Variation seed": None, "Version": "v1.10.1", "User": None,
    }
    extra = {
        "Schedule type": "Karras",  # set by the sampler when it resolves Automatic: keeps its position
        "Denoising strength": 0.45,  # hires fix: keeps its position too
        "Hires upscale": 2, "Hires steps": 15, "Hires upscaler": "Latent",
        "Lora hashes": "add_detail: 7c6bad76eb54", "TI hashes": "EasyNegative: c74b4e810b03",
        "Emphasis": "No norm",
    }
    params = it.build_generation_params(fields, extra)
    prompt = "masterpiece, 1girl, <lora:add_detail:0.6>, (blue eyes:1.2)\nmulti-line prompt [cat:dog:0.5]"
    negative = "EasyNegative, lowres\nsecond negative line"
    assert it.create_infotext(prompt, negative, params) == EXAMPLE_C


def test_example_d_edge_cases():
    res = it.parse_generation_parameters("p\nSteps: 20, Seed: 1")
    assert res["Prompt"] == "p\nSteps: 20, Seed: 1"
    assert "Steps" not in res and "Seed" not in res
    res = it.parse_generation_parameters(
        'a cat\nSteps: 20, Sampler: Euler, Seed: 1, Hires prompt: "a cat, detailed, 4k", Version: v1.10.1')
    assert res["Hires prompt"] == "a cat, detailed, 4k"
    assert res["Prompt"] == "a cat"


# ------------------------------------------------------------------------------------------------ build/create


def test_build_generation_params_order_and_none():
    fields = {"Version": "v1.10.1", "User": "bob", "Seed": 5, "Steps": 20, "Sampler": "Euler a",
              "Schedule type": "Automatic", "Tiling": None, "Custom field": "x"}
    extra = {"Lora hashes": "a: 1", "Seed": 6, "Denoising strength": 0.5, "Dropped": None}
    params = it.build_generation_params(fields, extra)
    assert list(params) == ["Steps", "Sampler", "Schedule type", "Seed", "Denoising strength", "Custom field",
                            "Lora hashes", "Version", "User"]
    assert params["Seed"] == 6
    assert params["Denoising strength"] == 0.5


def test_build_version_from_extra_and_key_order_table():
    params = it.build_generation_params({"Steps": 1}, {"Version": "v9", "Zed": 1})
    assert list(params) == ["Steps", "Zed", "Version"]
    assert it.INFOTEXT_KEY_ORDER[:4] == ("Steps", "Sampler", "Schedule type", "CFG scale")
    assert it.INFOTEXT_KEY_ORDER[-2:] == ("Version", "User")
    assert len(it.INFOTEXT_KEY_ORDER) == 28


def test_create_infotext_layout():
    assert it.create_infotext("p", "", {"Steps": 20}) == "p\nSteps: 20"
    assert it.create_infotext("p", None, {"Steps": 20}) == "p\nSteps: 20"
    assert it.create_infotext("p", "n", {"Steps": 20, "CFG scale": 7.0}) == "p\nNegative prompt: n\nSteps: 20, CFG scale: 7.0"
    assert it.create_infotext("", "", {"Steps": 20}) == "Steps: 20"
    # a value equal to its key is written bare, and A1111's parser reads such a flag back as key: rest
    text = it.create_infotext("p", "", {"Steps": 1, "Seed": 2, "Mask mode: Inpaint not masked":
                                        "Mask mode: Inpaint not masked", "Tiling": "True", "Skipped": None})
    assert text == "p\nSteps: 1, Seed: 2, Mask mode: Inpaint not masked, Tiling: True"
    assert it.parse_generation_parameters(text)["Mask mode"] == "Inpaint not masked"


# ------------------------------------------------------------------------------------------------ round trip

RICH_PROMPT = ('masterpiece, "quoted" word, ratio a:b, 日本語テスト, <lora:add_detail:0.6>, (blue eyes:1.2)\n'
               'second line [from:to:0.5], emoji 🎨, back\\slash\n'
               '\n'
               'after an empty line')
RICH_NEGATIVE = "EasyNegative, lowres, bad-hands-5\nsecond: line, \"q\""


def rich_params():
    fields = {
        "Steps": 30, "Sampler": "DPM++ 2M SDE", "Schedule type": "Exponential", "CFG scale": 7.5,
        "Seed": 4294967295, "Face restoration": "CodeFormer", "Size": "768x1152", "Model hash": "6ce0161689",
        "Model": "v1-5-pruned-emaonly", "VAE hash": "735e4c3a44", "VAE": "vae-ft-mse-840000-ema-pruned.safetensors",
        "Variation seed": 42, "Variation seed strength": 0.3, "Seed resize from": "512x512", "Clip skip": 2,
        "ENSD": 31337, "RNG": "CPU", "Tiling": "True", "Version": "v1.10.1", "User": "ålice",
    }
    extra = {
        "Denoising strength": 0.55,
        "Hires upscale": 2.0, "Hires steps": 10, "Hires upscaler": "R-ESRGAN 4x+ Anime6B",
        "Hires sampler": "Euler a", "Hires schedule type": "Karras",
        "Hires prompt": 'detailed, sharp\nnew line: yes "q"',
        "Hires negative prompt": "blurry, 低品質",
        "Lora hashes": "add_detail: 7c6bad76eb54, lcm-lora: 0123456789ab",
        "TI hashes": "EasyNegative: c74b4e810b03, bad-hands-5: aa7651be154c",
        "Emphasis": "No norm",
        "Schedule rho": 7.5,
        "Eta": 0.67,
        "Discard penultimate sigma": True,
        "Template": "x / y - z",
    }
    return fields, extra


def test_create_parse_round_trip_field_by_field():
    fields, extra = rich_params()
    params = it.build_generation_params(fields, extra)
    text = it.create_infotext(RICH_PROMPT, RICH_NEGATIVE, params)
    res = it.parse_generation_parameters(text)
    assert res["Prompt"] == RICH_PROMPT
    assert res["Negative prompt"] == RICH_NEGATIVE
    for key, value in params.items():
        if key in ("Size", "Seed resize from"):
            w, h = value.split("x")
            assert (res[f"{key}-1"], res[f"{key}-2"]) == (w, h), key
        else:
            assert res[key] == str(value), key
    # nothing else came from the parameter line than what was written (plus A1111's defaults)
    written = {k for k in params if k not in ("Size", "Seed resize from")} | {
        "Size-1", "Size-2", "Seed resize from-1", "Seed resize from-2"}
    extras = set(res) - written - {"Prompt", "Negative prompt"}
    assert extras <= set(DEFAULTS)


def test_round_trip_simple_values_are_strings():
    params = it.build_generation_params({"Steps": 20, "Sampler": "Euler", "CFG scale": 7, "Seed": 1,
                                         "Size": "512x512"})
    res = it.parse_generation_parameters(it.create_infotext("a", "b", params))
    assert (res["Steps"], res["CFG scale"], res["Seed"], res["Size-1"]) == ("20", "7", "1", "512")


# ------------------------------------------------------------------------------------------------ parsing rules


def test_negative_prompt_lines_and_stripping():
    res = it.parse_generation_parameters("  a  \n b\nNegative prompt:   n1  \n n2 \nSteps: 1, Seed: 2, CFG scale: 3")
    assert res["Prompt"] == "a\nb"
    assert res["Negative prompt"] == "n1\nn2"


def test_empty_values_are_skipped_like_a1111():
    res = it.parse_generation_parameters("p\nSteps: 20, Lora hashes: , Sampler: Euler, Seed: 1")
    assert "Lora hashes" not in res
    assert res["Sampler"] == "Euler"


def test_combined_sampler_names_are_split():
    res = it.parse_generation_parameters("p\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1")
    assert (res["Sampler"], res["Schedule type"]) == ("DPM++ 2M", "Karras")
    res = it.parse_generation_parameters("p\nSteps: 20, Sampler: DPM++ 2M SDE Exponential, CFG scale: 7, Seed: 1")
    assert (res["Sampler"], res["Schedule type"]) == ("DPM++ 2M SDE", "Exponential")
    res = it.parse_generation_parameters("p\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1")
    assert (res["Sampler"], res["Schedule type"]) == ("Euler a", "Automatic")
    res = it.parse_generation_parameters("p\nSteps: 20, Sampler: DPM++ 2M SDE Heun, CFG scale: 7, Seed: 1")
    assert (res["Sampler"], res["Schedule type"]) == ("DPM++ 2M SDE Heun", "Automatic")
    # an explicit Schedule type is not overwritten; unknown samplers stay as written
    res = it.parse_generation_parameters(
        "p\nSteps: 20, Sampler: DPM++ 2M Karras, Schedule type: Exponential, CFG scale: 7")
    assert (res["Sampler"], res["Schedule type"]) == ("DPM++ 2M", "Exponential")
    res = it.parse_generation_parameters("p\nSteps: 20, Sampler: My Sampler Karras, CFG scale: 7")
    assert (res["Sampler"], res["Schedule type"]) == ("My Sampler Karras", "Automatic")


def test_emphasis_default_only_when_prompts_use_emphasis():
    line = "\nSteps: 20, Sampler: Euler, Seed: 1"
    assert "Emphasis" not in it.parse_generation_parameters("plain prompt, <lora:x:0.5>" + line)
    assert "Emphasis" not in it.parse_generation_parameters("a (b:1.0) c" + line)
    assert "Emphasis" not in it.parse_generation_parameters(r"a \(escaped\) c" + line)
    assert "Emphasis" not in it.parse_generation_parameters("a BREAK b" + line)
    assert it.parse_generation_parameters("a [b] c" + line)["Emphasis"] == "Original"
    assert it.parse_generation_parameters("p\nNegative prompt: (bad:1.3)" + line)["Emphasis"] == "Original"
    assert it.parse_generation_parameters(
        "(a)" + line.replace("Seed: 1", "Seed: 1, Emphasis: No norm"))["Emphasis"] == "No norm"
    assert it.uses_emphasis("((x))") and not it.uses_emphasis("x", "y")


def test_legacy_hypernet_becomes_prompt_tag():
    res = it.parse_generation_parameters("a cat\nSteps: 20, Seed: 1, Hypernet: anime, Hypernet strength: 0.5")
    assert res["Prompt"] == "a cat<hypernet:anime:0.5>"
    res = it.parse_generation_parameters("a cat\nSteps: 20, Seed: 1, Hypernet: anime")
    assert res["Prompt"] == "a cat<hypernet:anime:1.0>"


def test_first_pass_size_conversion():
    res = it.parse_generation_parameters("p\nSteps: 20, Seed: 1, Size: 1024x1024, First pass size: 0x0")
    assert (res["Size-1"], res["Size-2"], res["Hires resize-1"], res["Hires resize-2"]) == (512, 512, 1024, 1024)
    res = it.parse_generation_parameters("p\nSteps: 20, Seed: 1, Size: 1024x768, First pass size: 640x448")
    assert (res["Size-1"], res["Size-2"], res["Hires resize-1"], res["Hires resize-2"]) == (640, 448, 1024, 768)
    res = it.parse_generation_parameters("p\nSteps: 20, Seed: 1, Size: 1280x720, First pass size: 0x0")
    # scale = sqrt(512*512 / (1280*720)); ceil(scale*w/64)*64
    assert (res["Size-1"], res["Size-2"]) == (704, 384)


def test_fp8_cache_default():
    res = it.parse_generation_parameters("p\nSteps: 20, Seed: 1, FP8 weight: Enable for SDXL")
    assert res["Cache FP16 weight for LoRA"] is False
    assert "Cache FP16 weight for LoRA" not in it.parse_generation_parameters("p\nSteps: 20, Seed: 1, Sampler: x")


def test_skip_fields():
    res = it.parse_generation_parameters(EXAMPLE_C, skip_fields=["Seed", "Size-1", "Size-2", "Clip skip"])
    assert "Seed" not in res and "Size-1" not in res and "Clip skip" not in res
    assert res["Steps"] == "28"


def test_styles_are_extracted():
    styles = [
        {"name": "Quality", "prompt": "masterpiece, best quality", "negative_prompt": "lowres"},
        ("Wrapped", "photo of {prompt}, 35mm", ""),
        ("Unused", "never there", "nope"),
    ]
    text = "photo of a cat, masterpiece, best quality, 35mm\nNegative prompt: ugly, lowres\nSteps: 20, Seed: 1, CFG scale: 7"
    res = it.parse_generation_parameters(text, styles=styles)
    # "Wrapped" is peeled off first, then "Quality" at the end of what is left; listed in application order
    assert res["Styles array"] == ["Quality", "Wrapped"]
    assert (res["Prompt"], res["Negative prompt"]) == ("a cat", "ugly")
    text = "a cat, masterpiece, best quality\nNegative prompt: ugly, lowres\nSteps: 20, Seed: 1, CFG scale: 7"
    res = it.parse_generation_parameters(text, styles={s["name"] if isinstance(s, dict) else s[0]: s
                                                       for s in styles})
    assert res["Styles array"] == ["Quality"]
    assert (res["Prompt"], res["Negative prompt"]) == ("a cat", "ugly")
    res = it.parse_generation_parameters(text)  # no styles given: nothing extracted
    assert "Styles array" not in res and res["Prompt"] == "a cat, masterpiece, best quality"


# ------------------------------------------------------------------------------------------------ versions


@pytest.mark.parametrize("a, b, less", [
    ("v1.9.4-191-g6ca0466e", "v1.10.1", True),
    ("v1.10.1", "v1.9.4-191-g6ca0466e", False),
    ("v1.9.4", "v1.9.4-191-g6ca0466e", True),
    ("v1.7.0-224-gabcdef0", "v1.7.0-225", True),
    ("v1.7.0-225-gabcdef0", "v1.7.0-225", False),
    ("v1.7.0", "v1.7.0-225", True),
    ("v1.6.0-RC-28-ga2a97e57", "1.6.0", True),
    ("1.6.0", "v1.6.0-RC", False),
    ("v1.5.1", "1.6.0", True),
    ("1.6.0", "1.6.0", False),
    ("v1.8.0-139-gabc", "1.8.0-139", False),
    ("neo", "1.6.0", False),
    (None, "1.6.0", False),
    ("f0.0.17v1.8.0rc-latest-276-g29be1da7", "1.6.0", False),
])
def test_version_compare(a, b, less):
    assert it.version_less_than(a, b) is less


def test_parse_version_values():
    v = it.parse_version("v1.9.4-191-g6ca0466e")
    assert v.release[:3] == (1, 9, 4) and v.post == 191 and v.final == 1
    assert it.parse_version("v1.6.0-RC").final == 0
    assert it.parse_version("neo") is None and it.parse_version("") is None


@pytest.mark.parametrize("version, prompt, extra, expected", [
    ("v1.5.1", "a [cat:dog:0.5]", "", {"Old prompt editing timelines": True, "Downcast alphas_cumprod": True}),
    ("v1.5.1", "a cat", ", Sampler: DDIM", {"Pad conds v0": True, "Downcast alphas_cumprod": True}),
    ("v1.6.0", "a [cat:dog:0.5]", ", Sampler: DDIM", {"Downcast alphas_cumprod": True}),
    ("v1.7.0-224-gabc", "a", "", {"Downcast alphas_cumprod": True}),
    ("v1.7.0-225-gabc", "a", "", {}),
    ("v1.7.0", "a", ", Refiner: sdxl_refiner", {"Downcast alphas_cumprod": True,
                                                 "Refiner switch by sampling steps": True}),
    ("v1.9.4", "a", ", Refiner: sdxl_refiner", {"Refiner switch by sampling steps": False}),
    ("v1.10.1", "a [b]", ", Sampler: PLMS", {}),
    ("neo", "a [b]", ", Sampler: PLMS", {}),
])
def test_backcompat(version, prompt, extra, expected):
    res = it.parse_generation_parameters(f"{prompt}\nSteps: 20, Seed: 1{extra}, Version: {version}")
    flags = ("Old prompt editing timelines", "Pad conds v0", "Downcast alphas_cumprod")
    got = {k: res[k] for k in flags if k in res}
    if "Refiner switch by sampling steps" in expected:
        got["Refiner switch by sampling steps"] = res["Refiner switch by sampling steps"]
    assert got == expected


# ------------------------------------------------------------------------------------------------ real A1111 data


def test_real_a1111_image_sdmetadata(real_fixtures):
    with Image.open(real_fixtures / "images/sdmetadata_sd-webui.png") as im:
        geninfo, items = read_info_from_image(im)
    assert items == {}
    res = it.parse_generation_parameters(geninfo)
    assert res["Prompt"] == "general, masterpiece, best quality, amazing quality,\n1girl, solo, hatsune miku, テスト\n"
    assert res["Negative prompt"] == "bad quality, worst quality, worst detail, sketch, censor,\n"
    assert subset(res, Steps=1, Sampler=1, Seed=1, Model=1, Version=1) == {
        "Steps": "20", "Sampler": "DPM++ 2M", "Seed": "3782896554", "Model": "waiIllustriousSDXL_v160",
        "Version": "v1.10.1"}
    assert (res["Schedule type"], res["CFG scale"], res["Size-1"], res["Size-2"], res["Model hash"]) == (
        "Karras", "7", "1024", "1024", "45a21ea00a")
    assert res["Clip skip"] == "1" and "Emphasis" not in res and "Downcast alphas_cumprod" not in res


def test_real_a1111_image_sdparsers(real_fixtures):
    with Image.open(real_fixtures / "images/sdparsers_automatic1111_cropped.png") as im:
        geninfo, _ = read_info_from_image(im)
    res = it.parse_generation_parameters(geninfo)
    assert subset(res, Prompt=1, Steps=1, Sampler=1, Seed=1, Model=1) == {
        "Prompt": "photo of a duck", "Steps": "15", "Sampler": "UniPC", "Seed": "235284042",
        "Model": "realistic_realisticVisionV20_v20"}
    assert (res["Negative prompt"], res["CFG scale"], res["Size-1"], res["Size-2"], res["Model hash"],
            res["Schedule type"]) == ("monochrome", "5", "512", "400", "c0d1994c73", "Automatic")


@pytest.fixture(scope="module")
def samples(real_fixtures):
    data = json.loads((real_fixtures / "infotext/a1111_infotext_samples.json").read_text(encoding="utf-8"))
    return {d["source"].split(" ")[0] + (":" + d["file"] if d["file"] else ""): d for d in data}


def _sample(samples, fragment):
    (match,) = [d for key, d in samples.items() if fragment in key]
    return it.parse_generation_parameters(match["parameters"]), match


def test_sample_images_match_json(real_fixtures, samples):
    for d in samples.values():
        if d["file"] and (real_fixtures / d["file"]).exists():
            with Image.open(real_fixtures / d["file"]) as im:
                assert read_info_from_image(im)[0] == d["parameters"]


def test_sample_hires(samples):
    res, _ = _sample(samples, "sd-webui-hires")
    assert subset(res, **{"Denoising strength": 1, "Hires upscale": 1, "Hires steps": 1, "Hires upscaler": 1,
                          "CFG scale": 1, "Seed": 1}) == {
        "Denoising strength": "0.3", "Hires upscale": "1.5", "Hires steps": "10",
        "Hires upscaler": "R-ESRGAN 4x+ Anime6B", "CFG scale": "5.5", "Seed": "3888671826"}
    assert res["Hires resize-1"] == 0 and res["Hires sampler"] == "Use same sampler"


def test_sample_forge_neo(samples):
    res, _ = _sample(samples, "forge-neo")
    assert res["Prompt"] == "general, masterpiece, best quality, amazing quality,\n1girl, solo, hatsune miku, テスト"
    assert res["Negative prompt"] == "bad quality, worst quality, worst detail, sketch, censor,\n"
    assert (res["Sampler"], res["Schedule type"], res["Clip skip"], res["RNG"], res["Version"]) == (
        "Euler a", "Automatic", "2", "CPU", "neo")
    assert "Downcast alphas_cumprod" not in res  # "neo" is not a version A1111 can compare


def test_sample_late_2022_combined_sampler(samples):
    res, _ = _sample(samples, "daam")
    assert (res["Sampler"], res["Schedule type"]) == ("DPM++ 2M", "Karras")
    assert (res["Model hash"], res["Clip skip"], res["ENSD"], res["CFG scale"], res["Size-1"]) == (
        "2c02b20a", "2", "31337", "10", "768")
    assert res["Prompt"] == "A photo of a cute cat wearing sunglasses relaxing on a beach"
    assert res["Negative prompt"] == ""


def test_sample_jan_2023(samples):
    res, _ = _sample(samples, "shirayu")
    assert (res["Prompt"], res["Sampler"], res["Seed"], res["Size-1"], res["Size-2"], res["Model hash"]) == (
        "girl background", "Euler a", "2932492919", "512", "704", "a64573359a")


def test_sample_v194_ti_hashes_and_extensions(samples):
    res, _ = _sample(samples, "pnginfo-injection")
    assert res["Prompt"] == "" and res["Negative prompt"] == ""
    assert res["TI hashes"] == "Tower13_Gizelle: 9ece223c52f8, EasyNegative: c74b4e810b03"
    assert res["Hardware Info"] == "RTX 3060 Ti 8GB, i7-13700, 32GB RAM"
    assert (res["VAE hash"], res["VAE"], res["Version"], res["Time taken"]) == (
        "df3c506e51", "kl-f8-anime2.ckpt", "v1.9.4-191-g6ca0466e", "22.5 sec.")
    assert (res["ADetailer model"], res["ADetailer confidence 2nd"], res["Hypertile U-Net"]) == (
        "hand_yolov8n.pt", "0.3", "True")
    # "Hashes" is unquoted JSON: A1111's regex cuts it at the first comma, and so does this parser
    assert res["Hashes"] == '{"vae": "df3c506e51"'
    assert "Downcast alphas_cumprod" not in res


def test_sample_v151_controlnet_and_combined_sampler(samples):
    res, _ = _sample(samples, "imgutils")
    assert (res["Sampler"], res["Schedule type"]) == ("DPM++ 2M SDE", "Karras")
    assert res["ControlNet 0"].startswith("preprocessor: openpose, model: control_v11p_sd15_openpose [cab727d4]")
    assert res["ControlNet 0"].endswith("preprocessor params: (512, 64, 64)")
    assert res["TI hashes"] == "Neg1: 339cc9210f70, Negative: 66a7279a88dd"
    assert res["Prompt"].endswith("<lora:BlueArchive10:1,0,0,0,0,0,0,0,1,1,1,1,1,1,1,1,1>,BlueArchive,")
    assert res["Negative prompt"] == "Neg1,Negative,"
    assert (res["Hires upscale"], res["Hires upscaler"], res["Denoising strength"]) == ("2", "Latent", "0.7")
    assert res["Downcast alphas_cumprod"] is True  # v1.5.1 < v1.7.0-225
    assert "Old prompt editing timelines" not in res  # no "[" in the prompt
