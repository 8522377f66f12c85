"""The adapter catalog (modules/networks/catalog.py): listing, names, sidecars, families, index, hashes."""
from __future__ import annotations

import builtins
import hashlib
import io
import json
import logging
import os
import struct
from math import prod
from pathlib import Path

import pytest

from modules import fileio, hashes
from modules.hashes import HashCache
from modules.networks.catalog import CatalogChanges, NetworkCatalog

MANIFESTS = "manifests/invokeai_stripped"


def write_st(path: Path, tensors: dict | None = None, metadata: dict | None = None, data: bool = True) -> Path:
    """A safetensors file with F16 tensors of the given shapes (zeros); header only when ``data`` is False."""
    tensors = {"w": [1, 4]} if tensors is None else tensors
    header: dict = {} if metadata is None else {"__metadata__": metadata}
    offset = 0
    for key, shape in tensors.items():
        n = 2 * prod(shape) if data else 0
        header[key] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return path


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def make(kind: str, *dirs: Path, tmp_path: Path, cache: HashCache | None = None) -> NetworkCatalog:
    return NetworkCatalog(kind, list(dirs), index_path=tmp_path / "cache" / f"{kind}-index.json",
                          hash_cache=cache if cache is not None else HashCache(None))


def names(catalog: NetworkCatalog) -> list[str]:
    return [e.relpath for e in catalog.items()]


# --- listing ---------------------------------------------------------------------------------


def test_listing_order_subfolders_case_and_symlinks(tmp_path):
    lora, lyco, outside = tmp_path / "Lora", tmp_path / "LyCORIS", tmp_path / "outside"
    for rel in ("a10.safetensors", "a2.safetensors", "sub/x.pt", "sub/y.ckpt", ".hidden/h.safetensors",
                "sub 2/z.safetensors"):
        write_st(lora / rel)
    write(lora / "B.SAFETENSORS", (lora / "a2.safetensors").read_bytes())
    write(lora / "notes.txt", "not an adapter")
    write(lora / "sub" / "model.bin", b"x")  # .bin is not a LoRA extension
    write_st(lyco / "l.safetensors")
    write_st(outside / "real.safetensors")
    write_st(outside / "dir" / "in_linked.safetensors")
    os.symlink(outside / "real.safetensors", lora / "link.safetensors")
    os.symlink(outside / "dir", lora / "linked")
    os.symlink(lora, lora / "sub" / "loop")  # a cycle: must not be followed forever
    os.symlink(tmp_path / "missing.safetensors", lora / "broken.safetensors")

    cat = make("lora", lora, lyco, tmp_path=tmp_path)
    expected = [
        "Lora/a2.safetensors", "Lora/a10.safetensors", "Lora/B.SAFETENSORS", "Lora/link.safetensors",
        "Lora/.hidden/h.safetensors", "Lora/linked/in_linked.safetensors",
        "Lora/sub/x.pt", "Lora/sub/y.ckpt", "Lora/sub 2/z.safetensors", "LyCORIS/l.safetensors",
    ]
    assert names(cat) == expected
    # Same order as the project's A1111-style walk (which also skips the cycle and the broken link).
    walked = [p for d in (lora, lyco) for p in fileio.walk_files(d, [".safetensors", ".pt", ".ckpt"])]
    assert [str(e.path) for e in cat.items()] == walked

    by_rel = {e.relpath: e for e in cat.items()}
    link = by_rel["Lora/link.safetensors"]
    assert link.path == lora / "link.safetensors"  # not resolved
    assert link.root == lora and link.name == "link" and link.format == "safetensors"
    assert link.size == (outside / "real.safetensors").stat().st_size
    assert by_rel["Lora/B.SAFETENSORS"].format == "safetensors" and by_rel["Lora/B.SAFETENSORS"].name == "B"
    assert by_rel["Lora/sub/x.pt"].format == "pt" and by_rel["Lora/sub/x.pt"].family == "Unknown"
    assert by_rel["Lora/.hidden/h.safetensors"].hidden
    assert not by_rel["Lora/sub/x.pt"].hidden
    assert by_rel["LyCORIS/l.safetensors"].root == lyco
    assert all(e.path.is_absolute() for e in cat.items())


