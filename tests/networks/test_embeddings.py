"""Textual-inversion embeddings (spec §2, §11): real files, layouts, image carriers, the database, the token
lookup with the real CLIP tokenizer, and the vectors reaching a (tiny) CLIP encoder through TextConditioner."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin
from safetensors.torch import load_file, save_file

from modules.models import hashes
from modules.networks import embedding_images, embeddings
from modules.networks.embeddings import (
    Embedding,
    EmbeddingDatabase,
    EmbeddingLoadError,
    embedding_from_data,
    load_embedding_file,
)

BOS, EOS = 49406, 49407
EASY_SHA256 = "c74b4e810b030f6b75fde959e2db678c268d07115b85356d3c0138ba5eb42340"
BAD_PROMPT_SHA256 = "6f35e7dd816ae04bb3f774a9a17ebfbc50c0e3a53f69a9a40bed05936d3a3812"


@pytest.fixture(scope="module")
def emb_dir(real_fixtures) -> Path:
    return real_fixtures / "embeddings"


@pytest.fixture(scope="module")
def easy(emb_dir) -> Path:
    return emb_dir / "sd15" / "EasyNegative.safetensors"


@pytest.fixture(scope="module")
def bad_prompt(emb_dir) -> Path:
    return emb_dir / "sd15" / "bad_prompt_version2.pt"


@pytest.fixture(scope="module")
def birb(emb_dir) -> Path:
    return emb_dir / "diffusers_format" / "fastai_birb-style_learned_embeds.bin"


@pytest.fixture(scope="module")
def rick_png(emb_dir) -> Path:
    return emb_dir / "png_embedded" / "a1111_test_embedding.png"


@pytest.fixture(scope="module")
def tokenizer():
    from modules.models.checkpoint_loader import load_tokenizer

    return load_tokenizer("sd1")


def ids_of(tokenizer, text: str) -> list[int]:
    return tokenizer([text], add_special_tokens=False, truncation=False, verbose=False)["input_ids"][0]


def sha256_fn(path, title):
    return hashes.sha256_file(path)


def write_pt(path: Path, vec: torch.Tensor, **extra) -> Path:
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vec}, "name": "ignored", **extra}, path)
    return path


# --- real files ---------------------------------------------------------------------------------------------


def test_every_real_file_loads_with_its_trigger_vectors_and_width(easy, bad_prompt, birb, rick_png):
    e = load_embedding_file(easy)
    assert (e.name, e.vectors, e.shape, e.filename, e.source) == ("EasyNegative", 8, 768, str(easy), "file")
    assert e.vec.dtype == torch.float32 and e.vec.device.type == "cpu" and tuple(e.vec.shape) == (8, 768)
    assert torch.equal(e.vec, load_file(str(easy))["emb_params"])
    assert e.step is None and e.sd_checkpoint is None

    b = load_embedding_file(bad_prompt)  # A1111 .pt, CUDA-saved tensors, nn-free dict: weights_only load
    assert (b.name, b.vectors, b.shape) == ("bad_prompt_version2", 8, 768)
    assert (b.step, b.sd_checkpoint, b.sd_checkpoint_name) == (12000, "74906b9a", "Novel50WD50")
    assert not isinstance(b.vec, torch.nn.Parameter) and not b.vec.requires_grad

    d = load_embedding_file(birb)  # diffusers learned_embeds: 1-D -> one vector; the "<birb-style>" key is ignored
    assert (d.name, d.vectors, d.shape) == ("fastai_birb-style_learned_embeds", 1, 768)

    r = load_embedding_file(rick_png)  # image embeddings take their trigger from the data ("rick"), not the stem
    assert (r.name, r.vectors, r.shape, r.step) == ("rick", 8, 768, 60)
    assert r.sd_checkpoint is None


def test_png_text_chunk_matches_its_own_json(rick_png):
    with Image.open(rick_png) as image:
        data = json.loads(base64.b64decode(image.info["sd-ti-embedding"]))
    expected = torch.tensor(data["string_to_param"]["*"]["TORCHTENSOR"], dtype=torch.float32)
    assert torch.equal(load_embedding_file(rick_png).vec, expected)


def test_real_png_pixel_data_alone_decodes_to_the_same_embedding(rick_png, tmp_path):
    """The real A1111 training image also carries the embedding in its pixels: drop the text chunk and the
    pixel decoder must find the same data."""
    with Image.open(rick_png) as image:
        pixels_only = Image.fromarray(np.asarray(image.convert("RGB")))
    assert "sd-ti-embedding" not in pixels_only.info
    stripped = tmp_path / "stripped.png"
    pixels_only.save(stripped)
    from_pixels, from_chunk = load_embedding_file(stripped), load_embedding_file(rick_png)
    assert from_pixels.name == "rick" and from_pixels.step == 60
    assert torch.equal(from_pixels.vec, from_chunk.vec)


def test_hashes_of_real_files(easy, bad_prompt, tmp_path):
    titles = []

    def recording_sha256(path, title):
        titles.append(title)
        return hashes.sha256_file(path)

    db = EmbeddingDatabase(hash_fn=recording_sha256)
    e, b = load_embedding_file(easy), load_embedding_file(bad_prompt)
    assert db.shorthash(e) == "c74b4e810b03" == EASY_SHA256[:12]
    assert db.shorthash(e) == "c74b4e810b03" and titles == ["textual_inversion/EasyNegative"]  # computed once
    assert db.infotext_hashes([e, b, e]) == f"EasyNegative: c74b4e810b03, bad_prompt_version2: {BAD_PROMPT_SHA256[:12]}"
    assert db.infotext_hashes([b, e]) == f"bad_prompt_version2: {BAD_PROMPT_SHA256[:12]}, EasyNegative: c74b4e810b03"
    assert db.infotext_hashes([]) is None
    assert EmbeddingDatabase().shorthash(e) is None  # no hash_fn

    # the engine's HashCache works as hash_fn
    cache = hashes.HashCache(tmp_path / "cache.json")
    assert EmbeddingDatabase(hash_fn=cache.get_sha256).shorthash(e) == "c74b4e810b03"
    assert cache.cached(easy, "textual_inversion/EasyNegative") == EASY_SHA256


def test_infotext_names_lose_colons_and_commas(tmp_path):
    path = write_pt(tmp_path / "we:ird,name.pt", torch.ones(1, 8))
    emb = load_embedding_file(path)
    assert emb.name == "we:ird,name"
    bundled = Embedding("bundled", torch.ones(1, 8), source="lora:x")
    db = EmbeddingDatabase(hash_fn=sha256_fn)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    assert db.shorthash(bundled) is None
    assert db.infotext_hashes([bundled, emb]) == f"weirdname: {digest}"
    assert db.infotext_hashes([bundled]) is None


# --- layouts ------------------------------------------------------------------------------------------------


def test_layouts_of_embedding_from_data():
    t = torch.randn(3, 16)
    a = embedding_from_data({"string_to_param": {"*": torch.nn.Parameter(t.clone())}, "step": 5}, "a", None)
    assert torch.equal(a.vec, t) and a.step == 5 and type(a.vec) is torch.Tensor and not a.vec.requires_grad
    assert (a.vectors, a.shape, a.filename) == (3, 16, None)

    sdxl = embedding_from_data({"clip_l": torch.randn(2, 768), "clip_g": torch.randn(2, 1280)}, "x", None)
    assert isinstance(sdxl.vec, dict) and set(sdxl.vec) == {"clip_l", "clip_g"}
    assert (sdxl.vectors, sdxl.shape) == (2, 2048)

    e = embedding_from_data({"emb_params": t.half()}, "e", "f.safetensors")
    assert e.vec.dtype == torch.float32 and torch.allclose(e.vec, t.half().float())

    one = embedding_from_data({"<tok>": torch.randn(16)}, "one", None)
    assert tuple(one.vec.shape) == (1, 16)

    two_d = embedding_from_data({"<tok>": torch.randn(4, 16)}, "two", None)  # diffusers 2-D
    assert (two_d.vectors, two_d.shape) == (4, 16)


@pytest.mark.parametrize("data, reason", [
    ({"string_to_param": {"*": torch.ones(1, 4), "+": torch.ones(1, 4)}}, "multiple terms"),
    ({"a": torch.ones(1, 4), "b": torch.ones(1, 4)}, "neither a textual inversion embedding nor a diffusers concept"),
    ({"clip_l": torch.ones(2, 768), "clip_g": torch.ones(3, 1280)}, "different numbers of vectors"),
    ({"emb_params": torch.ones(1, 2, 3)}, "shape [1, 2, 3]"),
    ({"emb_params": torch.ones(2, 3, dtype=torch.long)}, "dtype"),
    ({"string_to_param": {"*": "nope"}}, "not a tensor"),
    ({}, "neither"),
])
def test_bad_layouts_are_refused_with_a_reason(data, reason):
    with pytest.raises(EmbeddingLoadError, match=re.escape(reason)) as info:
        embedding_from_data(data, "thing", "/x/thing.pt")
    assert info.value.path == "/x/thing.pt" and "/x/thing.pt" in str(info.value)


def test_file_formats(tmp_path):
    t = torch.randn(2, 16)
    params = torch.nn.ParameterDict({"*": torch.nn.Parameter(t.clone())})  # old A1111 files
    torch.save({"string_to_param": params, "name": "inside"}, tmp_path / "paramdict.pt")
    p = load_embedding_file(tmp_path / "paramdict.pt")
    assert p.name == "paramdict" and torch.equal(p.vec, t)

    torch.save({"<concept>": t.half()}, tmp_path / "learned.bin")  # diffusers 2-D, half
    b = load_embedding_file(tmp_path / "learned.bin")
    assert (b.name, b.vectors, b.vec.dtype) == ("learned", 2, torch.float32)

    save_file({"clip_l": torch.randn(3, 768), "clip_g": torch.randn(3, 1280)}, tmp_path / "xl.safetensors")
    x = load_embedding_file(tmp_path / "xl.safetensors")
    assert (x.name, x.vectors, x.shape) == ("xl", 3, 2048)
    assert tuple(x.vec["clip_l"].shape) == (3, 768) and tuple(x.vec["clip_g"].shape) == (3, 1280)


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_broken_and_unsafe_files_raise_naming_the_file(tmp_path, capsys):
    cases = {}
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 not really a zip")
    cases["corrupt.pt"] = "corrupt"
    torch.save({"string_to_param": {"*": torch.ones(1, 4)}, "x": _Payload()}, tmp_path / "evil.pt")
    cases["evil.pt"] = "refused"
    (tmp_path / "trunc.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    cases["trunc.safetensors"] = "safetensors"
    save_file({"a": torch.ones(1, 4), "b": torch.ones(1, 4)}, tmp_path / "two.safetensors")
    cases["two.safetensors"] = "neither"
    (tmp_path / "empty.pt").write_bytes(b"")
    cases["empty.pt"] = "empty"
    (tmp_path / "notes.txt").write_text("hi")
    cases["notes.txt"] = "unrecognised file type"
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    cases["bad.png"] = "cannot read the image"
    info = PngImagePlugin.PngInfo()
    info.add_text("sd-ti-embedding", base64.b64encode(b"{not json").decode())
    Image.new("RGB", (8, 8), (200, 100, 50)).save(tmp_path / "badchunk.png", pnginfo=info)
    cases["badchunk.png"] = "not valid JSON"
    cases["missing.pt"] = "file not found"
    for name, reason in cases.items():
        with pytest.raises(EmbeddingLoadError, match=reason) as err:
            load_embedding_file(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    assert "this must never run" not in capsys.readouterr().out


def test_pictures_without_data_are_none(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    assert load_embedding_file(tmp_path / "photo.png") is None
    # black separator-like columns, but no zlib data between them
    picture = rng.integers(16, 256, (20, 30, 3), dtype=np.uint8)
    picture[:, 5] = 0
    picture[:, 20] = 0
    Image.fromarray(picture).save(tmp_path / "lines.webp", lossless=True)
    assert load_embedding_file(tmp_path / "lines.webp") is None
    # previews next to embeddings are never read as embeddings
    Image.fromarray(picture).save(tmp_path / "EasyNegative.preview.png")
    assert load_embedding_file(tmp_path / "EasyNegative.preview.png") is None


# --- pixel-data carrier: spec-derived test encoder -------------------------------------------------------------


def _plain_lcg_nibbles(count: int) -> np.ndarray:
    """The spec's XOR stream, the slow obvious way: LCG m=2**32, a=1664525, c=1013904223, seed 0."""
    out, x = np.empty(count, dtype=np.uint8), 0
    for i in range(count):
        x = (1664525 * x + 1013904223) % 2 ** 32
        out[i] = (x % 255) & 0x0F
    return out


