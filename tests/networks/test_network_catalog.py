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

from modules.core import fileio
from modules.models import hashes
from modules.models.hashes import HashCache
from modules.networks import catalog as catalog_mod
from modules.networks import sidecars
from modules.networks.catalog import CatalogChanges, NetworkCatalog, NetworkEntry

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
    record["light"] = {"ss_output_name": "stale"}
    write(index, json.dumps(data))
    cat = make("lora", lora, tmp_path=tmp_path)
    assert cat.get("A") is not None and cat.get("stale") is None


# --- light index, lazy metadata and sidecars ------------------------------------------------------

BIG_TAGS = json.dumps({"10_img": {f"booru tag {n:04d}": n % 9 + 1 for n in range(600)}})  # ~12 KB
COVER = json.dumps(["data:image/jpeg;base64," + "QUJD" * 50_000])  # ~200 KB


def kohya_meta(**extra) -> dict:
    return {"ss_output_name": "Kohya Style", "ss_network_module": "networks.lora", "ss_network_dim": "16",
            "ss_network_alpha": "8.0", "ss_network_args": '{"conv_dim": "4"}', "ss_v2": "False",
            "ss_tag_frequency": BIG_TAGS, "ss_bucket_info": json.dumps({"buckets": {str(n): [512, 768] for n in range(40)}}),
            **extra}