def test_items_scan_lazily_and_missing_dirs_are_empty(tmp_path):
    write_st(tmp_path / "Lora" / "a.safetensors")
    cat = make("lora", tmp_path / "Lora", tmp_path / "nope", tmp_path=tmp_path)
    assert cat.version == 0
    assert names(cat) == ["Lora/a.safetensors"]
    assert cat.version == 1
    assert make("lora", tmp_path / "nope", tmp_path=tmp_path).items() == []


def test_embedding_and_hypernet_listing_rules(tmp_path):
    emb = tmp_path / "embeddings"
    write(emb / "data.pt", b"pickle")
    write(emb / "data.png", b"preview of data.pt")  # preview sidecar, not an embedding
    write(emb / "UP.BIN", b"bin")
    write(emb / "st.safetensors", b"")  # zero bytes: skipped (A1111)
    write_st(emb / "st2.safetensors", {"emb_params": [2, 768]})
    write(emb / "st2.webp", b"preview")
    write(emb / "in_image.png", b"an image embedding")
    write(emb / "in_image.preview.png", b"its preview")
    write(emb / "other.webp", b"webp embedding")
    write(emb / "x.jxl", b"jxl")
    write(emb / "y.avif", b"avif")
    write(emb / "notes.txt", "ignored")
    cat = make("embedding", emb, tmp_path=tmp_path)
    by_name = {e.name: e for e in cat.items()}
    assert names(cat) == [
        "embeddings/data.pt", "embeddings/in_image.png", "embeddings/other.webp", "embeddings/st2.safetensors",
        "embeddings/UP.BIN", "embeddings/x.jxl", "embeddings/y.avif",
    ]
    assert by_name["data"].preview == emb / "data.png"
    assert by_name["in_image"].preview == emb / "in_image.preview.png"  # not itself
    assert by_name["in_image"].format == "png"
    assert by_name["other"].preview is None
    assert by_name["st2"].preview == emb / "st2.webp" and by_name["st2"].family == "SD1"
    assert by_name["UP"].format == "bin"

    hyp = tmp_path / "hypernetworks"
    write(hyp / "None.pt", b"skip me")
    write(hyp / "h.pt", b"h")
    write(hyp / "deep" / "H2.PT", b"h2")
    write(hyp / "h.safetensors", b"not a hypernet extension")
    assert names(make("hypernet", hyp, tmp_path=tmp_path)) == ["hypernetworks/h.pt", "hypernetworks/deep/H2.PT"]


# --- names and aliases ------------------------------------------------------------------------


def test_aliases_forbidden_duplicates_and_none(tmp_path):
    lora, lyco = tmp_path / "Lora", tmp_path / "LyCORIS"
    write_st(lora / "a.safetensors", metadata={"ss_output_name": "shared"})
    write_st(lora / "b.safetensors", metadata={"ss_output_name": "shared"})
    write_st(lora / "c.safetensors", metadata={"ss_output_name": "unique"})
    write_st(lora / "none.safetensors", metadata={"ss_output_name": "nothing"})
    write_st(lora / "one" / "dup.safetensors")
    write_st(lora / "two" / "dup.safetensors")
    write_st(lyco / "c2.safetensors")
    write_st(lyco / "c.safetensors", metadata={"ss_output_name": "lyco_c"})
    cat = make("lora", lora, lyco, tmp_path=tmp_path)

    a = cat.get("a")
    assert a is not None and a.alias == "shared" and a.name == "a"
    assert cat.get("shared") is None  # used by two files: only their file names resolve
    assert cat.alias_forbidden("shared") and cat.alias_forbidden("SHARED")
    assert cat.get("unique") is not None and cat.get("unique").path == lora / "c.safetensors"
    assert not cat.alias_forbidden("unique")
    assert cat.get("nothing").name == "none"
    assert cat.get("none") is None and cat.get("None") is None  # never resolves
    assert cat.get("dup").path == lora / "two" / "dup.safetensors"  # later folder wins
    assert cat.get("c").path == lyco / "c.safetensors"  # later dir wins for the same stem
    assert cat.get("lyco_c").path == lyco / "c.safetensors"
    assert cat.get("c2").alias == "c2"
    assert cat.get("missing") is None
    assert len(cat.items()) == 8  # duplicates stay listed


