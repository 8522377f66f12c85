"""The shipped demo model and adapters (tools/demo_model): loading, a fixed-seed reference picture, measured
adapter effects through the engine, the evaluation's measurements, and smoke runs of the trainers."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modules.models import builtin_model
from modules.models import checkpoint_loader
from modules.models.safe_load import read_safetensors_metadata
from tools.demo_model import evaluate, shapes

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
REFERENCE = REPO / "tests" / "data" / "demo_reference.npy"
REFERENCE_PROMPT = "a red circle on a blue background"
REFERENCE_SEED = 1
TEST_STEPS = 12  # fewer than the evaluation's 20: same model, faster test

LORA = MODELS / "Lora" / "sd-demo-striped.safetensors"
HYPERNET = MODELS / "hypernetworks" / "sd-demo-sepia.pt"
EMBEDDING = MODELS / "embeddings" / "demo-sun.pt"


# --- the evaluation's measurements on ideal pictures --------------------------------------------------

def test_judge_is_right_on_every_ideal_heldout_picture():
    scenes = shapes.heldout_scenes()
    assert len(scenes) > 300
    verdicts = [evaluate.judge(shapes.render(s), s) for s in scenes]
    assert [v.caption for v in verdicts if not (v.shape_right and v.colour_right and v.position_right)] == []


def test_judge_rejects_the_wrong_shape_and_colour():
    scene = shapes.Scene("circle", "red", "large", "left", "blue")
    j = evaluate.judge(shapes.render(shapes.Scene("star", "green", "large", "left", "blue")), scene)
    assert (j.colour_found, j.shape_found, j.colour_right, j.shape_right) == ("green", "star", False, False)
    moved = evaluate.judge(shapes.render(shapes.Scene("circle", "red", "large", "right", "blue")), scene)
    assert moved.colour_right and not moved.shape_right and not moved.position_right  # right shape, wrong place


def test_adapter_metrics_on_ideal_pictures():
    plain = shapes.render(shapes.Scene("circle", "red", "small", "center", "blue"))
    striped = shapes.render(shapes.Scene("circle", "red", "small", "center", "blue", "striped"))
    assert evaluate.stripe_amplitude(plain) < 5 < 40 < evaluate.stripe_amplitude(striped)
    scene = shapes.Scene("circle", "red", "small", "center", "blue")
    assert evaluate.sepia_error(shapes.sepia(plain), scene) < 3 < 100 < evaluate.sepia_error(plain, scene)
    black = shapes.render(shapes.Scene("circle", "red", "small", "center", "black"))
    assert evaluate.sepia_error(black, scene) > 100  # going dark is not going sepia
    assert evaluate.is_sun(shapes.render(shapes.Scene("circle", "yellow", "large", "center", "purple")))
    assert not evaluate.is_sun(shapes.render(shapes.Scene("circle", "red", "large", "center", "purple")))
    assert not evaluate.is_sun(shapes.render(shapes.Scene("star", "yellow", "large", "center", "purple")))


def test_scenes_are_deterministic_and_training_never_sees_heldout():
    a = [shapes.sample_scene(np.random.default_rng(7)) for _ in range(1)]
    b = [shapes.sample_scene(np.random.default_rng(7)) for _ in range(1)]
    assert a == b
    assert np.array_equal(np.asarray(shapes.render(a[0])), np.asarray(shapes.render(b[0])))
    rng = np.random.default_rng(0)
    assert not any(shapes.is_heldout(shapes.sample_scene(rng).content()) for _ in range(2000))
    assert shapes.caption(shapes.Scene("circle", "red", "small", "left", "blue")) == \
        "a small red circle on the left, blue background"
    assert shapes.caption(shapes.Scene("star", "orange", "large", "top", "gray", name_size=False, template=1)) == \
        "an orange star at the top on a gray background"


def test_training_tokens_are_the_apps_conditioning_tokens():
    """The trainer feeds the text encoder exactly the ids the app's conditioning builds for a one-chunk prompt."""
    from modules.engine.conditioning import ClipEncoderChunked
    from tools.demo_model import train_model

    tok = train_model.tokenizer()
    enc = ClipEncoderChunked(tok, torch.nn.Identity())
    captions = ["a small red circle on the left, blue background", "", "an orange star, checkered red and white background"]
    ids = train_model.token_ids(tok, captions)
    for row, caption in zip(ids.tolist(), captions):
        chunks, _ = enc.chunks([[caption, 1.0]])
        assert row == (chunks[0].tokens if chunks else enc.empty_chunk().tokens)