class OpenSpy:
    """Records every path opened through open/io.open/os.open while installed."""

    def __init__(self, monkeypatch):
        self.opened: list[str] = []
        real_open, real_os_open = builtins.open, os.open

        def spy_open(file, *args, **kwargs):
            self.opened.append(os.fspath(file))
            return real_open(file, *args, **kwargs)

        def spy_os_open(path, *args, **kwargs):
            self.opened.append(os.fspath(path))
            return real_os_open(path, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", spy_open)
        monkeypatch.setattr(io, "open", spy_open)
        monkeypatch.setattr(os, "open", spy_os_open)

    def take(self) -> list[str]:
        out, self.opened = self.opened, []
        return out


def test_index_keeps_light_metadata_and_full_metadata_is_lazy(tmp_path, monkeypatch):
    lora = tmp_path / "Lora"
    big = write_st(lora / "big.safetensors", {TE_Q: [4, 768]},
                   kohya_meta(sshs_model_hash="ab" * 32, ssmd_cover_images=COVER, ss_base_model_version="sd_v1"))
    nohash = write_st(lora / "nohash.safetensors", {XATTN_K: [4, 2048]}, kohya_meta(ss_output_name="NoHash"))
    cache = HashCache(None)
    cold = make("lora", lora, tmp_path=tmp_path, cache=cache)
    addnet = cold.shorthash(cold.get("nohash"))  # computed (and cached) on the cold catalog
    assert addnet == hashes.addnet_hash_safetensors(nohash)[:12]

    index = tmp_path / "cache" / "lora-index.json"
    text = index.read_text(encoding="utf-8")
    assert len(text) < 4000  # two files with ~230 KB of metadata between them
    assert "booru tag" not in text and "base64" not in text and "buckets" not in text
    assert "\n" not in text.rstrip("\n") and '", "' not in text  # compact JSON
    data = json.loads(text)
    assert data["version"] == catalog_mod.INDEX_VERSION == 2
    rec = data["files"][str(big)]
    assert set(rec) == {"size", "mtime_ns", "format", "family", "light", "complete", "problems"}
    assert rec["complete"] is False and "ss_tag_frequency" not in rec["light"]

    spy = OpenSpy(monkeypatch)
    warm = make("lora", lora, tmp_path=tmp_path, cache=cache)
    entry, other = warm.get("big"), warm.get("nohash")
    assert spy.take() == [str(index)]
    # Listing, lookup, family and hashes (the metadata one, and a cached addnet hash) read no adapter file.
    assert entry.alias == "Kohya Style" and warm.get("Kohya Style") is entry and entry.family == "SD1"
    assert other.alias == "NoHash" and other.family == "SDXL"
    assert warm.shorthash(entry) == "ab" * 6
    assert warm.shorthash(other) == addnet
    light = entry.light_metadata
    assert light["ss_network_dim"] == "16" and light["ss_network_args"] == {"conv_dim": "4"}
    assert light["sshs_model_hash"] == "ab" * 32 and light["ss_base_model_version"] == "sd_v1"
    assert not {"ss_tag_frequency", "ss_bucket_info", "ssmd_cover_images"} & set(light)
    assert spy.take() == []
    # The full metadata: one header read on first access, then cached on the entry.
    meta = entry.metadata
    assert spy.take() == [str(big)]
    assert entry.metadata is meta and warm.get("big").metadata is meta
    assert not warm.refresh() and warm.get("big").metadata is meta  # an unchanged entry keeps its cache
    assert spy.take() == []  # a refresh with nothing changed opens nothing either
    monkeypatch.undo()
    assert meta == fileio.read_safetensors_metadata(big)  # parsed exactly as before
    assert meta["ss_tag_frequency"]["10_img"]["booru tag 0001"] == 2 and meta["ssmd_cover_images"] == COVER
    assert all(meta[k] == v for k, v in light.items())  # light is a part of the full metadata, same values
    assert entry.problems == []


def test_small_metadata_needs_no_read_and_unreadable_metadata_is_a_problem(tmp_path, monkeypatch):
    lora = tmp_path / "Lora"
    small = write_st(lora / "small.safetensors", metadata={"ss_output_name": "S", "ss_tag_frequency": '{"a": {"t": 1}}'})
    big = write_st(lora / "big.safetensors", metadata=kohya_meta())
    make("lora", lora, tmp_path=tmp_path).items()
    # big.safetensors is damaged after it was indexed, keeping its size and mtime: the index still trusts it.
    st = big.stat()
    big.write_bytes(b"\xff" * st.st_size)
    os.utime(big, ns=(st.st_atime_ns, st.st_mtime_ns))

    spy = OpenSpy(monkeypatch)
    warm = make("lora", lora, tmp_path=tmp_path)
    assert warm.get("small").metadata == {"ss_output_name": "S", "ss_tag_frequency": {"a": {"t": 1}}}
    entry = warm.get("big")
    assert entry.alias == "Kohya Style" and entry.problems == []
    assert spy.take() == [str(tmp_path / "cache" / "lora-index.json")]  # small.safetensors' metadata: no read
    assert entry.metadata == {}
    assert spy.take() == [str(big)]
    assert len(entry.problems) == 1 and "big.safetensors" in entry.problems[0] and "header" in entry.problems[0]
    assert entry.metadata == {} and spy.take() == [] and len(entry.problems) == 1  # cached; noted once
    monkeypatch.undo()


def test_old_fat_index_is_discarded(tmp_path, caplog):
    lora = tmp_path / "Lora"
    path = write_st(lora / "a.safetensors", metadata={"ss_output_name": "A"})
    st = path.stat()
    index = tmp_path / "cache" / "lora-index.json"
    write(index, json.dumps({"version": 1, "kind": "lora", "sidecars": {}, "files": {str(path): {
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "format": "safetensors", "family": "SDXL",
        "metadata": {"ss_output_name": "stale", "ss_tag_frequency": {"x": {"t": 1}}}, "problems": []}}}))
    with caplog.at_level(logging.WARNING, logger="modules.networks.catalog"):
        cat = make("lora", lora, tmp_path=tmp_path)
        entry = cat.get("A")
    assert "unexpected layout" in caplog.text
    assert entry is not None and entry.family == "SD1" and cat.get("stale") is None
    data = json.loads(index.read_text())
    assert data["version"] == 2 and data["files"][str(path)]["light"] == {"ss_output_name": "A"}


def test_light_metadata_rules():
    raw = {f"k{n:03d}": "v" for n in range(300)}
    raw.update({"long": "x" * 257, "edge": "y" * 256, "num": 3, "none": None, "list": [1], "ss_output_name": "Out",
                "j": '{"a": 1}', "z" * 257: "long key"})
    meta = catalog_mod.parse_metadata({"__metadata__": raw})
    light, complete = catalog_mod.light_metadata(raw, meta)
    assert not complete and len(light) == catalog_mod.LIGHT_MAX_KEYS
    assert light["ss_output_name"] == "Out"  # lookup keys first, even after many others
    assert list(light)[0] == "ss_output_name"
    small = {"edge": "y" * 256, "num": 3, "none": None, "j": '{"a": 1}', "long": "x" * 257, "list": [1]}
    light, complete = catalog_mod.light_metadata(small, catalog_mod.parse_metadata({"__metadata__": small}))
    assert light == {"edge": "y" * 256, "num": 3, "none": None, "j": {"a": 1}} and not complete
    everything = {"a": "1", "j": '{"b": 2}'}
    light, complete = catalog_mod.light_metadata(everything, catalog_mod.parse_metadata({"__metadata__": everything}))
    assert complete and light == {"a": "1", "j": {"b": 2}}


def test_big_sidecars_are_partly_indexed_and_read_on_use(tmp_path, monkeypatch):
    lora = tmp_path / "Lora"
    write_st(lora / "a.safetensors")
    write_st(lora / "b.safetensors")
    write_st(lora / "c.safetensors")
    long_desc = "<p>" + "d" * 3000 + "</p>"
    user = {"description": long_desc, "sd version": "SDXL", "activation text": "trig", "preferred weight": 0.7,
            "notes": "n" * 5000, "extra": {"nested": "x" * 100}}
    write(lora / "a.json", json.dumps(user, indent=4))
    civitai = {"id": 5, "name": "Model", "baseModel": "SDXL 1.0", "description": "h" * 8000,
               "images": [{"url": f"https://x/{n}.jpeg", "meta": {"prompt": "p" * 200}} for n in range(40)]}
    write(lora / "a.civitai.info", json.dumps(civitai))
    write(lora / "b.json", json.dumps({"description": "e" * 6000, "activation text": "bee"}))
    write(lora / "b.txt", "unused: the JSON description wins")
    write(lora / "c.txt", "t" * 5000)
    write(lora / "c.description.txt", "second")
    write(lora / "c.civitai.info", json.dumps([0] * 3000))  # big and not an object: a problem, nothing kept

    cold = make("lora", lora, tmp_path=tmp_path)
    want = {e.name: (e.user_metadata, e.civitai_info, e.description, e.family, e.preferred_weight,
                     e.activation_text, e.problems) for e in cold.items()}
    assert want["a"] == (user, civitai, long_desc, "SDXL", 0.7, "trig", [])
    assert want["b"][2] == "e" * 6000 and want["b"][5] == "bee"
    assert want["c"][2] == "t" * 5000 and want["c"][1] is None
    assert len(want["c"][6]) == 1 and "c.civitai.info" in want["c"][6][0] and "object" in want["c"][6][0]
    index = tmp_path / "cache" / "lora-index.json"
    text = index.read_text(encoding="utf-8")
    assert "nnnnn" not in text and "hhhhh" not in text and "https://" not in text and "eeeee" not in text
    assert "ttttt" not in text and long_desc in text and '"name":"Model"' in text

    spy = OpenSpy(monkeypatch)
    warm = make("lora", lora, tmp_path=tmp_path)
    a, b, c = warm.get("a"), warm.get("b"), warm.get("c")
    # From the index alone: family override, listing fields of a, weight and trigger words.
    assert (a.family, a.description, a.preferred_weight, a.activation_text) == ("SDXL", long_desc, 0.7, "trig")
    assert b.activation_text == "bee" and c.problems == want["c"][6]
    assert spy.take() == [str(index)]
    assert a.user_metadata == user and a.civitai_info == civitai
    assert sorted(spy.take()) == [str(lora / "a.civitai.info"), str(lora / "a.json")]
    assert a.user_metadata == user and a.civitai_info == civitai and spy.take() == []
    assert b.description == "e" * 6000 and spy.take() == [str(lora / "b.json")]
    assert c.description == "t" * 5000 and spy.take() == [str(lora / "c.txt")]
    assert c.civitai_info is None and spy.take() == []
    monkeypatch.undo()
    got = {e.name: (e.user_metadata, e.civitai_info, e.description, e.family, e.preferred_weight,
                    e.activation_text, e.problems) for e in warm.items()}
    assert got == want


def test_sidecar_index_value_rules(tmp_path):
    small = {"description": "d", "x": [1, 2]}
    assert sidecars.index_value("a.json", 100, small, None) == (small, False, None)
    assert sidecars.index_value("a.json", 10_000, None, "a.json: bad") == (None, False, "a.json: bad")
    big = {"description": "d" * 4000, "notes": "n" * 300, "n": 1, "list": [1], "ok": "short"}
    assert sidecars.index_value("a.json", 10_000, big, None) == \
        ({"description": "d" * 4000, "n": 1, "ok": "short"}, True, None)
    assert sidecars.index_value("a.civitai.info", 10_000, big, None) == ({"n": 1, "ok": "short"}, True, None)
    assert sidecars.index_value("a.json", 10_000, {"a": 1}, None) == ({"a": 1}, False, None)  # nothing left out
    value, partial, problem = sidecars.index_value("a.json", 10_000, [1, 2], None)
    assert value is None and not partial and "a.json" in problem and "object" in problem
    assert sidecars.index_value("a.txt", 10_000, "t" * 10_000, None) == (None, True, None)


def test_entry_constructor_and_lazy_metadata_without_index(tmp_path):
    entry = NetworkEntry(kind="lora", name="x", alias="x", path=tmp_path / "x.safetensors", root=tmp_path,
                         relpath="Lora/x.safetensors", size=1, mtime=0.0, format="safetensors", family="SD1",
                         light_metadata={"a": "1"}, _metadata={"a": "1", "big": "2"})
    assert entry.metadata == {"a": "1", "big": "2"} and entry.user_metadata == {} and entry.civitai_info is None
    assert entry.description == "" and entry.preferred_weight == 0.0 and entry.activation_text == ""
    missing = NetworkEntry("lora", "m", "m", tmp_path / "m.safetensors", tmp_path, "Lora/m.safetensors", 1, 0.0,
                           "safetensors", "Unknown")
    assert missing.metadata == {} and len(missing.problems) == 1 and "m.safetensors" in missing.problems[0]
    assert NetworkEntry("lora", "p", "p", tmp_path / "p.pt", tmp_path, "Lora/p.pt", 1, 0.0, "pt", "Unknown").metadata == {}
    # In-memory catalog (no index): same lazy behaviour.
    write_st(tmp_path / "Lora" / "k.safetensors", metadata=kohya_meta())
    bare = NetworkCatalog("lora", [tmp_path / "Lora"], index_path=None, hash_cache=None)
    k = bare.get("Kohya Style")
    assert "ss_tag_frequency" not in k.light_metadata and k.metadata["ss_tag_frequency"]["10_img"]


def test_unknown_kind_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown network kind"):
        NetworkCatalog("checkpoint", [tmp_path], index_path=None, hash_cache=None)