# --- sidecars --------------------------------------------------------------------------------


def test_sidecars_previews_json_civitai_description(tmp_path):
    lora = tmp_path / "Lora"
    for stem in ("foo", "bar", "baz", "qux", "bad", "plain"):
        write_st(lora / f"{stem}.safetensors")
    # Preview order: for each of png, jpg, jpeg, webp, gif: NAME.ext then NAME.preview.ext.
    write(lora / "foo.jpg", b"j")
    write(lora / "foo.preview.png", b"p")
    write(lora / "bar.webp", b"w")
    write(lora / "bar.preview.jpg", b"j")
    write(lora / "baz.preview.png", b"p")
    write(lora / "baz.png", b"p")
    os.symlink(tmp_path / "gone.png", lora / "plain.png")  # broken: not a preview
    write(lora / "plain.preview.gif", b"g")

    write(lora / "foo.json", json.dumps({"description": "from json", "activation text": "trigger, word",
                                         "preferred weight": "0.7", "notes": "n"}))
    write(lora / "foo.txt", "from txt")
    write(lora / "foo.civitai.info", json.dumps({"id": 12, "model": {"name": "Foo"}}))
    write(lora / "bar.txt", "bar text")
    write(lora / "bar.description.txt", "bar description")
    write(lora / "baz.description.txt", "baz description")
    write(lora / "qux.json", json.dumps({"preferred weight": "heavy", "activation text": 5}))
    write(lora / "bad.json", "{not json")
    write(lora / "bad.civitai.info", "[1, 2]")

    cat = make("lora", lora, tmp_path=tmp_path)
    e = {x.name: x for x in cat.items()}
    assert e["foo"].preview == lora / "foo.preview.png"
    assert e["bar"].preview == lora / "bar.preview.jpg"
    assert e["baz"].preview == lora / "baz.png"
    assert e["plain"].preview == lora / "plain.preview.gif"
    assert e["qux"].preview is None

    assert e["foo"].description == "from json"
    assert e["foo"].activation_text == "trigger, word"
    assert e["foo"].preferred_weight == pytest.approx(0.7)
    assert e["foo"].user_metadata["notes"] == "n"
    assert e["foo"].civitai_info == {"id": 12, "model": {"name": "Foo"}}
    assert e["foo"].problems == []
    assert e["bar"].description == "bar text" and e["bar"].civitai_info is None
    assert e["baz"].description == "baz description"
    assert e["qux"].preferred_weight == 0.0 and e["qux"].activation_text == ""
    assert e["plain"].description == "" and e["plain"].user_metadata == {}

    assert e["bad"].user_metadata == {} and e["bad"].civitai_info is None
    assert len(e["bad"].problems) == 2
    assert "bad.json" in e["bad"].problems[0] and "JSON" in e["bad"].problems[0]
    assert "bad.civitai.info" in e["bad"].problems[1] and "object" in e["bad"].problems[1]