# --- the shipped checkpoint ---------------------------------------------------------------------------

def test_shipped_checkpoint_loads_through_the_single_file_path():
    path = builtin_model.DEMO_PATH
    assert path.is_file(), f"{path} is missing (git lfs? .gitignore exception?)"
    assert path.stat().st_size < 20 * 1024 * 1024
    assert hashlib.sha256(path.read_bytes()).hexdigest() == builtin_model.DEMO_SHA256
    meta = read_safetensors_metadata(path)
    assert meta["modelspec.resolution"] == "64x64"
    assert meta["sd_webui_diffusers.demo_version"] == builtin_model.DEMO_VERSION
    assert meta["modelspec.architecture"] == "stable-diffusion-v1"
    m = checkpoint_loader.load_checkpoint(path)
    assert (m.family, m.prediction_type, m.native_size, m.is_inpainting) == ("sd1", "epsilon", 64, False)
    assert m.unet.config.sample_size == 8 and m.vae_scale_factor == 8
    assert m.text_encoders[0].config.vocab_size == 49408 and m.warnings == [] and m.ignored_keys == []
    assert checkpoint_loader.native_size_of_file(path) == 64


def test_native_size_metadata_parsing():
    f = checkpoint_loader.native_size_from_metadata
    assert f({"modelspec.resolution": "64x64"}) == 64
    assert f({"modelspec.resolution": "1024x768"}) == (1024, 768)
    assert f({"modelspec.resolution": "512"}) == 512
    assert f({"modelspec.resolution": "big"}) is None and f({}) is None and f({"modelspec.resolution": "2x2"}) is None


@pytest.fixture(scope="module")
def demo_engine(tmp_path_factory):
    """An engine on an empty data folder (no checkpoint of its own: it opens on the demo model) with the
    repository's adapter folders."""
    eng = evaluate.build_engine(None, tmp_path_factory.mktemp("demo-engine"), MODELS)
    return eng


def test_engine_opens_on_the_demo_model_at_its_native_size(demo_engine):
    assert [Path(c.filename) for c in demo_engine.available_checkpoints()] == [builtin_model.DEMO_PATH]
    assert Path(demo_engine.checkpoint_info.filename) == builtin_model.DEMO_PATH
    assert demo_engine.native_size() == (64, 64)
    demo_engine.unload()
    assert demo_engine.native_size() == (64, 64)  # from the file header, nothing loaded
    demo_engine.ensure_model()