def _tensor_json(data: dict) -> bytes:
    def default(obj):
        if isinstance(obj, torch.Tensor):
            return {"TORCHTENSOR": obj.tolist()}
        raise TypeError(type(obj))
    return json.dumps(data, default=default).encode()


def encode_pixel_embedding(picture: np.ndarray, data: dict, rng: np.random.Generator) -> np.ndarray:
    """SPEC-DERIVED TEST ENCODER (written here from spec §2.7; no real image without a text chunk exists):
    zlib(JSON, level 9) -> low and high nibbles -> RGB blocks as tall as the picture (padded at the end)
    -> a dotted pattern in the high nibble of each block -> XOR with the LCG nibble stream -> low block
    left of the picture, high block right, each behind a 1-px black column."""
    packed = np.frombuffer(zlib.compress(_tensor_json(data), level=9), dtype=np.uint8)
    height = picture.shape[0]
    width = -(-packed.size // (height * 3))
    padded = np.concatenate([packed, rng.integers(0, 256, height * width * 3 - packed.size, dtype=np.uint8)])
    stream = _plain_lcg_nibbles(padded.size).reshape(height, width, 3)
    ys, xs = np.mgrid[0:height, 0:width]
    dots = (((ys % 8) < 6) & ((xs % 8) < 6)).astype(np.uint8)[..., None] * rng.integers(1, 16, (height, width, 3),
                                                                                       dtype=np.uint8)
    blocks = []
    for nibbles in (padded & 0x0F, padded >> 4):
        blocks.append((nibbles.reshape(height, width, 3) | (dots << 4)) ^ stream)
    black = np.zeros((height, 1, 3), dtype=np.uint8)
    return np.concatenate([blocks[0], black, picture, black, blocks[1]], axis=1)


def test_lcg_stream_matches_the_plain_definition_beyond_one_jump_block():
    assert np.array_equal(embedding_images.lcg_nibbles(10_000), _plain_lcg_nibbles(10_000))
    assert embedding_images.lcg_nibbles(0).size == 0


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_pixel_data_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(1)
    vec = torch.randn(3, 24)
    data = {"string_to_token": {"*": 265}, "string_to_param": {"*": vec}, "name": "pixelated", "step": 7,
            "sd_checkpoint": "abcd1234", "sd_checkpoint_name": "tiny"}
    picture = rng.integers(17, 256, (40, 30, 3), dtype=np.uint8)  # no all-black column inside the picture
    canvas = encode_pixel_embedding(picture, data, rng)
    framed = np.zeros((canvas.shape[0] + 6, canvas.shape[1] + 8, 3), dtype=np.uint8)  # outer black border
    framed[2:-4, 5:-3] = canvas
    path = tmp_path / f"carrier{suffix}"
    Image.fromarray(framed).save(path, **({"lossless": True} if suffix == ".webp" else {}))
    emb = load_embedding_file(path)
    assert (emb.name, emb.vectors, emb.shape, emb.step, emb.sd_checkpoint, emb.sd_checkpoint_name) == (
        "pixelated", 3, 24, 7, "abcd1234", "tiny")
    assert torch.equal(emb.vec, vec)

    nameless = dict(data, name=None)
    Image.fromarray(encode_pixel_embedding(picture, nameless, rng)).save(tmp_path / "stem_name.png")
    assert load_embedding_file(tmp_path / "stem_name.png").name == "stem_name"


# --- database -----------------------------------------------------------------------------------------------


def test_load_registers_skips_and_reports(tmp_path, easy, bad_prompt, birb, rick_png, tokenizer):
    for src in (easy, bad_prompt, birb, rick_png):
        shutil.copy(src, tmp_path / src.name)
    save_file({"clip_l": torch.randn(1, 768), "clip_g": torch.randn(1, 1280)}, tmp_path / "xl_style.safetensors")
    save_file({"emb_params": torch.randn(2, 1024)}, tmp_path / "sd2_thing.safetensors")
    (tmp_path / "broken.pt").write_bytes(b"PK\x03\x04 cut short")
    (tmp_path / "zero.safetensors").write_bytes(b"")
    (tmp_path / "readme.txt").write_text("not an embedding")
    Image.new("RGB", (8, 8), (9, 9, 9)).save(tmp_path / "EasyNegative.preview.png")
    Image.new("RGB", (8, 8), (9, 9, 9)).save(tmp_path / "just_a_picture.png")

    db = EmbeddingDatabase()
    assert db.load(embeddings.file_paths(tmp_path), tokenizer=tokenizer, expected_width=768)
    assert list(db.word_embeddings) == ["bad_prompt_version2", "EasyNegative", "fastai_birb-style_learned_embeds",
                                        "rick"]  # sorted by lower-cased name
    assert set(db.skipped) == {"xl_style", "sd2_thing"} and db.skipped["xl_style"].shape == 2048
    assert list(db.errors) == [str(tmp_path / "broken.pt")] and "corrupt" in db.errors[str(tmp_path / "broken.pt")]
    assert db.find_embedding_at_position(ids_of(tokenizer, "xl_style"), 0) == (None, 0)
    assert set(db.all_embeddings()) == set(db.word_embeddings) | set(db.skipped)

    # an SDXL model: only the SDXL embedding fits
    assert db.load(embeddings.file_paths(tmp_path), tokenizer=tokenizer, expected_width=2048)
    assert list(db.word_embeddings) == ["xl_style"] and "EasyNegative" in db.skipped


def test_load_reloads_only_on_change(tmp_path, tokenizer, monkeypatch):
    write_pt(tmp_path / "one.pt", torch.ones(1, 8))
    write_pt(tmp_path / "two.pt", torch.ones(2, 8))
    calls = []
    real_load = embeddings.load_embedding_file
    monkeypatch.setattr(embeddings, "load_embedding_file", lambda path, **kw: calls.append(path) or real_load(path, **kw))
    files = [tmp_path / "one.pt", tmp_path / "two.pt"]
    db = EmbeddingDatabase()
    assert db.version == 0
    assert db.load(files, tokenizer=tokenizer, expected_width=8) is True
    assert len(calls) == 2 and db.version == 1

    assert db.load(files, tokenizer=tokenizer, expected_width=8) is False
    assert db.load([str(f) for f in files], tokenizer=tokenizer, expected_width=8) is False
    assert len(calls) == 2 and db.version == 1  # nothing read, nothing changed

    st = os.stat(files[0])
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert db.load(files, tokenizer=tokenizer, expected_width=8) and db.version == 2
    assert db.load(files, tokenizer=tokenizer, expected_width=16) and db.version == 3
    assert set(db.skipped) == {"one", "two"} and not db.word_embeddings
    from modules.models.checkpoint_loader import load_tokenizer
    other_tokenizer = load_tokenizer("sd1")  # another model's tokenizer object
    assert db.load(files, tokenizer=other_tokenizer, expected_width=16) and db.version == 4
    assert db.load(files, tokenizer=other_tokenizer, expected_width=16, force=True) and db.version == 5
    assert db.load(files[:1], tokenizer=other_tokenizer, expected_width=8) and db.version == 6
    assert list(db.word_embeddings) == ["one"]
    assert len(calls) == 2 + 2 + 2 + 2 + 2 + 1


def test_same_trigger_in_two_folders_later_wins(tmp_path, tokenizer):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_pt(tmp_path / "a" / "style.pt", torch.zeros(1, 8))
    second = write_pt(tmp_path / "b" / "style.pt", torch.ones(2, 8))
    db = EmbeddingDatabase()
    db.load([first, second], tokenizer=tokenizer, expected_width=8)
    assert db.word_embeddings["style"].filename == str(second) and db.word_embeddings["style"].vectors == 2
    assert db.find_embedding_at_position(ids_of(tokenizer, "style"), 0)[0].filename == str(second)
    db.load([second, first], tokenizer=tokenizer, expected_width=8)
    assert db.word_embeddings["style"].filename == str(first)


def test_token_lookup_with_the_real_clip_tokenizer(emb_dir, tmp_path, tokenizer):
    write_pt(tmp_path / "bad_prompt.pt", torch.ones(2, 768))  # a prefix of bad_prompt_version2's tokens
    write_pt(tmp_path / "EasyNegative2.pt", torch.ones(3, 768))
    db = EmbeddingDatabase()
    db.load([emb_dir / "sd15" / "EasyNegative.safetensors", emb_dir / "sd15" / "bad_prompt_version2.pt",
             tmp_path / "bad_prompt.pt", tmp_path / "EasyNegative2.pt"], tokenizer=tokenizer, expected_width=768)
    words = db.word_embeddings

    tokens = ids_of(tokenizer, "a bad_prompt_version2 cat")
    assert len(tokens) == 8  # a, bad, _, prompt, _, version, 2, cat
    assert db.find_embedding_at_position(tokens, 1) == (words["bad_prompt_version2"], 6)  # longest first
    assert db.find_embedding_at_position(tokens, 0) == (None, 0)
    assert db.find_embedding_at_position(tokens, 2) == (None, 0)
    assert db.find_embedding_at_position(ids_of(tokenizer, "bad_prompt cat"), 0) == (words["bad_prompt"], 3)
    assert db.find_embedding_at_position(ids_of(tokenizer, "bad_prompt_version3"), 0) == (words["bad_prompt"], 3)

    assert db.find_embedding_at_position(ids_of(tokenizer, "EasyNegative"), 0) == (words["EasyNegative"], 2)
    assert db.find_embedding_at_position(ids_of(tokenizer, "easynegative, x"), 0) == (words["EasyNegative"], 2)
    assert db.find_embedding_at_position(ids_of(tokenizer, "EasyNegative2"), 0) == (words["EasyNegative2"], 3)
    # inside another word the BPE tokens differ: no match anywhere
    other = ids_of(tokenizer, "myEasyNegative")
    assert all(db.find_embedding_at_position(other, i) == (None, 0) for i in range(len(other)))
    # "xEasyNegative" tokenizes to x + easy + negative: not at the word's start, but the reference matches on
    # token ids, so the trigger's own ids after "x" do match (spec §2.3)
    x_tokens = ids_of(tokenizer, "xEasyNegative")
    assert db.find_embedding_at_position(x_tokens, 0) == (None, 0)
    assert db.find_embedding_at_position(x_tokens, 1) == (words["EasyNegative"], 2)
    assert db.find_embedding_at_position([], 0) == (None, 0)


def test_bundled_embeddings(tmp_path, tokenizer):
    write_pt(tmp_path / "filestyle.pt", torch.zeros(1, 8))
    db = EmbeddingDatabase(hash_fn=sha256_fn)
    db.load([tmp_path / "filestyle.pt"], tokenizer=tokenizer, expected_width=8)
    v = db.version
    lora_emb = embedding_from_data({"emb_params": torch.ones(2, 8)}, "lorastyle", None)
    lora_emb.source = "lora:mylora"
    clash = Embedding("filestyle", torch.full((1, 8), 5.0), source="lora:mylora")
    wide = Embedding("widestyle", torch.ones(1, 16), source="lora:mylora")
    bundle = {"lorastyle": lora_emb, "filestyle": clash, "widestyle": wide}

    db.set_bundled(bundle)
    assert db.version == v + 1
    assert db.word_embeddings["lorastyle"] is lora_emb
    assert db.word_embeddings["filestyle"].source == "file"  # the file embedding keeps its trigger
    assert db.skipped["widestyle"] is wide
    assert db.find_embedding_at_position(ids_of(tokenizer, "lorastyle"), 0) == (lora_emb, len(ids_of(tokenizer, "lorastyle")))
    assert db.shorthash(lora_emb) is None

    db.set_bundled(dict(bundle))  # the same set: nothing to do
    assert db.version == v + 1
    rebuilt = {k: Embedding(e.name, e.vec.clone(), source=e.source) for k, e in bundle.items()}
    db.set_bundled(rebuilt)  # equal content in new objects (the manager rebuilds them per activation)
    assert db.version == v + 1 and db.word_embeddings["lorastyle"] is lora_emb
    db.load([tmp_path / "filestyle.pt"], tokenizer=tokenizer, expected_width=8, force=True)
    assert db.word_embeddings["lorastyle"] is lora_emb  # survives a reload while active

    replacement = Embedding("lorastyle", torch.ones(3, 8), source="lora:other")
    db.set_bundled({"lorastyle": replacement})
    assert db.word_embeddings["lorastyle"] is replacement and "widestyle" not in db.skipped
    db.set_bundled({})
    assert list(db.word_embeddings) == ["filestyle"] and not db.skipped
    assert db.find_embedding_at_position(ids_of(tokenizer, "lorastyle"), 0) == (None, 0)
    assert db.version == v + 4

    for data in ({"string_to_param": {"*": torch.ones(1, 8)}}, {"clip_l": torch.ones(1, 768), "clip_g": torch.ones(1, 1280)},
                 {"emb_params": torch.ones(4, 8)}):
        assert embedding_from_data(data, "bundled", None).vectors in (1, 4)


def test_embedding_is_hashable_by_identity():
    a, b = Embedding("x", torch.ones(1, 4)), Embedding("x", torch.ones(1, 4))
    assert a != b and len({a, b}) == 2


# --- end to end: a tiny SD1 text encoder ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_sd1_text():
    from tests.tiny_models import tiny_sd1

    model = tiny_sd1(seed=4)
    return model["tokenizer"], model["text_encoder"]


def test_vectors_reach_the_text_encoder_at_their_positions(tmp_path, tiny_sd1_text):
    from modules.engine.conditioning import TextConditioner
    from tests.tiny_models import TINY_TEXT_WIDTH

    tok, te = tiny_sd1_text
    torch.manual_seed(11)
    style = torch.randn(3, TINY_TEXT_WIDTH)
    negative = torch.randn(2, TINY_TEXT_WIDTH)
    write_pt(tmp_path / "tinystyle.pt", style)
    save_file({"emb_params": negative}, tmp_path / "tinyneg.safetensors")
    save_file({"emb_params": torch.randn(2, 768)}, tmp_path / "bigneg.safetensors")  # another model's width

    db = EmbeddingDatabase(hash_fn=sha256_fn)
    db.load(embeddings.file_paths(tmp_path), tokenizer=tok, expected_width=TINY_TEXT_WIDTH)
    assert list(db.word_embeddings) == ["tinyneg", "tinystyle"] and list(db.skipped) == ["bigneg"]
    conditioner = TextConditioner("sd1", [tok], [te], embeddings=db)

    core = te if hasattr(te, "final_layer_norm") else te.text_model  # transformers 5 flattened CLIPTextModel
    seen = []
    handle = core.embeddings.register_forward_hook(
        lambda module, args, output: seen.append(output.detach() - core.embeddings.position_embedding.weight[:77]))
    try:
        cond = conditioner.get_learned_conditioning(["a tinystyle cat, (tinyneg:1.2) bigneg"])
    finally:
        handle.remove()
    assert cond.shape == (1, 77, TINY_TEXT_WIDTH)

    a, cat, comma = ids_of(tok, "a")[0], ids_of(tok, "cat")[0], ids_of(tok, ",")[0]
    bigneg = ids_of(tok, "bigneg")
    prompt = [a, 0, 0, 0, cat, comma, 0, 0] + bigneg  # placeholders: tinystyle at 1..3, tinyneg at 6..7
    ids = [BOS] + prompt + [EOS] * (76 - len(prompt))
    expected = te.get_input_embeddings().weight[ids].detach().clone()
    expected[1 + 1:1 + 1 + 3] = style  # offset 1, +1 for BOS
    expected[6 + 1:6 + 1 + 2] = negative  # offset 6
    (inputs,) = seen
    assert torch.allclose(inputs[0], expected, atol=1e-6)

    # the skipped embedding's name stays text; the encoding differs from the plain token ids
    plain = te(input_ids=torch.tensor([ids])).last_hidden_state
    assert not torch.allclose(plain, cond, atol=1e-4)
    assert set(conditioner.last_used_embeddings) == {"tinystyle", "tinyneg"}
    style_hash = hashlib.sha256((tmp_path / "tinystyle.pt").read_bytes()).hexdigest()[:12]
    neg_hash = hashlib.sha256((tmp_path / "tinyneg.safetensors").read_bytes()).hexdigest()[:12]
    assert db.infotext_hashes(conditioner.last_used_embeddings.values()) == (
        f"tinystyle: {style_hash}, tinyneg: {neg_hash}")
