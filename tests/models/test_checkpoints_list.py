"""Checkpoint listing, names, aliases and closest match (spec §13.1); VAE listing and resolution (§13.4)."""
import hashlib
import os

import pytest

from modules.models import hashes
from modules.models.checkpoints import CheckpointRegistry
from modules.settings.cmd_args import parse_args
from modules.models.hashes import HashCache
from modules.settings.paths import Paths
from modules.models.vae_list import SOURCE_ARG, SOURCE_BAKED, SOURCE_METADATA, SOURCE_NEAR, SOURCE_SETTINGS, VaeRegistry


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def setup(tmp_path, *argv):
    args = parse_args(["--data-dir", str(tmp_path)] + list(argv), environ={})
    paths = Paths.from_args(args, repo_root=tmp_path, environ={})
    return paths, HashCache(tmp_path / "cache" / "hashes.json")


@pytest.fixture
def no_reads(monkeypatch):
    """Fail if anything hashes a file."""
    def fail(*a, **k):
        raise AssertionError("file contents were read")
    monkeypatch.setattr(hashes, "sha256_file", fail)
    monkeypatch.setattr(hashes, "old_model_hash", fail)
    import modules.models.checkpoints as ck
    monkeypatch.setattr(ck, "old_model_hash", fail)


def test_listing_order_and_names(tmp_path, no_reads):
    sd = tmp_path / "models" / "Stable-diffusion"
    for rel in ["b.safetensors", "a10.ckpt", "a2.ckpt", "A1.SAFETENSORS", "sub/z.ckpt", "sub2/x/y.safetensors",
                "notes.txt", "model.vae.safetensors", "other.vae.ckpt", "sub/readme.md"]:
        touch(sd / rel)
    paths, cache = setup(tmp_path)
    reg = CheckpointRegistry(paths, cache)
    infos = reg.refresh()
    assert [i.name for i in infos] == ["A1.SAFETENSORS", "a2.ckpt", "a10.ckpt", "b.safetensors", "sub/z.ckpt",
                                       "sub2/x/y.safetensors"]
    z = infos[4]
    assert z.filename == str(sd / "sub" / "z.ckpt")
    assert z.name_for_extra == "z" and z.model_name == "sub_z" and z.title == "sub/z.ckpt" and z.short_title == "z"
    assert z.sha256 is None and z.shorthash is None and not z.is_diffusers_folder
    assert infos[0].model_name == "A1"
    assert [i.title for i in reg.list()] == reg.titles()


def test_ckpt_dir_listed_first_and_named_relative(tmp_path):
    touch(tmp_path / "models" / "Stable-diffusion" / "m.safetensors")
    touch(tmp_path / "extra" / "deep" / "e.ckpt")
    paths, cache = setup(tmp_path, "--ckpt-dir", str(tmp_path / "extra"))
    names = [i.name for i in CheckpointRegistry(paths, cache).refresh()]
    assert names == ["deep/e.ckpt", "m.safetensors"]


def test_ckpt_arg_registered_first(tmp_path):
    touch(tmp_path / "models" / "Stable-diffusion" / "a.safetensors")
    outside = touch(tmp_path / "elsewhere" / "mine.ckpt")
    paths, cache = setup(tmp_path)
    reg = CheckpointRegistry(paths, cache, ckpt_arg=str(outside))
    infos = reg.refresh()
    assert [i.name for i in infos] == ["mine.ckpt", "a.safetensors"]
    assert reg.cmd_ckpt is infos[0]
    # a missing --ckpt (A1111's default <repo>/model.ckpt) is simply not listed
    reg = CheckpointRegistry(paths, cache, ckpt_arg=str(tmp_path / "model.ckpt"))
    assert [i.name for i in reg.refresh()] == ["a.safetensors"] and reg.cmd_ckpt is None


def test_ckpt_arg_inside_models_dir_not_duplicated(tmp_path):
    sd = tmp_path / "models" / "Stable-diffusion"
    touch(sd / "a.safetensors")
    b = touch(sd / "b.safetensors")
    paths, cache = setup(tmp_path)
    reg = CheckpointRegistry(paths, cache, ckpt_arg=str(b))
    assert [i.name for i in reg.refresh()] == ["b.safetensors", "a.safetensors"]
    assert reg.cmd_ckpt.name == "b.safetensors"


