"""modules/safe_load.py: tensors in, code never run."""
from __future__ import annotations

import collections
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from modules.models.safe_load import (
    CheckpointLoadError,
    load_state_dict,
    read_safetensors_header,
    read_safetensors_metadata,
    read_safetensors_shapes,
    torch_load_safe,
)


@pytest.fixture
def tensors():
    g = torch.Generator().manual_seed(0)
    return {"a.weight": torch.randn(4, 3, generator=g), "b.bias": torch.arange(5, dtype=torch.int64),
            "c": torch.randn(2, dtype=torch.float16, generator=g)}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


# --- safetensors -----------------------------------------------------------------------------

def test_safetensors_roundtrip_and_header(tmp_path, tensors):
    p = tmp_path / "m.safetensors"
    save_file(tensors, p, metadata={"ss_output_name": "x", "modelspec.title": "T"})
    assert _same(load_state_dict(p), tensors)
    assert read_safetensors_metadata(p) == {"ss_output_name": "x", "modelspec.title": "T"}
    assert read_safetensors_shapes(p) == {"a.weight": (4, 3), "b.bias": (5,), "c": (2,)}
    assert set(read_safetensors_header(p)) == {"__metadata__", "a.weight", "b.bias", "c"}


def test_metadata_absent_is_empty(tmp_path, tensors):
    p = tmp_path / "m.safetensors"
    save_file(tensors, p)
    assert read_safetensors_metadata(p) == {}


def test_metadata_reads_only_the_header(tmp_path, monkeypatch, tensors):
    p = tmp_path / "m.safetensors"
    save_file(tensors, p, metadata={"k": "v"})
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "load_file", lambda *a, **k: pytest.fail("loaded the tensors"))
    assert read_safetensors_metadata(p) == {"k": "v"}


@pytest.mark.parametrize("cut", [3, 20, -1])
def test_truncated_safetensors(tmp_path, tensors, cut):
    p = tmp_path / "m.safetensors"
    save_file(tensors, p)
    data = p.read_bytes()
    p.write_bytes(data[:cut] if cut > 0 else data[:cut - 8])
    with pytest.raises(CheckpointLoadError) as ei:
        load_state_dict(p)
    assert ei.value.path == str(p) and str(p) in str(ei.value)
    assert "truncated" in ei.value.reason or "not a safetensors" in ei.value.reason


def test_corrupt_safetensors_header(tmp_path):
    p = tmp_path / "junk.safetensors"
    p.write_bytes((40).to_bytes(8, "little") + b"{this is not json at all......}xxxxxxxxxxxxxxxx")
    with pytest.raises(CheckpointLoadError, match="corrupt"):
        load_state_dict(p)
    with pytest.raises(CheckpointLoadError):
        read_safetensors_metadata(p)


def test_empty_safetensors_has_no_tensors(tmp_path):
    p = tmp_path / "empty.safetensors"
    save_file({}, p)
    with pytest.raises(CheckpointLoadError, match="no tensors"):
        load_state_dict(p)


def test_missing_file(tmp_path):
    p = tmp_path / "nope.safetensors"
    with pytest.raises(CheckpointLoadError) as ei:
        load_state_dict(p)
    err = ei.value
    assert isinstance(err, ValueError)
    assert err.path == str(p) and err.reason == "file not found"
    assert str(p) in str(err)
    with pytest.raises(CheckpointLoadError, match="file not found"):
        load_state_dict(tmp_path / "nope.ckpt")


def test_error_pickles(tmp_path):
    e = CheckpointLoadError("/x/y.ckpt", "because")
    e2 = pickle.loads(pickle.dumps(e))
    assert (e2.path, e2.reason, str(e2)) == (e.path, e.reason, str(e))


# --- pickles ---------------------------------------------------------------------------------

def test_ckpt_state_dict_unwrapped(tmp_path, tensors):
    p = tmp_path / "m.ckpt"
    torch.save({"state_dict": tensors, "global_step": 470000, "epoch": 3}, p)
    assert _same(load_state_dict(p), tensors)


@pytest.mark.parametrize("suffix", [".pt", ".bin", ".pth"])
def test_plain_tensor_dict(tmp_path, tensors, suffix):
    p = tmp_path / f"m{suffix}"
    torch.save(tensors, p)
    assert _same(load_state_dict(p), tensors)


def test_legacy_serialization(tmp_path, tensors):
    p = tmp_path / "old.ckpt"
    torch.save({"state_dict": tensors}, p, _use_new_zipfile_serialization=False)
    assert _same(load_state_dict(p), tensors)


