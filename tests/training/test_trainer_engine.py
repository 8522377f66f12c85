"""The trainer as an Engine job on a tiny SD1 checkpoint: resume is bit-identical, the model's weights are untouched,
previews and copies land in the log folder, interrupt saves, and the results work at once."""
from __future__ import annotations

import shutil

import pytest
import torch
from PIL import Image

from modules.networks.embedding_files import load_embedding_file
from modules.settings import cmd_args
from modules.training import create
from modules.training.trainer import TrainParams
from tests import tiny_models


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    import webui

    data = tmp_path_factory.mktemp("trainer")
    tiny_models.write_single_file(tiny_models.tiny_sd1(seed=3), data / "models" / "Stable-diffusion" / "t.safetensors", "sd1")
    pics = data / "pics"
    pics.mkdir()
    for i in range(3):
        Image.new("RGB", (64, 64), (200, 60 * i, 30)).save(pics / f"{i}-red thing, tag{i}.png")
    eng = webui.build_engine(cmd_args.parse_args(["--data-dir", str(data)], environ={}))
    eng.ensure_model()
    eng.pics = pics
    return eng


def _params(engine, kind, name, **kw):
    base = dict(kind=kind, name=name, learn_rate="0.01:2, 0.005", batch_size=2, gradient_step=2,
                data_root=str(engine.pics), training_width=64, training_height=64, steps=4, create_image_every=0,
                save_every=0, template_filename="subject_filewords.txt", shuffle_tags=True, tag_drop_out=0.3,
                latent_sampling_method="random")
    base.update(kw)
    return TrainParams(**base)


def _model_state(engine):
    m = engine.model
    return {f"{i}.{k}": v.clone() for i, mod in enumerate([m.unet, m.vae, *m.text_encoders])
            for k, v in mod.state_dict().items()}


def _hn_tensors(path):
    data = torch.load(path, weights_only=True)
    return data["step"], {(w, i, k): v for w in data if isinstance(w, int) for i in (0, 1) for k, v in data[w][i].items()}


@pytest.mark.parametrize("kind", ["hypernetwork", "embedding"])
def test_resume_is_bit_identical(engine, kind):
    name = f"resume-{kind}"
    if kind == "hypernetwork":
        path = create.create_hypernetwork(engine, name, [32, 64], activation_func="relu", use_dropout=True,
                                          layer_structure="1, 2, 2, 1", overwrite_old=True)
    else:
        path = create.create_embedding(engine, name, 2, overwrite_old=True)
    initial = path.read_bytes()
    before = _model_state(engine)

    engine.train(_params(engine, kind, name, steps=4))
    straight = path.read_bytes()
    read = _hn_tensors if kind == "hypernetwork" else (lambda p: (torch.load(p, weights_only=True)["step"],
                                                                 torch.load(p, weights_only=True)["string_to_param"]))
    step_a, weights_a = read(path)

    path.write_bytes(initial)
    path.with_name(path.name + ".optim").unlink()
    engine.train(_params(engine, kind, name, steps=2))
    assert read(path)[0] == 2
    engine.train(_params(engine, kind, name, steps=4))  # resumes at step 2 with the .optim state
    step_b, weights_b = read(path)
    assert step_a == step_b == 4
    if kind == "hypernetwork":
        assert weights_a.keys() == weights_b.keys()
        assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    else:
        assert torch.equal(weights_a["*"], weights_b["*"])
    assert straight != initial
    after = _model_state(engine)
    assert [k for k in before if not torch.equal(before[k], after[k])] == []


def test_previews_copies_csv_and_picture_embedding(engine):
    create.create_embedding(engine, "prev-emb", 1, overwrite_old=True)
    engine.options.set("training_write_csv_every", 1)
    result = engine.train(_params(engine, "embedding", "prev-emb", steps=2, create_image_every=2, save_every=1,
                                  gradient_step=1, preview_from_txt2img=True, preview_prompt="prev-emb thing",
                                  preview_steps=2, preview_width=64, preview_height=64, preview_seed=3))
    assert result.steps_done == 2 and len(result.previews) == 1 and len(result.copies) == 1
    copy = load_embedding_file(result.copies[0])
    assert copy.step == 1 and copy.name == "prev-emb-1"
    preview = result.previews[0]
    assert preview.endswith("images/prev-emb-2.png")
    with Image.open(preview) as im:
        assert "prev-emb thing" in im.info["parameters"]
    from_picture = load_embedding_file(preview)
    assert from_picture.name == "prev-emb" and from_picture.vec.shape == (1, tiny_models.TINY_TEXT_WIDTH)
    log_dir = __import__("pathlib").Path(preview).parents[1]
    assert (log_dir / "textual_inversion_loss.csv").read_text().splitlines()[0] == "step,epoch,epoch_step,loss,learn_rate"
    assert list(log_dir.glob("settings-*.json"))


def test_interrupt_before_the_first_step_saves_the_file(engine):
    path = create.create_hypernetwork(engine, "stopped", [32], overwrite_old=True)
    engine.state.interrupted = True  # as if Interrupt were pressed while the dataset was prepared

    original_begin = engine.state.begin

    def begin_then_interrupt(*a, **kw):
        original_begin(*a, **kw)
        engine.state.interrupted = True

    engine.state.begin = begin_then_interrupt
    try:
        result = engine.train(_params(engine, "hypernetwork", "stopped", steps=50, template_filename="hypernetwork.txt"))
    finally:
        del engine.state.begin
    assert result.interrupted and result.steps_done == 0
    assert torch.load(path, weights_only=True)["step"] == 0
    assert "interrupted at 0 steps" in result.message


def test_sdxl_and_missing_names_are_refused(engine):
    from modules.training.files import CreateError

    with pytest.raises(CreateError) as e:
        engine.train(_params(engine, "hypernetwork", "no-such-net"))
    assert e.value.field == "hypernetwork_name"
    with pytest.raises(CreateError) as e:
        engine.train(_params(engine, "embedding", "x", steps=0))
    assert e.value.field == "steps"
    create.create_hypernetwork(engine, "done-net", [32], overwrite_old=True)
    engine.train(_params(engine, "hypernetwork", "done-net", steps=1, gradient_step=1))
    with pytest.raises(CreateError) as e:
        engine.train(_params(engine, "hypernetwork", "done-net", steps=1))
    assert e.value.field == "steps" and "already at step 1" in e.value.message
    assert engine.state.job == ""