def test_diffusers_folder_is_one_checkpoint(tmp_path, no_reads):
    sd = tmp_path / "models" / "Stable-diffusion"
    folder = sd / "my.model-diffusers"
    touch(folder / "model_index.json", b"{}")
    touch(folder / "unet" / "diffusion_pytorch_model.safetensors")
    touch(folder / "vae" / "diffusion_pytorch_model.safetensors")
    touch(sd / "c.ckpt")
    paths, cache = setup(tmp_path)
    infos = CheckpointRegistry(paths, cache).refresh()
    assert [i.name for i in infos] == ["c.ckpt", "my.model-diffusers"]
    d = infos[1]
    assert d.is_diffusers_folder and d.name_for_extra == "my.model-diffusers" and d.model_name == "my.model-diffusers"
    assert d.hash is None and d.metadata == {}


def test_diffusers_folder_hash(tmp_path):
    sd = tmp_path / "models" / "Stable-diffusion"
    folder = sd / "pipe"
    touch(folder / "model_index.json", b"{}")
    touch(folder / "unet" / "w.safetensors", b"unet")
    paths, cache = setup(tmp_path)
    reg = CheckpointRegistry(paths, cache)
    info = reg.refresh()[0]
    short = reg.calculate_hash(info)
    lines = f"model_index.json\0{hashlib.sha256(b'{}').hexdigest()}\nunet/w.safetensors\0{hashlib.sha256(b'unet').hexdigest()}\n"
    assert info.sha256 == hashlib.sha256(lines.encode()).hexdigest() and short == info.sha256[:10]
    assert info.title == f"pipe [{short}]"
    # after a refresh the composite hash comes back from the cache
    assert reg.refresh()[0].sha256 == info.sha256


def test_diffusers_ckpt_arg_folder(tmp_path):
    folder = tmp_path / "elsewhere" / "pipe"
    touch(folder / "model_index.json", b"{}")
    paths, cache = setup(tmp_path)
    reg = CheckpointRegistry(paths, cache, ckpt_arg=str(folder))
    assert [i.name for i in reg.refresh()] == ["pipe"] and reg.cmd_ckpt.is_diffusers_folder


def test_symlinks(tmp_path):
    sd = tmp_path / "models" / "Stable-diffusion"
    real = touch(tmp_path / "store" / "real.safetensors")
    touch(tmp_path / "store2" / "linked_dir_model.ckpt")
    sd.mkdir(parents=True)
    os.symlink(real, sd / "link.safetensors")
    os.symlink(tmp_path / "store2", sd / "dirlink")
    os.symlink(tmp_path / "gone.safetensors", sd / "broken.safetensors")
    os.symlink(sd, sd / "dirlink" / "loop")  # a cycle must not hang the walk
    paths, cache = setup(tmp_path)
    infos = CheckpointRegistry(paths, cache).refresh()
    names = [i.name for i in infos]
    assert names == ["link.safetensors", "dirlink/linked_dir_model.ckpt"]  # no broken link, no loop
    assert infos[0].filename == str(sd / "link.safetensors")


def make_registry(tmp_path):
    sd = tmp_path / "models" / "Stable-diffusion"
    data = os.urandom(0x100000 + 0x10000)
    touch(sd / "anything-v3.safetensors", data)
    touch(sd / "sub" / "anything-v3-pruned.ckpt", b"other")
    touch(sd / "realistic.safetensors", b"third")
    paths, cache = setup(tmp_path)
    reg = CheckpointRegistry(paths, cache)
    reg.refresh()
    return reg, data


def test_aliases_before_hashing(tmp_path):
    reg, _ = make_registry(tmp_path)
    a = reg.get_closest("anything-v3.safetensors")
    assert a.name == "anything-v3.safetensors"
    assert reg.get_closest("anything-v3") is a  # name_for_extra / model_name
    assert reg.get_closest("sub_anything-v3-pruned").name == "sub/anything-v3-pruned.ckpt"  # model_name
    assert reg.get_closest("anything-v3-pruned").name == "sub/anything-v3-pruned.ckpt"  # name_for_extra
    assert reg.get_closest("realis").name == "realistic.safetensors"  # title contains
    assert reg.get_closest("anything") is a  # shortest title containing it
    assert reg.get_closest("realistic.safetensors [0123456789]").name == "realistic.safetensors"  # [..] stripped
    assert reg.get_closest("nothing") is None and reg.get_closest("") is None and reg.get_closest(None) is None