def test_reference_ui_allowlist(tmp_path, tensors, monkeypatch):
    """numpy scalars/arrays, OrderedDict, set and pytorch_lightning's ModelCheckpoint class
    (a dict key in old training checkpoints) load, as in the reference UI's safe unpickler."""
    mod = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class ModelCheckpoint:
        pass

    ModelCheckpoint.__module__ = mod.__name__
    ModelCheckpoint.__qualname__ = "ModelCheckpoint"
    mod.ModelCheckpoint = ModelCheckpoint
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", mod.__name__):
        monkeypatch.setitem(sys.modules, name, mod if name == mod.__name__ else types.ModuleType(name))
    p = tmp_path / "train.ckpt"
    torch.save({"state_dict": collections.OrderedDict(tensors), "global_step": np.int64(5),
                "hist": np.zeros(3, dtype=np.float32), "dt": np.dtype("float32"), "tags": {"a", "b"},
                "callbacks": {ModelCheckpoint: {"best_model_score": torch.tensor(0.5), "monitor": None}}}, p)
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", mod.__name__):
        monkeypatch.delitem(sys.modules, name)
    assert _same(load_state_dict(p), tensors)
    obj = torch_load_safe(p)
    assert obj["global_step"] == 5 and obj["tags"] == {"a", "b"}


class _Evil:
    """Unpickling this would run exec() and create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _check_refused(p, marker, global_name):
    with pytest.raises(CheckpointLoadError) as ei:
        load_state_dict(p)
    assert not marker.exists(), "the malicious pickle ran code"
    assert ei.value.path == str(p)
    assert ei.value.reason.startswith("refused:")
    if global_name:
        assert f"the pickle references {global_name}" in ei.value.reason
    assert "--disable-safe-unpickle" in ei.value.reason
    return ei.value


def test_malicious_torch_save_runs_no_code(tmp_path, tensors):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.ckpt"
    torch.save({"state_dict": tensors, "payload": _Evil(marker)}, p)
    _check_refused(p, marker, "builtins.exec")
    with pytest.raises(CheckpointLoadError):
        torch_load_safe(p)
    assert not marker.exists()


def test_malicious_legacy_and_raw_pickles_run_no_code(tmp_path, tensors):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil_legacy.pt"
    torch.save({"x": _Evil(marker)}, p, _use_new_zipfile_serialization=False)
    _check_refused(p, marker, "builtins.exec")
    for proto in (2, 4):
        p = tmp_path / f"evil_raw{proto}.pt"
        with open(p, "wb") as f:
            pickle.dump({"x": _Evil(marker)}, f, protocol=proto)
        _check_refused(p, marker, None)


def test_malicious_pickle_inside_zip_member(tmp_path, tensors):
    """A hand-made torch zip whose data.pkl holds the payload."""
    marker = tmp_path / "pwned"
    good = tmp_path / "good.pt"
    torch.save(tensors, good)
    p = tmp_path / "evil.pt"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(p, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("data.pkl"):
                data = pickle.dumps({"x": _Evil(marker)}, protocol=2)
            zout.writestr(item, data)
    _check_refused(p, marker, "builtins.exec")


def test_other_globals_need_the_unsafe_switch(tmp_path):
    import argparse

    p = tmp_path / "hparams.pt"  # old training checkpoints keep their hyper-parameters like this
    torch.save({"w": torch.ones(2), "hparams": argparse.Namespace(lr=1e-4)}, p)
    with pytest.raises(CheckpointLoadError, match="the pickle references argparse.Namespace"):
        load_state_dict(p)
    sd = load_state_dict(p, allow_unsafe_pickle=True)
    assert list(sd) == ["w"] and torch.equal(sd["w"], torch.ones(2))


@pytest.mark.parametrize("cut", [10, 200, -30])
def test_truncated_ckpt(tmp_path, tensors, cut):
    p = tmp_path / "cut.ckpt"
    torch.save({"state_dict": tensors}, p)
    data = p.read_bytes()
    p.write_bytes(data[:cut])
    with pytest.raises(CheckpointLoadError) as ei:
        load_state_dict(p)
    assert ei.value.path == str(p)
    assert "corrupt" in ei.value.reason or "truncated" in ei.value.reason


def test_garbage_and_empty_ckpt(tmp_path):
    p = tmp_path / "garbage.ckpt"
    p.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointLoadError):
        load_state_dict(p)
    e = tmp_path / "empty.ckpt"
    e.write_bytes(b"")
    with pytest.raises(CheckpointLoadError, match="empty"):
        load_state_dict(e)


def test_pickle_without_tensors(tmp_path):
    p = tmp_path / "notensors.pt"
    torch.save({"a": 1, "b": "two"}, p)
    with pytest.raises(CheckpointLoadError, match="no tensors"):
        load_state_dict(p)


def test_unknown_suffix_needs_the_unsafe_switch(tmp_path, tensors):
    p = tmp_path / "weights.data"
    torch.save(tensors, p)
    with pytest.raises(CheckpointLoadError, match="unknown file type"):
        load_state_dict(p)
    assert _same(load_state_dict(p, allow_unsafe_pickle=True), tensors)