def test_save_user_metadata_merges_atomically(tmp_path, monkeypatch):
    lora = tmp_path / "Lora"
    write_st(lora / "sub" / "foo.safetensors", metadata={"ss_output_name": "Foo"})
    write(lora / "sub" / "foo.json", json.dumps({"notes": "keep me", "description": "old"}))
    cat = make("lora", lora, tmp_path=tmp_path)
    entry = cat.get("foo")
    version = cat.version

    updated = cat.save_user_metadata(entry, {"description": "neu ü", "preferred weight": 0.5, "sd version": "SDXL"})
    text = (lora / "sub" / "foo.json").read_text(encoding="utf-8")
    assert json.loads(text) == {"notes": "keep me", "description": "neu ü", "preferred weight": 0.5,
                                "sd version": "SDXL"}
    assert text.startswith('{\n    "notes": "keep me",') and "neu ü" in text  # indent=4, ensure_ascii=False
    assert updated.description == "neu ü" and updated.preferred_weight == 0.5 and updated.family == "SDXL"
    assert updated.relpath == "Lora/sub/foo.safetensors" and updated.alias == "Foo"
    assert cat.get("foo") is updated and cat.get("Foo") is updated
    assert cat.items()[0] is updated
    assert cat.version == version + 1
    assert not cat.refresh()  # the catalog already knows about its own write
    assert make("lora", lora, tmp_path=tmp_path).get("foo").description == "neu ü"  # index updated

    # The write is atomic: a failure before the rename leaves the old file and no temporary file.
    def fail_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(OSError, match="disk full"):
        cat.save_user_metadata(updated, {"description": "lost"})
    monkeypatch.undo()
    assert json.loads((lora / "sub" / "foo.json").read_text(encoding="utf-8"))["description"] == "neu ü"
    assert sorted(p.name for p in (lora / "sub").iterdir()) == ["foo.json", "foo.safetensors"]

    # No sidecar yet: created.
    write_st(lora / "bar.safetensors")
    cat.refresh()
    bar = cat.save_user_metadata(cat.get("bar"), {"activation text": "hello"})
    assert bar.activation_text == "hello"
    assert json.loads((lora / "bar.json").read_text(encoding="utf-8")) == {"activation text": "hello"}


# --- families ----------------------------------------------------------------------------------

TE_Q = "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"
XATTN_K = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"


@pytest.mark.parametrize("tensors, metadata, family", [
    ({TE_Q: [4, 768]}, {"ss_base_model_version": "sdxl_base_v1-0"}, "SDXL"),
    ({TE_Q: [4, 768]}, {"ss_v2": "True"}, "SD2"),
    ({TE_Q: [4, 1024]}, None, "SD2"),
    ({TE_Q: [4, 768]}, None, "SD1"),
    ({TE_Q: [4, 768], "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": [4, 1280]}, None, "SDXL"),
    ({XATTN_K: [4, 2048]}, None, "SDXL"),
    ({XATTN_K: [4, 1024]}, {"ss_v2": "False"}, "SD2"),
    ({"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": [4, 768]}, None, "SD1"),
    ({"unet.down_blocks.2.attentions.0.transformer_blocks.1.attn1.to_q.lora_A.weight": [4, 1280]}, None, "SDXL"),
    ({"some.weight": [4, 4]}, None, "Unknown"),
    ({"some.weight": [4, 4]}, {"ss_network_module": "networks.lora"}, "SD1"),  # A1111: any metadata -> SD1
])
def test_lora_family_rules(tmp_path, tensors, metadata, family):
    write_st(tmp_path / "Lora" / "x.safetensors", tensors, metadata)
    assert make("lora", tmp_path / "Lora", tmp_path=tmp_path).get("x").family == family


@pytest.mark.parametrize("tensors, family", [
    ({"emb_params": [2, 768]}, "SD1"),
    ({"emb_params": [2, 1024]}, "SD2"),
    ({"clip_l": [2, 768], "clip_g": [2, 1280]}, "SDXL"),
    ({"<birb-style>": [768]}, "SD1"),
    ({"weird": [2, 5]}, "Unknown"),
])
def test_embedding_family_rules(tmp_path, tensors, family):
    write_st(tmp_path / "embeddings" / "e.safetensors", tensors)
    assert make("embedding", tmp_path / "embeddings", tmp_path=tmp_path).get("e").family == family