def test_old_hash_alias_is_computed_lazily(tmp_path):
    reg, data = make_registry(tmp_path)
    old = hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
    a = reg.get_closest(old)
    assert a is not None and a.name == "anything-v3.safetensors" and a.hash == old
    assert reg.get_closest(f"anything-v3.safetensors [{old}]") is a


def test_calculate_hash_retitles_and_adds_aliases(tmp_path):
    reg, data = make_registry(tmp_path)
    a = reg.get_closest("anything-v3.safetensors")
    sha = hashlib.sha256(data).hexdigest()
    assert reg.calculate_hash(a) == sha[:10]
    assert a.sha256 == sha and a.shorthash == sha[:10]
    assert a.title == f"anything-v3.safetensors [{sha[:10]}]"
    assert a.short_title == f"anything-v3 [{sha[:10]}]"
    assert reg.titles()[0] == a.title  # keeps its place
    for q in (sha[:10], sha, a.title, f"anything-v3 [{sha[:10]}]", "anything-v3.safetensors"):
        assert reg.get_closest(q) is a, q
    # a refresh takes the sha256 from the cache without reading the file
    infos = CheckpointRegistry(reg.paths, HashCache(tmp_path / "cache" / "hashes.json")).refresh()
    assert infos[0].title == a.title and infos[0].sha256 == sha


def test_no_hashing(tmp_path):
    sd = tmp_path / "models" / "Stable-diffusion"
    touch(sd / "m.safetensors")
    paths, _ = setup(tmp_path)
    reg = CheckpointRegistry(paths, HashCache(None, enabled=False))
    info = reg.refresh()[0]
    assert reg.calculate_hash(info) is None and info.title == "m.safetensors"


def test_metadata_is_lazy_and_drops_thumbnail(tmp_path):
    import json
    import struct
    header = json.dumps({"__metadata__": {"modelspec.thumbnail": "data:...", "ss_x": "1", "j": '{"a": 1}'}}).encode()
    sd = tmp_path / "models" / "Stable-diffusion"
    touch(sd / "m.safetensors", struct.pack("<Q", len(header)) + header)
    paths, cache = setup(tmp_path)
    info = CheckpointRegistry(paths, cache).refresh()[0]
    assert info._metadata is None
    assert info.metadata == {"ss_x": "1", "j": {"a": 1}}


# ---- VAE ---------------------------------------------------------------------------------------

def vae_setup(tmp_path, *argv):
    m = tmp_path / "models"
    touch(m / "Stable-diffusion" / "anime.safetensors")
    touch(m / "Stable-diffusion" / "anime.vae.pt")
    touch(m / "Stable-diffusion" / "plain.ckpt")  # not a VAE: no .vae. in its name
    touch(m / "VAE" / "vae-ft-mse-840000.safetensors")
    touch(m / "VAE" / "sub" / "kl-f8.ckpt")
    touch(m / "VAE" / "sdxl_vae10.safetensors")
    touch(m / "VAE" / "sdxl_vae9.safetensors")
    touch(m / "VAE" / "readme.txt")
    paths, _ = setup(tmp_path, *argv)
    vl = VaeRegistry(paths)
    vl.refresh()
    return vl, m


def test_vae_listing(tmp_path):
    vl, m = vae_setup(tmp_path)
    assert vl.names() == ["anime.vae.pt", "kl-f8.ckpt", "sdxl_vae9.safetensors", "sdxl_vae10.safetensors",
                          "vae-ft-mse-840000.safetensors"]
    assert vl.get("kl-f8.ckpt") == str(m / "VAE" / "sub" / "kl-f8.ckpt")
    assert vl.choices()[:2] == ["Automatic", "None"]


def test_vae_listing_extra_dirs(tmp_path):
    touch(tmp_path / "ck" / "x.vae.safetensors")
    touch(tmp_path / "ck" / "x.safetensors")
    touch(tmp_path / "vd" / "mine.PT")
    touch(tmp_path / "vd" / "kl-f8.ckpt")  # same basename: the later folder wins
    vl, _ = vae_setup(tmp_path, "--ckpt-dir", str(tmp_path / "ck"), "--vae-dir", str(tmp_path / "vd"))
    names = vl.names()
    assert "x.vae.safetensors" in names and "x.safetensors" not in names and "mine.PT" in names
    assert vl.get("kl-f8.ckpt") == str(tmp_path / "vd" / "kl-f8.ckpt")


