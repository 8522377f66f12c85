"""Hash vectors (spec §13.2) and the persistent hash cache."""
import hashlib
import json
import logging
import os
import struct
import threading

import pytest

from modules.core import fileio
from modules.models import hashes
from modules.models.hashes import HashCache, addnet_hash_safetensors, old_model_hash, sha256_file

LOKR = "lora/lycoris_lokr_sd15/smart_falcon_4_lokr.safetensors"


def test_sha256_known_vectors(tmp_path):
    f = tmp_path / "abc.bin"
    f.write_bytes(b"abc")
    assert sha256_file(f) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert sha256_file(empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    # larger than one block: same as hashlib on the whole content
    big = tmp_path / "big"
    data = bytes(range(256)) * (5 * 4096 + 17)
    big.write_bytes(data)
    assert sha256_file(big) == hashlib.sha256(data).hexdigest()


def test_old_model_hash(tmp_path):
    f = tmp_path / "m.ckpt"
    data = os.urandom(0x100000 + 0x10000 + 100)
    f.write_bytes(data)
    assert old_model_hash(f) == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
    small = tmp_path / "small.ckpt"
    small.write_bytes(b"x" * 10)
    assert old_model_hash(small) == "e3b0c442"  # nothing at 1 MiB: sha256 of b""
    assert old_model_hash(tmp_path / "missing.ckpt") == "NOFILE"


def test_addnet_hash_real_lokr_matches_its_metadata(real_fixtures):
    path = real_fixtures / LOKR
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        meta = json.loads(f.read(n))["__metadata__"]
    assert addnet_hash_safetensors(path) == meta["sshs_model_hash"]
    assert old_model_hash(path) == meta["sshs_legacy_hash"]


def test_addnet_hash_synthetic(tmp_path):
    header = b'{"__metadata__":{"a":"b"}}'
    body = b"\x01\x02\x03" * 1000
    f = tmp_path / "x.safetensors"
    f.write_bytes(struct.pack("<Q", len(header)) + header + body)
    assert addnet_hash_safetensors(f) == hashlib.sha256(body).hexdigest()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(ValueError):
        addnet_hash_safetensors(bad)


def counting(monkeypatch, name):
    calls = []
    real = getattr(hashes, name)

    def wrapper(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(hashes, name, wrapper)
    return calls


def test_cache_reuses_hash_without_reading_file(tmp_path, monkeypatch):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"hello")
    calls = counting(monkeypatch, "sha256_file")
    cache = HashCache(tmp_path / "cache" / "hashes.json")
    expected = hashlib.sha256(b"hello").hexdigest()
    assert cache.get_sha256(f, "checkpoint/model.safetensors") == expected
    assert cache.get_sha256(f, "checkpoint/model.safetensors") == expected
    assert len(calls) == 1
    # persisted: a new cache object does not read the file either
    cache2 = HashCache(tmp_path / "cache" / "hashes.json")
    assert cache2.cached(f, "checkpoint/model.safetensors") == expected
    assert cache2.get_sha256(f, "checkpoint/model.safetensors") == expected
    assert len(calls) == 1
    # another title is another entry
    assert cache2.get_sha256(f, "lora/model") == expected
    assert len(calls) == 2


def test_cache_recomputes_after_change(tmp_path, monkeypatch):
    f = tmp_path / "model.ckpt"
    f.write_bytes(b"one")
    calls = counting(monkeypatch, "sha256_file")
    cache = HashCache(tmp_path / "hashes.json")
    assert cache.get_sha256(f, "checkpoint/model.ckpt") == hashlib.sha256(b"one").hexdigest()
    f.write_bytes(b"two")  # same size, different content
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert cache.cached(f, "checkpoint/model.ckpt") is None
    assert cache.get_sha256(f, "checkpoint/model.ckpt") == hashlib.sha256(b"two").hexdigest()
    assert len(calls) == 2


def test_cache_addnet_and_sha256_share_an_entry(tmp_path, monkeypatch):
    header = b'{"__metadata__":{}}'
    f = tmp_path / "l.safetensors"
    f.write_bytes(struct.pack("<Q", len(header)) + header + b"weights")
    calls = counting(monkeypatch, "addnet_hash_safetensors")
    cache = HashCache(tmp_path / "hashes.json")
    assert cache.get_addnet(f, "lora/l") == hashlib.sha256(b"weights").hexdigest()
    assert cache.get_addnet(f, "lora/l") == hashlib.sha256(b"weights").hexdigest()
    assert len(calls) == 1
    assert cache.get_sha256(f, "lora/l") == sha256_file(f)
    entry = json.loads((tmp_path / "hashes.json").read_text())["hashes"]["lora/l"][str(f)]
    assert set(entry) == {"size", "mtime_ns", "sha256", "addnet"}


def test_cache_corrupt_file_is_ignored_and_rebuilt(tmp_path, caplog):
    f = tmp_path / "m.ckpt"
    f.write_bytes(b"data")
    store = tmp_path / "hashes.json"
    store.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        cache = HashCache(store)
    assert "hash cache" in caplog.text
    assert cache.get_sha256(f, "checkpoint/m.ckpt") == hashlib.sha256(b"data").hexdigest()
    saved = json.loads(store.read_text())
    assert saved["version"] == 1 and str(f) in saved["hashes"]["checkpoint/m.ckpt"]
    # a valid JSON of the wrong shape is treated the same way
    store.write_text("[1, 2]")
    assert HashCache(store).cached(f, "checkpoint/m.ckpt") is None


def test_cache_disabled_reads_nothing(tmp_path, monkeypatch):
    f = tmp_path / "m.ckpt"
    f.write_bytes(b"data")
    calls = counting(monkeypatch, "sha256_file")
    store = tmp_path / "hashes.json"
    cache = HashCache(store, enabled=False)
    assert cache.get_sha256(f, "checkpoint/m.ckpt") is None
    assert cache.get_addnet(f, "lora/m") is None
    assert cache.cached(f, "checkpoint/m.ckpt") is None
    assert calls == [] and not store.exists()


def test_cache_missing_file(tmp_path):
    assert HashCache(tmp_path / "h.json").get_sha256(tmp_path / "nope", "checkpoint/nope") is None


def test_cache_threads_compute_once(tmp_path, monkeypatch):
    f = tmp_path / "m.ckpt"
    f.write_bytes(os.urandom(3 * 1024 * 1024))
    calls = counting(monkeypatch, "sha256_file")
    cache = HashCache(tmp_path / "h.json")
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_sha256(f, "checkpoint/m.ckpt"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 8
    assert len(calls) == 1


def test_cache_in_memory(tmp_path):
    f = tmp_path / "m.ckpt"
    f.write_bytes(b"data")
    cache = HashCache(None)
    assert cache.get_sha256(f, "x") == hashlib.sha256(b"data").hexdigest()
    assert list(tmp_path.iterdir()) == [f]


def test_atomic_json_leaves_no_temp_on_failure(tmp_path):
    target = tmp_path / "out.json"
    fileio.atomic_write_json(target, {"a": "é"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": "é"}
    with pytest.raises(TypeError):
        fileio.atomic_write_json(target, {"a": object()})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": "é"}  # old content intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_write_failure_during_replace_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        fileio.atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_read_json(tmp_path):
    assert fileio.read_json(tmp_path / "missing.json", {"d": 1}) == {"d": 1}
    fileio.atomic_write_text(tmp_path / "t.json", '{"x": [1]}')
    assert fileio.read_json(tmp_path / "t.json", None) == {"x": [1]}
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError):
        fileio.read_json(tmp_path / "bad.json", None)
