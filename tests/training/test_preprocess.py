"""Preparing a training folder: sizes per cropping mode, split tiles, flipped copies, captions."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from modules.core.request import RequestError
from modules.training.preprocess import PreprocessParams, preprocess_folder


@pytest.fixture()
def src(tmp_path):
    folder = tmp_path / "src"
    folder.mkdir()
    wide = Image.new("RGB", (300, 100), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 50, 100))  # blue on the left: tells a mirrored copy
    wide.save(folder / "001-a wide thing.png")
    Image.new("RGB", (100, 120), (0, 255, 0)).save(folder / "tall.png")
    (folder / "tall.txt").write_text("green, tall", encoding="utf-8")
    (folder / "broken.png").write_bytes(b"not a picture")
    return folder


def _outputs(folder):
    return sorted(p for p in folder.iterdir() if p.suffix == ".png")


def test_center_crop_flip_and_captions(src, tmp_path):
    dst = tmp_path / "dst"
    report = preprocess_folder(PreprocessParams(str(src), str(dst), 64, 64, mode="Center crop", flip=True))
    assert "2 pictures into 4 files" in report and "broken.png" in report
    outs = _outputs(dst)
    assert [Image.open(p).size for p in outs] == [(64, 64)] * 4
    assert (dst / "00000-0-0-001-a wide thing.txt").read_text() == "a wide thing"
    assert (dst / "00002-0-0-tall.txt").read_text() == "green, tall"
    plain, flipped = (np.asarray(Image.open(dst / f"00000-0-{k}-001-a wide thing.png")) for k in (0, 1))
    assert np.array_equal(plain[:, ::-1], flipped)


def test_split_oversized_and_auto_size(src, tmp_path):
    dst = tmp_path / "split"
    preprocess_folder(PreprocessParams(str(src), str(dst), 64, 64, mode="Split oversized images",
                                       split_threshold=0.5, overlap_ratio=0.2, caption="None"))
    wide = [p for p in _outputs(dst) if "wide" in p.name]
    assert len(wide) == 4 and all(Image.open(p).size == (64, 64) for p in wide)  # 192 px long side, 64 px tiles
    assert not list(dst.glob("*.txt"))
    dst2 = tmp_path / "auto"
    preprocess_folder(PreprocessParams(str(src), str(dst2), 128, 128, mode="Auto-sized crop"))
    sizes = sorted(Image.open(p).size for p in _outputs(dst2))
    assert sizes == [(128, 128), (192, 64)]


def test_bad_input_names_the_field(src, tmp_path):
    for params, field in ((PreprocessParams(str(tmp_path / "none"), str(tmp_path / "d")), "process_src"),
                          (PreprocessParams(str(src), ""), "process_dst"),
                          (PreprocessParams(str(src), str(src)), "process_dst"),
                          (PreprocessParams(str(src), str(tmp_path / "d"), mode="Zoom"), "process_mode")):
        with pytest.raises(RequestError) as e:
            preprocess_folder(params)
        assert e.value.field == field