def _downsample(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB").resize((8, 8), Image.BOX), dtype=np.float32)


def test_fixed_seed_generation_matches_the_reference(demo_engine):
    img = evaluate.generate(demo_engine, [REFERENCE_PROMPT], [REFERENCE_SEED])[0]
    assert img.size == (64, 64)
    small = _downsample(img)
    reference = np.load(REFERENCE)
    assert reference.shape == (8, 8, 3)
    assert np.abs(small - reference).max() <= 12, np.abs(small - reference).max()
    # and it is the picture the prompt asks for
    a = np.asarray(img.convert("RGB"), dtype=np.float32)
    bg = evaluate.background_colour(a)
    assert evaluate.nearest_colour(shapes.hue_of(bg)) == "blue"
    mask = evaluate.segment(img)
    assert evaluate.nearest_colour(evaluate.region_hue(img, mask)) == "red"
    circle = max((evaluate.iou(mask, shapes.shape_mask(s, size, pos)), s) for s in shapes.SHAPES
                 for size in shapes.SIZES for pos in shapes.POSITIONS)
    assert circle[1] == "circle" and circle[0] >= 0.5


def test_vae_round_trip_keeps_colours_and_most_shapes(demo_engine):
    ceiling = evaluate.evaluate_vae_roundtrip(demo_engine, limit=40)
    assert ceiling["captions"] == 40 and ceiling["colour_accuracy"] == 1.0
    assert ceiling["shape_accuracy"] >= 0.75, ceiling  # all 418: 87.6 %
    assert ceiling["shape_accuracy_by_shape"]["circle"] == 1.0


# --- adapters -----------------------------------------------------------------------------------------

_SCENES = [shapes.Scene("circle", "red", "large", "center", "blue"),
           shapes.Scene("star", "yellow", "small", "left", "purple"),
           shapes.Scene("square", "green", "large", "right", "black"),
           shapes.Scene("triangle", "pink", "large", "top", "cyan")]
_SEEDS = [11, 12, 13, 14]


def _measure(engine, prompts: list[str], metric) -> tuple[float, list[Image.Image]]:
    """``metric(image, scene)``'s mean over the four fixed scenes' images."""
    images = evaluate.generate(engine, prompts, _SEEDS, steps=TEST_STEPS)
    return float(np.mean([metric(i, s) for i, s in zip(images, _SCENES)])), images


def _ignoring_scene(metric):
    return lambda img, _scene: metric(img)


def _same(a: list[Image.Image], b: list[Image.Image]) -> bool:
    return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


def test_lora_adds_stripes_in_proportion_and_zero_is_none(demo_engine):
    prompts = [shapes.caption(shapes.with_caption_parts(s, pattern="striped")) for s in _SCENES]
    stripes = _ignoring_scene(evaluate.stripe_amplitude)
    none, none_imgs = _measure(demo_engine, prompts, stripes)
    zero, zero_imgs = _measure(demo_engine, [f"{p} <lora:sd-demo-striped:0>" for p in prompts], stripes)
    half, _ = _measure(demo_engine, [f"{p} <lora:sd-demo-striped:0.5>" for p in prompts], stripes)
    full, _ = _measure(demo_engine, [f"{p} <lora:sd-demo-striped:1>" for p in prompts], stripes)
    assert _same(zero_imgs, none_imgs)
    assert zero == none
    # the stripes appear between 0.5 and 1 (at 0.5 the pictures are still plain: a threshold, not a ramp)
    assert half < full and full > none + 20 and full > half + 20, (none, half, full)


def test_hypernetwork_shifts_the_palette_to_sepia_and_zero_is_none(demo_engine):
    prompts = [shapes.caption(s) for s in _SCENES]
    none, none_imgs = _measure(demo_engine, prompts, evaluate.sepia_error)
    zero, zero_imgs = _measure(demo_engine, [f"{p} <hypernet:sd-demo-sepia:0>" for p in prompts], evaluate.sepia_error)
    half, _ = _measure(demo_engine, [f"{p} <hypernet:sd-demo-sepia:0.5>" for p in prompts], evaluate.sepia_error)
    full, _ = _measure(demo_engine, [f"{p} <hypernet:sd-demo-sepia:1>" for p in prompts], evaluate.sepia_error)
    assert _same(zero_imgs, none_imgs)
    assert none > half > full and full < none * 0.3, (none, half, full)  # measured: 113, 96, 13


def test_embedding_word_draws_the_sun(demo_engine):
    bgs = ["blue", "purple", "black", "cyan"]
    sun = _ignoring_scene(evaluate.is_sun)
    without, _ = _measure(demo_engine, [f"in the center, {bg} background" for bg in bgs], sun)
    with_word, _ = _measure(demo_engine, [f"demo-sun in the center, {bg} background" for bg in bgs], sun)
    assert without <= 0.25 and with_word >= 0.75, (without, with_word)  # measured: 0.0 and 1.0


def test_adapter_files_and_sidecars():
    import json

    from modules.networks.embedding_files import load_embedding_file
    from modules.networks.hypernetwork import Hypernetwork

    demo = builtin_model.DEMO_PATH
    for path, preview in ((demo, demo.with_name("sd-demo-shapes-64.preview.png")),
                          (LORA, LORA.with_suffix(".png")),
                          (HYPERNET, HYPERNET.with_name("sd-demo-sepia.preview.png")),
                          (EMBEDDING, EMBEDDING.with_name("demo-sun.preview.png"))):
        assert path.is_file() and preview.is_file()
        with Image.open(preview) as im:
            assert im.size[0] >= 64
        side = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        assert side["description"]
        if path != demo:
            assert "preferred weight" in side and "activation text" in side
    meta = read_safetensors_metadata(LORA)
    assert meta["ss_network_module"] == "networks.lora" and meta["ss_base_model_version"] == "sd_v1"
    hn = Hypernetwork.load(HYPERNET)
    assert hn.widths() == [32] and hn.layer_structure == [1.0, 2.0, 1.0]
    emb = load_embedding_file(EMBEDDING)
    assert emb.vec.shape == (2, 32)


# --- trainers: a few steps on toy sizes ---------------------------------------------------------------

def test_trainers_smoke(tmp_path):
    from modules.networks.embedding_files import load_embedding_file
    from modules.networks.hypernetwork import Hypernetwork
    from tools.demo_model import train_adapters, train_model

    work, out = tmp_path / "work", tmp_path / "tiny.safetensors"
    assert train_model.main(["all", "--tiny", "--threads", "1", "--work-dir", str(work), "--out", str(out)]) == 0
    m = checkpoint_loader.load_checkpoint(out)
    assert m.native_size == 64 and m.warnings == []
    # resumable: a finished stage is not redone, and the export is byte-identical
    first = out.read_bytes()
    assert train_model.main(["export", "--tiny", "--threads", "1", "--work-dir", str(work), "--out", str(out)]) == 0
    assert out.read_bytes() == first
    # the exported weights are the trained ones (fp16)
    comps = train_model.load_components(train_model.TrainConfig.tiny(), work)
    ref = comps["unet"].state_dict()
    got = m.unet.state_dict()
    assert all(torch.equal(ref[k].half().float(), got[k].float()) for k in ref)

    models = tmp_path / "models"
    assert train_adapters.main(["all", "--tiny", "--threads", "1", "--ckpt", str(out), "--models-dir", str(models),
                                "--no-preview"]) == 0
    assert Hypernetwork.load(models / "hypernetworks" / "sd-demo-sepia.pt").widths() == [16]
    assert load_embedding_file(models / "embeddings" / "demo-sun.pt").vec.shape == (2, 16)
    _check_lora_maps_completely(m, models / "Lora" / "sd-demo-striped.safetensors")


def _check_lora_maps_completely(model, path: Path) -> None:
    """Every module of the LoRA file finds its module in the loaded model through the app's key mapper."""
    from safetensors.torch import load_file

    from modules.networks.lora_keys import KeyMapper

    sd = load_file(str(path))
    mapper = KeyMapper(model.family, model.unet, model.text_encoders)
    converted = mapper.convert(sd)
    modules = {k.split(".", 1)[0] for k in sd}
    assert len(converted.groups) == len(modules) and not converted.unmatched, converted.unmatched[:5]


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    """Killed after a save, a stage picks up from its state file and ends where an uninterrupted run ends."""
    from tools.demo_model import train_model

    cfg = train_model.TrainConfig.tiny()
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for work in (straight, resumed):
        train_model.train_vae(cfg, work, progress=lambda _m: None)
        train_model.encode_pool(cfg, work, progress=lambda _m: None)
    train_model.train_unet(cfg, straight, progress=lambda _m: None)

    class Killed(Exception):
        pass

    def kill_after_first_save(message: str) -> None:
        if message.startswith(f"unet step {cfg.save_every + 1}/"):
            raise Killed(message)

    with pytest.raises(Killed):
        train_model.train_unet(cfg, resumed, progress=kill_after_first_save)
    assert (resumed / "unet_state.pt").is_file() and not (resumed / "unet_final.pt").exists()
    messages: list[str] = []
    train_model.train_unet(cfg, resumed, progress=messages.append)
    assert messages[0] == f"unet: resuming at step {cfg.save_every}"
    a = torch.load(straight / "unet_final.pt")["ema"]
    b = torch.load(resumed / "unet_final.pt")["ema"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[n][k], b[n][k]) for n in a for k in a[n])