def test_family_user_override_and_pickles_not_read(tmp_path, monkeypatch):
    lora = tmp_path / "Lora"
    write(lora / "p.pt", b"\x80\x04 not really a pickle")
    write(lora / "q.ckpt", b"ckpt")
    write(lora / "q.json", json.dumps({"sd version": "SD2"}))
    write_st(lora / "s.safetensors", {TE_Q: [4, 768]})
    write(lora / "s.json", json.dumps({"sd version": "Unknown"}))
    write_st(lora / "t.safetensors", {TE_Q: [4, 768]})
    write(lora / "t.json", json.dumps({"sd version": "SD9"}))  # not a known version: ignored
    opened = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        opened.append(os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    cat = make("lora", lora, tmp_path=tmp_path)
    fam = {e.name: e.family for e in cat.items()}
    monkeypatch.undo()
    assert fam == {"p": "Unknown", "q": "SD2", "s": "Unknown", "t": "SD1"}
    assert not any(p.endswith((".pt", ".ckpt")) for p in opened)


def test_family_from_real_key_manifests(real_fixtures, tmp_path):
    """Key names and shapes of two real kohya LoRAs (SD1.5 and SDXL), as header-only files."""
    for stem in ("sd15_kohya_lora_shinkai_makoto_offset", "sdxl_kohya_lora_Alien_Style"):
        keys = json.loads((real_fixtures / MANIFESTS / f"{stem}.keys.json").read_text())
        write_st(tmp_path / "Lora" / f"{stem}.safetensors", {k: v["shape"] for k, v in keys.items()}, data=False)
    cat = make("lora", tmp_path / "Lora", tmp_path=tmp_path)
    assert cat.get("sd15_kohya_lora_shinkai_makoto_offset").family == "SD1"
    assert cat.get("sdxl_kohya_lora_Alien_Style").family == "SDXL"


# --- real fixtures and hashes ----------------------------------------------------------------


def test_real_lokr_family_alias_and_shorthash(real_fixtures, tmp_path):
    path = real_fixtures / "lora" / "lycoris_lokr_sd15" / "smart_falcon_4_lokr.safetensors"
    cat = make("lora", real_fixtures / "lora", tmp_path=tmp_path)
    entry = cat.get("smart_falcon_4_lokr")
    assert entry is not None and entry.path == path and entry.problems == []
    assert entry.relpath == "lora/lycoris_lokr_sd15/smart_falcon_4_lokr.safetensors"
    assert entry.family == "SD1"
    assert entry.alias == "smart_falcon_lokr_3.0e-4" and cat.get("smart_falcon_lokr_3.0e-4") is entry
    assert entry.metadata == fileio.read_safetensors_metadata(path)
    sshs = entry.metadata["sshs_model_hash"]
    assert cat.shorthash(entry) == sshs[:12] == "150ef207aad0"
    assert cat.addnet_hash(entry) == sshs == hashes.addnet_hash_safetensors(path)
    # No cache: the metadata hash is still known, nothing else is.
    bare = NetworkCatalog("lora", [real_fixtures / "lora"], index_path=None, hash_cache=None)
    assert bare.shorthash(bare.get("smart_falcon_4_lokr")) == sshs[:12]
    assert bare.sha256(bare.get("smart_falcon_4_lokr")) is None
    # Without sshs_model_hash a safetensors LoRA uses the addnet hash.
    other = cat.get("pokemon_attnprocs_pytorch_lora_weights")
    assert cat.shorthash(other) == hashes.addnet_hash_safetensors(other.path)[:12]


def test_real_embedding_shorthash(real_fixtures, tmp_path):
    cache = HashCache(tmp_path / "hashes.json")
    cat = make("embedding", real_fixtures / "embeddings", tmp_path=tmp_path, cache=cache)
    entry = cat.get("EasyNegative")
    assert entry.family == "SD1" and entry.format == "safetensors"
    assert cat.shorthash(entry) == "c74b4e810b03"
    assert cache.cached(entry.path, "embedding/EasyNegative") == cat.sha256(entry)
    assert cat.addnet_hash(cat.get("bad_prompt_version2")) is None  # not safetensors
    assert cat.get("bad_prompt_version2").family == "Unknown"
    disabled = make("embedding", real_fixtures / "embeddings", tmp_path=tmp_path, cache=HashCache(None, enabled=False))
    assert disabled.shorthash(disabled.get("EasyNegative")) is None


def test_hashes_per_kind(tmp_path):
    write(tmp_path / "hypernetworks" / "h.pt", b"hypernetwork bytes")
    write(tmp_path / "Lora" / "l.pt", b"lora pickle bytes")
    cache = HashCache(None)
    hyp = make("hypernet", tmp_path / "hypernetworks", tmp_path=tmp_path, cache=cache)
    lora = make("lora", tmp_path / "Lora", tmp_path=tmp_path, cache=cache)
    assert hyp.shorthash(hyp.get("h")) == hashlib.sha256(b"hypernetwork bytes").hexdigest()[:10]
    assert lora.shorthash(lora.get("l")) == hashlib.sha256(b"lora pickle bytes").hexdigest()[:12]
    assert cache.cached(tmp_path / "hypernetworks" / "h.pt", "hypernet/h") is not None


# --- index, refresh, bad files -------------------------------------------------------------


def _tree_with_everything(lora: Path) -> None:
    write_st(lora / "a.safetensors", {TE_Q: [4, 768]}, {"ss_output_name": "A", "ss_tag_frequency": '{"x": {"t": 1}}'})
    write(lora / "a.json", json.dumps({"description": "d", "preferred weight": 0.6}))
    write(lora / "a.civitai.info", json.dumps({"id": 1}))
    write(lora / "a.preview.png", b"png")
    write_st(lora / "sub" / "b.safetensors")
    write(lora / "sub" / "b.txt", "b description")
    write(lora / "sub" / "c.pt", b"pt")
    write(lora / "sub" / "broken.safetensors", b"\xff" * 20)
    write(lora / "sub" / "broken.json", "{oops")


def test_warm_start_reads_no_file_contents(tmp_path, monkeypatch):
    lora = tmp_path / "Lora"
    _tree_with_everything(lora)
    cold = make("lora", lora, tmp_path=tmp_path)
    before = [(e.relpath, e.alias, e.family, e.metadata, e.user_metadata, e.civitai_info, e.description,
               e.preview, e.problems, e.size, e.mtime) for e in cold.items()]
    assert cold.get("a").metadata["ss_tag_frequency"] == {"x": {"t": 1}}
    index = tmp_path / "cache" / "lora-index.json"
    assert index.is_file()

    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def spy_open(file, *args, **kwargs):
        opened.append(os.fspath(file))
        return real_open(file, *args, **kwargs)

    def spy_os_open(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(io, "open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    warm = make("lora", lora, tmp_path=tmp_path)
    after = [(e.relpath, e.alias, e.family, e.metadata, e.user_metadata, e.civitai_info, e.description,
              e.preview, e.problems, e.size, e.mtime) for e in warm.items()]
    assert not warm.refresh()
    monkeypatch.undo()
    assert opened == [str(index)]  # the index itself, once; no adapter or sidecar, no index rewrite
    assert after == before


def test_refresh_sees_added_changed_removed(tmp_path):
    lora = tmp_path / "Lora"
    _tree_with_everything(lora)
    cat = make("lora", lora, tmp_path=tmp_path)
    first = cat.refresh()
    assert len(first.added) == 4 and not first.changed and not first.removed
    v = cat.version
    assert cat.refresh() == CatalogChanges() and cat.version == v

    write_st(lora / "sub" / "new.safetensors", metadata={"ss_output_name": "Fresh"})
    write_st(lora / "a.safetensors", {TE_Q: [4, 1024]}, {"ss_output_name": "A2"})  # content and size change
    (lora / "sub" / "c.pt").unlink()
    write(lora / "sub" / "b.json", json.dumps({"activation text": "bee"}))  # a new sidecar changes b
    changes = cat.refresh()
    assert changes.added == [str(lora / "sub" / "new.safetensors")]
    assert sorted(changes.changed) == [str(lora / "a.safetensors"), str(lora / "sub" / "b.safetensors")]
    assert changes.removed == [str(lora / "sub" / "c.pt")]
    assert cat.version == v + 1
    assert cat.get("Fresh").name == "new" and cat.get("c") is None
    assert cat.get("a").alias == "A2" and cat.get("a").family == "SD2" and cat.get("A") is None
    assert cat.get("b").activation_text == "bee"

    # A sidecar edited in place (same size, new mtime) is read again.
    sidecar = lora / "a.json"
    write(sidecar, json.dumps({"description": "e", "preferred weight": 0.6}))
    st = sidecar.stat()
    os.utime(sidecar, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changes = cat.refresh()
    assert changes.changed == [str(lora / "a.safetensors")] and not changes.added and not changes.removed
    assert cat.get("a").description == "e"
    # A preview appearing is a change too.
    write(lora / "sub" / "b.png", b"png")
    assert cat.refresh().changed == [str(lora / "sub" / "b.safetensors")]
    assert cat.get("b").preview == lora / "sub" / "b.png"

    # The index followed: a new catalog sees the same thing.
    again = make("lora", lora, tmp_path=tmp_path)
    assert [(e.relpath, e.alias, e.description, e.preview) for e in again.items()] == \
        [(e.relpath, e.alias, e.description, e.preview) for e in cat.items()]


def test_corrupt_files_give_problems_not_exceptions(tmp_path):
    lora = tmp_path / "Lora"
    write(lora / "garbage.safetensors", b"\xff" * 64)
    write(lora / "short.safetensors", b"abc")
    write(lora / "notjson.safetensors", struct.pack("<Q", 8) + b"[1,2,3] ")
    write(lora / "empty.safetensors", b"")
    write_st(lora / "fine.safetensors")
    write(lora / "fine.json", b"\xff\xfe not utf-8")
    cat = make("lora", lora, tmp_path=tmp_path)
    e = {x.name: x for x in cat.items()}
    assert len(e) == 5
    for stem in ("garbage", "short", "notjson", "empty"):
        assert e[stem].family == "Unknown" and e[stem].metadata == {}
        assert len(e[stem].problems) == 1 and f"{stem}.safetensors" in e[stem].problems[0]
    assert "header" in e["garbage"].problems[0]
    assert e["fine"].problems and "fine.json" in e["fine"].problems[0] and e["fine"].user_metadata == {}
    # Problems come back from the index too.
    warm = make("lora", lora, tmp_path=tmp_path)
    assert [x.problems for x in warm.items()] == [x.problems for x in cat.items()]


def test_corrupt_or_foreign_index_is_ignored(tmp_path, caplog):
    lora = tmp_path / "Lora"
    write_st(lora / "a.safetensors", metadata={"ss_output_name": "A"})
    index = tmp_path / "cache" / "lora-index.json"
    write(index, "{ this is not json")
    with caplog.at_level(logging.WARNING, logger="modules.networks.catalog"):
        cat = make("lora", lora, tmp_path=tmp_path)
        assert cat.get("A").name == "a"
    assert "unreadable" in caplog.text and str(index) in caplog.text
    assert json.loads(index.read_text())["kind"] == "lora"  # rewritten

    # An index of another kind, or records that do not fit, are not trusted.
    data = json.loads(index.read_text())
    data["kind"] = "hypernet"
    write(index, json.dumps(data))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="modules.networks.catalog"):
        assert make("lora", lora, tmp_path=tmp_path).get("A") is not None
    assert "unexpected layout or kind" in caplog.text
    data = json.loads(index.read_text())
    (record,) = data["files"].values()
    record["family"] = 5
    record["metadata"] = {"ss_output_name": "stale"}
    write(index, json.dumps(data))
    cat = make("lora", lora, tmp_path=tmp_path)
    assert cat.get("A") is not None and cat.get("stale") is None


def test_unknown_kind_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown network kind"):
        NetworkCatalog("checkpoint", [tmp_path], index_path=None, hash_cache=None)
