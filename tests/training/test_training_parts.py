"""modules.training's pure parts: the schedule syntax, templates, captions and prompts, batches, file layouts."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from modules.networks.embedding_files import load_embedding_file
from modules.networks.hypernetwork import Hypernetwork
from modules.training import dataset as ds
from modules.training import files
from modules.training.lr_schedule import ScheduleError, parse_schedule
from modules.training.templates import TemplateError, list_templates, read_template


def test_schedule_pieces_and_values():
    s = parse_schedule("0.005:100, 1e-3:1000, 1e-5", 10000)
    assert s.pieces == ((0.005, 100), (1e-3, 1000), (1e-5, 10000))
    assert [s.value_at(i) for i in (0, 99, 100, 999, 1000, 9999)] == [0.005, 0.005, 1e-3, 1e-3, 1e-5, 1e-5]
    assert parse_schedule("0.01", 50).pieces == ((0.01, 50),)
    assert parse_schedule(0.5, 7).pieces == ((0.5, 7),)
    # A schedule that ends before max steps ends the training there; -1 means "to the end".
    assert parse_schedule("0.1:20", 100).end_step == 20
    assert parse_schedule("0.1:20, 0.2:-1", 100).pieces == ((0.1, 20), (0.2, 100))
    # Cut at max steps; pieces already passed by a resumed file are skipped.
    assert parse_schedule("0.1:20, 0.2:500, 0.3", 100).pieces == ((0.1, 20), (0.2, 100))
    assert parse_schedule("0.1:20, 0.2:50, 0.3", 100, start_step=30).pieces == ((0.2, 50), (0.3, 100))


@pytest.mark.parametrize("text", ["", "abc", "0.1:x", "0.1:10, zz", "-1", "0.1:5"])
def test_schedule_errors(text):
    with pytest.raises(ScheduleError):
        parse_schedule(text, 100, start_step=10)


def test_shipped_templates():
    names = list_templates()
    assert {"hypernetwork.txt", "none.txt", "style.txt", "style_filewords.txt", "subject.txt",
            "subject_filewords.txt"} <= set(names)
    assert read_template("hypernetwork.txt") == ["[filewords]"]
    assert all("[name]" in line for line in read_template("style.txt"))
    assert all("[filewords]" in line and "[name]" in line for line in read_template("subject_filewords"))
    with pytest.raises(TemplateError):
        read_template("no-such-template.txt")


def test_template_from_user_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.txt").write_text("\n  [name] art  \n\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("\n", encoding="utf-8")
    assert read_template("mine.txt", tmp_path) == ["[name] art"]
    with pytest.raises(TemplateError):
        read_template("empty.txt", tmp_path)


def test_caption_from_filename():
    assert ds.caption_from_filename("00012-a red circle") == "a red circle"
    assert ds.caption_from_filename("12-34 5 cat") == "5 cat"
    assert ds.caption_from_filename("a_cat (1)", r"\w+", " ") == "a_cat 1"


def test_make_prompt_tags():
    rng = np.random.default_rng(0)
    assert ds.make_prompt(["[name], [filewords]"], "tok", "a, b, c", shuffle_tags=False, tag_drop_out=0,
                          rng=rng) == "tok, a, b, c"
    out = ds.make_prompt(["[filewords]"], "tok", "a,b,c,d,e,f", shuffle_tags=True, tag_drop_out=0, rng=rng)
    assert sorted(out.split(",")) == list("abcdef")
    dropped = [ds.make_prompt(["[filewords]"], "t", "a,b,c,d,e,f", shuffle_tags=False, tag_drop_out=0.5,
                              rng=np.random.default_rng(i)) for i in range(20)]
    assert any(len(d.split(",")) < 6 for d in dropped)


def _fake_encode(pixels):
    mean = torch.nn.functional.avg_pool2d(pixels, 8)
    return mean, torch.full_like(mean, 0.5)


def _folder(tmp_path, sizes):
    for i, size in enumerate(sizes):
        Image.new("RGBA", size, (i * 30, 10, 10, 255 if i % 2 else 128)).save(tmp_path / f"{i:02d}-pic {i}.png")
    (tmp_path / "00-pic 0.txt").write_text("from the sidecar", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored", encoding="utf-8")


def test_dataset_captions_sizes_and_batches(tmp_path):
    _folder(tmp_path, [(64, 64)] * 5)
    d = ds.TrainingDataset(tmp_path, encode=_fake_encode, width=32, height=48, batch_size=2, seed=3)
    assert len(d) == 5 and d.batches_per_epoch == 2
    assert [it.caption for it in d.items][:2] == ["from the sidecar", "pic 1"]
    assert d.items[0].mean.shape == (3, 6, 4)
    seen = set()
    for index in range(2):
        items, latents, weights = d.batch(index)
        assert latents.shape == (2, 3, 6, 4) and weights is None
        seen |= {it.path.name for it in items}
    assert len(seen) == 4  # one epoch: distinct pictures
    # Batches depend on the index only.
    again = ds.TrainingDataset(tmp_path, encode=_fake_encode, width=32, height=48, batch_size=2, seed=3)
    assert all(torch.equal(d.batch(i)[1], again.batch(i)[1]) for i in range(6))


def test_dataset_sampling_methods_and_alpha_weight(tmp_path):
    _folder(tmp_path, [(64, 64)] * 2)
    det = ds.TrainingDataset(tmp_path, encode=_fake_encode, width=64, height=64, latent_sampling_method="deterministic")
    once = ds.TrainingDataset(tmp_path, encode=_fake_encode, width=64, height=64, latent_sampling_method="once")
    rnd = ds.TrainingDataset(tmp_path, encode=_fake_encode, width=64, height=64, latent_sampling_method="random",
                             use_weight=True)
    first = det.items[0]
    assert torch.equal(first.mean, _fake_encode(torch.zeros(1, 3, 64, 64))[0][0] * 0 + first.mean)
    assert not torch.equal(once.items[0].mean, first.mean)
    assert not torch.equal(rnd.batch(0)[1], rnd.batch(1)[1]) or rnd.batch(0)[0] != rnd.batch(1)[0]
    weights = rnd.batch(0)[2]
    assert weights is not None and torch.allclose(weights.mean(dim=(1, 2, 3)), torch.ones(1))


def test_dataset_varsize_and_errors(tmp_path):
    _folder(tmp_path, [(72, 40), (72, 40), (64, 64)])
    d = ds.TrainingDataset(tmp_path, encode=_fake_encode, width=8, height=8, varsize=True)
    assert sorted(it.size for it in d.items) == [(64, 64), (72, 40), (72, 40)]
    with pytest.raises(ds.DatasetError, match="batch size 3"):
        ds.TrainingDataset(tmp_path, encode=_fake_encode, width=8, height=8, varsize=True, batch_size=3)
    with pytest.raises(ds.DatasetError, match="does not exist"):
        ds.TrainingDataset(tmp_path / "none", encode=_fake_encode, width=8, height=8)


def test_embedding_file_and_picture_round_trip(tmp_path):
    vec = torch.randn(2, 16)
    path = files.save_embedding(tmp_path / "word.pt", "word", vec, 12, "abcdef1234", "model")
    loaded = load_embedding_file(path)
    assert loaded.name == "word" and torch.equal(loaded.vec, vec) and loaded.step == 12
    assert loaded.sd_checkpoint == "abcdef1234" and loaded.sd_checkpoint_name == "model"
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("sd-ti-embedding", files.embedding_png_chunk("pictured", vec, 12, None, None))
    Image.new("RGB", (8, 8)).save(tmp_path / "pic.png", pnginfo=info)
    from_picture = load_embedding_file(tmp_path / "pic.png")
    assert from_picture.name == "pictured" and torch.allclose(from_picture.vec, vec)
    assert len(files.embedding_checksum(vec)) == 4


@pytest.mark.parametrize("init", files.WEIGHT_INITS)
def test_new_hypernetwork_round_trips(tmp_path, init):
    hn = files.new_hypernetwork("h", [16, 8], layer_structure=[1, 1.5, 1], activation_func="leakyrelu",
                                weight_init=init, add_layer_norm=True, use_dropout=True, last_layer_dropout=True)
    assert hn.dropout_structure == [0.0, 0.3, 0.0]
    path = files.save_hypernetwork(tmp_path / "h.pt", hn, "h", 5, None, "m")
    back = Hypernetwork.load(path)
    assert back.widths() == [8, 16] and back.step == 5 and back.weight_initialization == init
    for (k1, v1), (k2, v2) in zip(hn.layers.values(), back.layers.values()):
        for a, b in zip(list(k1.state_dict().values()) + list(v1.state_dict().values()),
                        list(k2.state_dict().values()) + list(v2.state_dict().values())):
            assert torch.equal(a, b)
    x = torch.randn(1, 3, 16)
    assert not torch.equal(back.layers[16][0](x), x)


def test_optimizer_sidecar_is_tied_to_its_weights(tmp_path):
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    files.save_optimizer(tmp_path / "x.pt", opt, "aaaa")
    assert (tmp_path / "x.pt.optim").is_file()
    assert files.load_optimizer(tmp_path / "x.pt", "bbbb") is None
    state = files.load_optimizer(tmp_path / "x.pt", "aaaa")
    fresh = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_create_errors_name_fields():
    with pytest.raises(files.CreateError) as e:
        files.sanitize_name("/// ")
    assert e.value.field == "name"
    assert files.sanitize_name("my/emb: v2!") == "myemb v2"
    assert files.parse_number_list("1, 2 ,1", "layer_structure") == [1.0, 2.0, 1.0]
    with pytest.raises(files.CreateError) as e:
        files.parse_number_list("1, x", "dropout_structure")
    assert e.value.field == "dropout_structure"
    with pytest.raises(files.CreateError) as e:
        files.new_hypernetwork("h", [8], use_dropout=True, dropout_structure=[0, 0.5])
    assert e.value.field == "dropout_structure"