def test_resolve_vae_order(tmp_path):
    vl, m = vae_setup(tmp_path)
    anime = str(m / "Stable-diffusion" / "anime.safetensors")
    plain = str(m / "Stable-diffusion" / "plain.ckpt")
    mse = vl.get("vae-ft-mse-840000.safetensors")
    near = vl.get("anime.vae.pt")
    # 1. --vae-path always wins
    assert vl.resolve_vae(anime, "None", vae_path_arg="/x/v.pt") == ("/x/v.pt", SOURCE_ARG)
    # 2. a setting that overrides per-model preferences
    assert vl.resolve_vae(anime, "vae-ft-mse-840000.safetensors") == (mse, SOURCE_SETTINGS)
    assert vl.resolve_vae(anime, "None") == (None, SOURCE_SETTINGS)
    assert vl.resolve_vae(anime, "vae-ft-mse-840000.safetensors", user_metadata_vae="kl-f8.ckpt") == (mse, SOURCE_SETTINGS)
    # 3. user metadata, when the setting is Automatic
    assert vl.resolve_vae(anime, "Automatic", user_metadata_vae="kl-f8.ckpt") == (vl.get("kl-f8.ckpt"), SOURCE_METADATA)
    assert vl.resolve_vae(anime, "Automatic", user_metadata_vae="None") == (None, SOURCE_METADATA)
    assert vl.resolve_vae(anime, "Automatic", user_metadata_vae="Automatic") == (near, SOURCE_NEAR)
    # 4. near the checkpoint
    assert vl.resolve_vae(anime, "Automatic") == (near, SOURCE_NEAR)
    # 5. nothing found: the baked VAE
    assert vl.resolve_vae(plain, "Automatic") == (None, SOURCE_BAKED)


def test_resolve_vae_without_override(tmp_path):
    vl, m = vae_setup(tmp_path)
    anime = str(m / "Stable-diffusion" / "anime.safetensors")
    plain = str(m / "Stable-diffusion" / "plain.ckpt")
    mse = vl.get("vae-ft-mse-840000.safetensors")
    # per-model preferences first, then the setting
    assert vl.resolve_vae(anime, "vae-ft-mse-840000.safetensors", overrides_per_model=False) == (vl.get("anime.vae.pt"), SOURCE_NEAR)
    assert vl.resolve_vae(anime, "vae-ft-mse-840000.safetensors", overrides_per_model=False,
                          user_metadata_vae="kl-f8.ckpt") == (vl.get("kl-f8.ckpt"), SOURCE_METADATA)
    assert vl.resolve_vae(plain, "vae-ft-mse-840000.safetensors", overrides_per_model=False) == (mse, SOURCE_SETTINGS)
    assert vl.resolve_vae(plain, "None", overrides_per_model=False) == (None, SOURCE_SETTINGS)


def test_resolve_vae_unknown_name(tmp_path):
    vl, m = vae_setup(tmp_path)
    with pytest.raises(ValueError) as e:
        vl.resolve_vae(str(m / "Stable-diffusion" / "plain.ckpt"), "nope.pt")
    assert "nope.pt" in str(e.value) and "vae-ft-mse-840000.safetensors" in str(e.value) and "Automatic" in str(e.value)
    # an unknown name in user metadata is skipped
    anime = str(m / "Stable-diffusion" / "anime.safetensors")
    assert vl.resolve_vae(anime, "Automatic", user_metadata_vae="gone.pt") == (vl.get("anime.vae.pt"), SOURCE_NEAR)


def test_info_for_path_is_not_registered(tmp_path):
    touch(tmp_path / "models" / "Stable-diffusion" / "a.safetensors")
    other = touch(tmp_path / "builtin" / "tiny.safetensors")
    paths, cache = setup(tmp_path)
    reg = CheckpointRegistry(paths, cache)
    reg.refresh()
    info = reg.info_for_path(other)
    assert info.name == "tiny.safetensors" and info.filename == str(other)
    assert reg.titles() == ["a.safetensors"] and reg.get_closest("tiny") is None
