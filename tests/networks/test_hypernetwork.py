"""modules/networks/hypernetwork.py + hypernet_attention.py: A1111 hypernetworks on diffusers.

References here are independent of the code under test: MLP outputs are recomputed from the saved
tensors with plain torch.nn.functional ops following spec §1.2/§1.3, and UNet outputs with a
hypernetwork are recomputed with the stock processor plus forward pre-hooks on to_k/to_v.
"""
from __future__ import annotations

import copy
import os
import pickle

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from modules.networks.hypernet_attention import HypernetworkAttnProcessor, HypernetworkPatch
from modules.networks.hypernetwork import (
    Hypernetwork,
    HypernetworkLoadError,
    HypernetworkModule,
    activation_classes,
    apply_hypernetworks,
)
from tests.hypernet_files import write_hypernetwork, write_old_hypernetwork
from tests.tiny_models import TINY_TEXT_WIDTH, tiny_sd1, tiny_sdxl

# --------------------------------------------------------------------------------------------
# independent reference forward (spec §1.2 layout, §1.3 math)

_REF_ACT = {
    None: None, "linear": None, "relu": F.relu, "swish": F.hardswish, "tanh": torch.tanh, "gelu": F.gelu,
    "mish": F.mish, "softsign": F.softsign, "sigmoid": torch.sigmoid, "leakyrelu": F.leaky_relu, "elu": F.elu,
}


def _meta(saved: dict) -> dict:
    ls = saved.get("layer_structure", [1, 2, 1])
    ds = saved.get("dropout_structure")
    if ds is None:
        use = saved.get("use_dropout", False)
        ds = [0] * len(ls) if not use else (
            [0] + [0.3] * (len(ls) - 3) + [0.3 if saved.get("last_layer_dropout", False) else 0] + [0])
    return {"ls": ls, "act": _REF_ACT[saved.get("activation_func")], "ln": saved.get("is_layer_norm", False),
            "act_out": saved.get("activate_output", True), "ds": ds}


def ref_mlp(sd: dict, x: torch.Tensor, meta: dict) -> torch.Tensor:
    if "linear1.weight" in sd:  # oldest layout: Linear, Linear
        return F.linear(F.linear(x, sd["linear1.weight"], sd["linear1.bias"]), sd["linear2.weight"], sd["linear2.bias"])
    idx, used, h = 0, set(), x
    steps = len(meta["ls"]) - 1
    for i in range(steps):
        w, b = f"linear.{idx}.weight", f"linear.{idx}.bias"
        h = F.linear(h, sd[w].to(x.dtype), sd[b].to(x.dtype))
        used |= {w, b}
        idx += 1
        if meta["act"] is not None and (i < steps - 1 or meta["act_out"]):
            h = meta["act"](h)
            idx += 1
        if meta["ln"]:
            w, b = f"linear.{idx}.weight", f"linear.{idx}.bias"
            h = F.layer_norm(h, (h.shape[-1],), sd[w].to(x.dtype), sd[b].to(x.dtype), eps=1e-5)
            used |= {w, b}
            idx += 1
        if meta["ds"][i + 1] > 0:
            idx += 1  # Dropout slot, identity at inference
    assert used == set(sd), "the reference layout must consume every saved tensor"
    return h


def ref_apply(saved: dict, which: int, x: torch.Tensor, multiplier: float) -> torch.Tensor:
    pair = saved.get(x.shape[-1])
    if pair is None:
        return x
    return x + ref_mlp(pair[which], x, _meta(saved)) * multiplier


def _x(width: int, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(2, 5, width, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --------------------------------------------------------------------------------------------
# loading: every structure equals the reference forward

CASES = {
    "121-linear": dict(layer_structure=(1, 2, 1), activation_func="linear"),
    "121-none": dict(layer_structure=(1, 2, 1), activation_func=None),
    "121-relu-ln": dict(layer_structure=(1, 2, 1), activation_func="relu", is_layer_norm=True),
    "121-swish": dict(layer_structure=(1, 2, 1), activation_func="swish"),
    "1.5-tanh-noact-out": dict(layer_structure=(1, 1.5, 1.5, 1), activation_func="tanh", activate_output=False),
    "1.5-gelu-ln-absent-act-out": dict(layer_structure=(1, 1.5, 1.5, 1), activation_func="gelu",
                                       is_layer_norm=True, omit=("activate_output",)),
    "1221-mish-dropout": dict(layer_structure=(1, 2, 2, 1), activation_func="mish", use_dropout=True,
                              last_layer_dropout=True),
    "1221-softsign-ln-dropout-derived": dict(layer_structure=(1, 2, 2, 1), activation_func="softsign",
                                             is_layer_norm=True, use_dropout=True, omit=("dropout_structure",)),
    "1221-relu-explicit-dropout": dict(layer_structure=(1, 2, 2, 1), activation_func="relu",
                                       dropout_structure=(0, 0.1, 0.25, 0.2), activate_output=False),
    "1221-tanh-as-list": dict(layer_structure=(1, 2, 2, 1), activation_func="tanh", as_list=True,
                              omit=("activate_output", "use_dropout", "last_layer_dropout", "dropout_structure")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_loaded_mlps_equal_reference(tmp_path, case):
    kwargs = dict(CASES[case])
    path = tmp_path / f"{case}.pt"
    saved = write_hypernetwork(path, (32, 48), seed=sorted(CASES).index(case), **kwargs)
    hn = Hypernetwork.load(path)
    assert hn.widths() == [32, 48]
    assert set(hn.layers) == {32, 48}
    for width in (32, 48):
        x = _x(width)
        for which in (0, 1):
            module = hn.layers[width][which]
            assert isinstance(module, HypernetworkModule) and isinstance(module.linear, torch.nn.Sequential)
            for mult in (1.0, 0.7, -1.5, 3.0):
                got = module(x, mult)
                want = ref_apply(saved, which, x, mult)
                torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
                # the hypernetwork really changes its input (the test would be vacuous otherwise)
                assert (got - x).abs().max() > 1e-2
        # key and value MLPs are different networks
        assert not torch.allclose(hn.layers[width][0](x, 1.0), hn.layers[width][1](x, 1.0))
    # no Dropout ever fires: eval mode, deterministic
    assert all(not m.training for pair in hn.layers.values() for mod in pair for m in mod.modules())
    x = _x(32)
    assert torch.equal(hn.layers[32][0](x, 1.0), hn.layers[32][0](x, 1.0))


def test_metadata_and_defaults(tmp_path):
    path = tmp_path / "meta_file.pt"
    write_hypernetwork(path, (32,), layer_structure=(1, 2, 2, 1), activation_func="relu", is_layer_norm=True,
                       use_dropout=True, last_layer_dropout=True, name="trained name", step=1234,
                       sd_checkpoint="0123456789", sd_checkpoint_name="sd15", optional_info="hello",
                       weight_initialization="XavierNormal")
    hn = Hypernetwork.load(path)
    assert hn.name == "trained name" and hn.stem == "meta_file" and hn.filename == str(path)
    assert hn.layer_structure == [1, 2, 2, 1] and hn.activation_func == "relu" and hn.is_layer_norm
    assert hn.dropout_structure == [0, 0.3, 0.3, 0] and hn.use_dropout and hn.last_layer_dropout
    assert hn.step == 1234 and hn.sd_checkpoint == "0123456789" and hn.sd_checkpoint_name == "sd15"
    assert hn.optional_info == "hello" and hn.weight_initialization == "XavierNormal"
    # Dropout slots are present in the layout (index-bearing) but inert
    kinds = [type(m).__name__ for m in hn.layers[32][0].linear]
    assert kinds == ["Linear", "ReLU", "LayerNorm", "Dropout", "Linear", "ReLU", "LayerNorm", "Dropout",
                     "Linear", "ReLU", "LayerNorm"]

    bare = tmp_path / "bare.pt"
    write_hypernetwork(bare, (32,), activation_func="relu", omit=(
        "name", "step", "layer_structure", "activate_output", "is_layer_norm", "dropout_structure", "use_dropout",
        "last_layer_dropout", "sd_checkpoint", "sd_checkpoint_name", "optional_info", "weight_initialization"))
    hn = Hypernetwork.load(bare)
    assert hn.name == "bare" and hn.step == 0 and hn.layer_structure == [1, 2, 1]
    assert hn.activate_output is True and hn.is_layer_norm is False and hn.dropout_structure == [0, 0, 0]
    assert hn.sd_checkpoint is None and hn.optional_info is None and hn.weight_initialization == "Normal"
    assert [type(m).__name__ for m in hn.layers[32][0].linear] == ["Linear", "ReLU", "Linear", "ReLU"]


def test_derived_dropout_structure_without_last_layer(tmp_path):
    path = tmp_path / "d.pt"
    saved = write_hypernetwork(path, (32,), layer_structure=(1, 2, 2, 1), use_dropout=True,
                               omit=("dropout_structure",))
    hn = Hypernetwork.load(path)
    assert hn.dropout_structure == [0, 0.3, 0, 0]
    assert [type(m).__name__ for m in hn.layers[32][1].linear] == ["Linear", "Dropout", "Linear", "Linear"]
    torch.testing.assert_close(hn.layers[32][1](_x(32), 0.5), ref_apply(saved, 1, _x(32), 0.5))


def test_old_linear1_linear2_layout(tmp_path):
    path = tmp_path / "old.pt"
    saved = write_old_hypernetwork(path, (32, 64), seed=4)
    hn = Hypernetwork.load(path)
    assert hn.widths() == [32, 64] and hn.name == "old" and hn.layer_structure == [1, 2, 1]
    for width in (32, 64):
        assert [type(m).__name__ for m in hn.layers[width][0].linear] == ["Linear", "Linear"]
        for which in (0, 1):
            x = _x(width, seed=width)
            torch.testing.assert_close(hn.layers[width][which](x, 0.9), ref_apply(saved, which, x, 0.9))


def test_fp16_file_loads_and_dtype_handling(tmp_path):
    path = tmp_path / "half.pt"
    saved = write_hypernetwork(path, (32,), activation_func="tanh", dtype=torch.float16)
    hn = Hypernetwork.load(path)
    assert hn.dtype == torch.float32  # built in float32, the saved halves copied in
    x = _x(32)
    torch.testing.assert_close(hn.layers[32][0](x, 1.0), ref_apply(saved, 0, x, 1.0))
    # computes in the hypernetwork's dtype, returns the context's dtype
    hn.to("cpu", torch.float64)
    assert hn.dtype == torch.float64 and hn.layers[32][0].linear[0].weight.dtype == torch.float64
    got = hn.layers[32][0](x, 1.0)
    assert got.dtype == torch.float32
    x64 = x.double()
    want = (x64 + ref_mlp({k: v.double() for k, v in saved[32][0].items()}, x64, _meta(saved))).float()
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert hn.to(None, torch.float64) is hn


def test_activation_table():
    table = activation_classes()
    assert table["swish"] is torch.nn.Hardswish and table["linear"] is torch.nn.Identity
    for name in ("relu", "gelu", "mish", "softsign", "silu", "leakyrelu", "elu", "tanh", "sigmoid", "hardswish",
                 "celu", "selu", "softplus", "prelu", "threshold", "multiheadattention", "softmax2d"):
        assert name in table, name
    with pytest.raises(TypeError):
        table["relu"] = torch.nn.ReLU  # read-only


def test_multiplier_zero_is_exact_and_apply_chain(tmp_path):
    a = write_hypernetwork(tmp_path / "a.pt", (32,), activation_func="relu", seed=1)
    b = write_hypernetwork(tmp_path / "b.pt", (32, 64), activation_func="tanh", seed=2)
    ha, hb = Hypernetwork.load(tmp_path / "a.pt"), Hypernetwork.load(tmp_path / "b.pt")
    x = _x(32)
    assert torch.equal(ha.layers[32][0](x, 0.0), x)
    k, v = apply_hypernetworks([], x)
    assert k is x and v is x
    k, v = apply_hypernetworks([(ha, 0.8), (hb, -0.5)], x)
    want_k = ref_apply(b, 0, ref_apply(a, 0, x, 0.8), -0.5)
    want_v = ref_apply(b, 1, ref_apply(a, 1, x, 0.8), -0.5)
    torch.testing.assert_close(k, want_k)
    torch.testing.assert_close(v, want_v)
    k2, _ = apply_hypernetworks([(hb, -0.5), (ha, 0.8)], x)
    assert not torch.allclose(k, k2)  # order matters: they chain
    x64 = _x(64)
    k, v = apply_hypernetworks([(ha, 1.0), (hb, 2.0)], x64)  # a has no 64 layer: skipped
    torch.testing.assert_close(k, ref_apply(b, 0, x64, 2.0))
    k, v = apply_hypernetworks([(ha, 1.0)], _x(48))
    assert torch.equal(k, _x(48)) and torch.equal(v, _x(48))


# --------------------------------------------------------------------------------------------
# errors


def _rewrite(path, changes: dict | None = None, **kw):
    data = torch.load(str(path), weights_only=True)
    data.update(changes or {}, **kw)
    torch.save(data, str(path))


def test_unknown_and_unbuildable_activation(tmp_path):
    path = tmp_path / "bad_act.pt"
    write_hypernetwork(path, (32,))
    _rewrite(path, activation_func="frobnicate")
    with pytest.raises(HypernetworkLoadError) as e:
        Hypernetwork.load(path)
    assert "frobnicate" in str(e.value) and str(path) in str(e.value)
    _rewrite(path, activation_func="threshold")
    with pytest.raises(HypernetworkLoadError, match="threshold"):
        Hypernetwork.load(path)
    with pytest.raises(ValueError, match="unknown activation_func"):
        HypernetworkModule(8, activation_func="nope")


@pytest.mark.parametrize("ls", [[2, 2, 1], [1, 2, 2], [1], [], [1, -1, 1], "121", [1, "2", 1]])
def test_bad_layer_structure(tmp_path, ls):
    path = tmp_path / "bad_ls.pt"
    write_hypernetwork(path, (32,))
    _rewrite(path, layer_structure=ls)
    with pytest.raises(HypernetworkLoadError) as e:
        Hypernetwork.load(path)
    assert "layer_structure" in str(e.value) and str(path) in str(e.value)


def test_bad_dropout_structure(tmp_path):
    path = tmp_path / "bad_ds.pt"
    write_hypernetwork(path, (32,), layer_structure=(1, 2, 2, 1))
    _rewrite(path, dropout_structure=[0, 1.5, 0, 0])
    with pytest.raises(HypernetworkLoadError, match="dropout_structure"):
        Hypernetwork.load(path)
    _rewrite(path, dropout_structure=[0, 0.3])
    with pytest.raises(HypernetworkLoadError, match="dropout_structure"):
        Hypernetwork.load(path)


def test_shape_and_key_mismatch_names_file_and_width(tmp_path):
    path = tmp_path / "mismatch.pt"
    write_hypernetwork(path, (32, 48), layer_structure=(1, 2, 1))
    _rewrite(path, layer_structure=[1, 3, 1])  # tensors are [1,2,1]-shaped
    with pytest.raises(HypernetworkLoadError) as e:
        Hypernetwork.load(path)
    assert str(path) in str(e.value) and "layer 32" in str(e.value)

    write_hypernetwork(path, (32,), activation_func=None)
    _rewrite(path, activation_func="relu", activate_output=True, is_layer_norm=True)  # layout shifts
    with pytest.raises(HypernetworkLoadError, match="layer 32 .key MLP."):
        Hypernetwork.load(path)

    data = write_hypernetwork(path, (32,))
    _rewrite(path, {48: data[32]})  # a width-32 pair filed under 48
    with pytest.raises(HypernetworkLoadError, match="layer 48"):
        Hypernetwork.load(path)

    _rewrite(path, {48: (data[32][0],)})  # not a pair
    with pytest.raises(HypernetworkLoadError, match="layer 48"):
        Hypernetwork.load(path)


def test_not_a_hypernetwork(tmp_path):
    p = tmp_path / "list.pt"
    torch.save([torch.zeros(2), 3], str(p))
    with pytest.raises(HypernetworkLoadError, match="expected a dict") as e:
        Hypernetwork.load(p)
    assert str(p) in str(e.value)
    p = tmp_path / "noint.pt"
    torch.save({"layer_structure": [1, 2, 1], "768": {}, True: ({}, {})}, str(p))
    with pytest.raises(HypernetworkLoadError, match="no integer width keys"):
        Hypernetwork.load(p)
    with pytest.raises(HypernetworkLoadError, match="file not found"):
        Hypernetwork.load(tmp_path / "missing.pt")
    p = tmp_path / "trunc.pt"
    write_hypernetwork(p, (32,))
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(HypernetworkLoadError):
        Hypernetwork.load(p)


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    data = write_hypernetwork(tmp_path / "ok.pt", (32,))
    data["optional_info"] = _Evil(str(marker))
    torch.save(data, str(p))
    with pytest.raises(HypernetworkLoadError) as e:
        Hypernetwork.load(p)
    assert "refused" in str(e.value) and str(p) in str(e.value)
    assert not marker.exists()
    # a plain pickle.dump of the object (no torch zip container) is refused too
    p2 = tmp_path / "evil2.pt"
    with open(p2, "wb") as f:
        pickle.dump({768: _Evil(str(marker))}, f, protocol=2)
    with pytest.raises(HypernetworkLoadError):
        Hypernetwork.load(p2)
    assert not marker.exists()
    # the unsafe switch loads an honest file
    assert Hypernetwork.load(tmp_path / "ok.pt", allow_unsafe_pickle=True).widths() == [32]


def test_error_is_picklable():
    err = HypernetworkLoadError("/x/y.pt", "bad")
    again = pickle.loads(pickle.dumps(err))
    assert isinstance(again, ValueError) and again.path == "/x/y.pt" and str(again) == str(err)


# --------------------------------------------------------------------------------------------
# attention processor


def _attn_modules(unet):
    return [(n, m) for n, m in unet.named_modules() if isinstance(m, Attention)]


class _RefHooks:
    """Stock processor + forward pre-hooks transforming the inputs of to_k / to_v with the
    reference MLPs (the independent path). Records which (module, width) were transformed."""

    def __init__(self, unet, saved_chain):
        self.handles, self.hits = [], []
        for name, attn in _attn_modules(unet):
            for which, lin in ((0, attn.to_k), (1, attn.to_v)):
                self.handles.append(lin.register_forward_pre_hook(self._hook(name, which, saved_chain)))

    def _hook(self, name, which, chain):
        def hook(module, args):
            x = args[0]
            for saved, mult in chain:
                if x.shape[-1] in saved:
                    self.hits.append((name.rsplit(".", 1)[-1], x.shape[-1]))
                x = ref_apply(saved, which, x, mult)
            return (x,) + tuple(args[1:])
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


@pytest.fixture(scope="module")
def sd1_unet():
    return tiny_sd1(seed=5)["unet"]


@pytest.fixture(scope="module")
def sdxl_unet():
    return tiny_sdxl(seed=6)["unet"]


def _sd1_inputs():
    g = torch.Generator().manual_seed(11)
    return dict(sample=torch.randn(2, 4, 16, 16, generator=g), timestep=torch.tensor(500),
                encoder_hidden_states=torch.randn(2, 7, TINY_TEXT_WIDTH, generator=g))


def _sdxl_inputs():
    g = torch.Generator().manual_seed(12)
    return dict(sample=torch.randn(1, 4, 8, 8, generator=g), timestep=torch.tensor(300),
                encoder_hidden_states=torch.randn(1, 7, 2 * TINY_TEXT_WIDTH, generator=g),
                added_cond_kwargs={"text_embeds": torch.randn(1, TINY_TEXT_WIDTH, generator=g),
                                   "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])})


def _run(unet, inputs):
    with torch.no_grad():
        return unet(**inputs).sample


@pytest.mark.parametrize("which", ["sd1", "sdxl"])
def test_empty_processor_equals_attnprocessor2_0(request, which):
    unet = copy.deepcopy(request.getfixturevalue(f"{which}_unet"))
    inputs = _sd1_inputs() if which == "sd1" else _sdxl_inputs()
    unet.set_attn_processor(AttnProcessor2_0())
    base = _run(unet, inputs)
    unet.set_attn_processor(HypernetworkAttnProcessor([]))
    got = _run(unet, inputs)
    assert (got - base).abs().max().item() <= 1e-6


def test_unet_with_hypernetworks_equals_hooked_reference(tmp_path, sd1_unet):
    unet = copy.deepcopy(sd1_unet)
    unet.set_attn_processor(AttnProcessor2_0())
    inputs = _sd1_inputs()
    base = _run(unet, inputs)
    # a: text width 32 (= channel width of the outer blocks too); b: 64 = mid-block self-attention only
    sa = write_hypernetwork(tmp_path / "a.pt", (32,), activation_func="relu", is_layer_norm=True, seed=3,
                            scale=0.5)
    sb = write_hypernetwork(tmp_path / "b.pt", (32, 64), layer_structure=(1, 1.5, 1), activation_func="tanh",
                            seed=4, scale=0.5)
    ha, hb = Hypernetwork.load(tmp_path / "a.pt"), Hypernetwork.load(tmp_path / "b.pt")
    originals = {n: m.processor for n, m in _attn_modules(unet)}

    patch = HypernetworkPatch(unet)
    for chain in ([(ha, 0.7)], [(hb, 1.3)], [(ha, 0.7), (hb, -0.6)], [(hb, -0.6), (ha, 0.7)]):
        patch.set(chain)
        assert all(isinstance(m.processor, HypernetworkAttnProcessor) for _, m in _attn_modules(unet))
        got = _run(unet, inputs)
        patch.set([])
        hooks = _RefHooks(unet, [({h: s for h, s in ((ha, sa), (hb, sb))}[hn], mult) for hn, mult in chain])
        try:
            want = _run(unet, inputs)
        finally:
            hooks.remove()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        assert (got - base).abs().max() > 1e-3
        hit = set(hooks.hits)
        assert ("attn1", 32) in hit and ("attn2", 32) in hit  # self- and cross-attention both transformed
        if any(hn is hb for hn, _ in chain):
            assert ("attn1", 64) in hit
        else:
            assert ("attn1", 64) not in hit
    # restored objects are the very same ones
    assert all(m.processor is originals[n] for n, m in _attn_modules(unet))
    assert torch.equal(_run(unet, inputs), base)


def test_sdxl_unet_cross_attention_hypernetwork(tmp_path, sdxl_unet):
    unet = copy.deepcopy(sdxl_unet)
    inputs = _sdxl_inputs()
    width = 2 * TINY_TEXT_WIDTH
    s = write_hypernetwork(tmp_path / "x.pt", (width,), activation_func="gelu", seed=8, scale=0.5)
    hn = Hypernetwork.load(tmp_path / "x.pt")
    patch = HypernetworkPatch(unet)
    patch.set([(hn, -1.2)])
    got = _run(unet, inputs)
    patch.set([])
    hooks = _RefHooks(unet, [(s, -1.2)])
    try:
        want = _run(unet, inputs)
    finally:
        hooks.remove()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert {"attn1", "attn2"} <= {n for n, _ in hooks.hits}


def test_multiplier_zero_is_bit_exact_on_unet(tmp_path, sd1_unet):
    unet = copy.deepcopy(sd1_unet)
    inputs = _sd1_inputs()
    base = _run(unet, inputs)
    write_hypernetwork(tmp_path / "z.pt", (32, 64), activation_func="relu")
    patch = HypernetworkPatch(unet)
    patch.set([(Hypernetwork.load(tmp_path / "z.pt"), 0.0)])
    assert torch.equal(_run(unet, inputs), base)


def test_standalone_attention_features_match_stock(tmp_path):
    """group_norm, spatial_norm, 4-D input, residual, rescale, norm_cross, qk-norm and an attention
    mask: the empty processor equals AttnProcessor2_0, a hypernetwork equals the hooked reference."""
    torch.manual_seed(0)
    common = dict(query_dim=32, heads=2, dim_head=16, norm_num_groups=8, spatial_norm_dim=4,
                  residual_connection=True, rescale_output_factor=1.7, qk_norm="layer_norm", bias=True)
    cross = Attention(cross_attention_dim=24, cross_attention_norm="layer_norm", **common).eval()
    self_attn = Attention(**common).eval()
    g = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 32, 3, 3, generator=g)
    temb = torch.randn(2, 4, 3, 3, generator=g)
    ctx = torch.randn(2, 6, 24, generator=g)
    mask = torch.zeros(2, 6)
    mask[0, 4:] = -10000.0
    s = write_hypernetwork(tmp_path / "c.pt", (24, 32), activation_func="softsign", seed=9)
    hn = Hypernetwork.load(tmp_path / "c.pt")
    for attn, kwargs in ((cross, dict(encoder_hidden_states=ctx, attention_mask=mask, temb=temb)),
                         (self_attn, dict(temb=temb, attention_mask=torch.zeros(2, 9)))):
        with torch.no_grad():
            base = AttnProcessor2_0()(attn, hidden, **kwargs)
            assert torch.equal(HypernetworkAttnProcessor([])(attn, hidden, **kwargs), base)
            got = HypernetworkAttnProcessor([(hn, 1.1)])(attn, hidden, **kwargs)
            hooks = _RefHooks(torch.nn.ModuleDict({"attn": attn}), [(s, 1.1)])
            try:
                want = AttnProcessor2_0()(attn, hidden, **kwargs)
            finally:
                hooks.remove()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        assert (got - base).abs().max() > 1e-3
        assert got.shape == hidden.shape
        assert {w for _, w in hooks.hits} == {ctx.shape[-1] if attn is cross else 32}


def test_patch_identity_idempotence_and_foreign_processors(tmp_path, sd1_unet):
    unet = copy.deepcopy(sd1_unet)
    write_hypernetwork(tmp_path / "p.pt", (32,))
    hn = Hypernetwork.load(tmp_path / "p.pt")
    mods = _attn_modules(unet)
    originals = {n: m.processor for n, m in mods}
    patch = HypernetworkPatch(unet)
    patch.set([])  # nothing installed: a no-op
    assert all(m.processor is originals[n] for n, m in mods) and patch.active == []

    patch.set([(hn, 1.0)])
    proc = mods[0][1].processor
    assert isinstance(proc, HypernetworkAttnProcessor) and all(m.processor is proc for _, m in mods)
    assert patch.active == [(hn, 1.0)]
    patch.set([(hn, 1)])  # unchanged: the same processor object stays
    assert all(m.processor is proc for _, m in mods)
    patch.set([(hn, 0.5)])
    proc2 = mods[0][1].processor
    assert proc2 is not proc and proc2.active == ((hn, 0.5),) and all(m.processor is proc2 for _, m in mods)

    # somebody swaps one module's processor meanwhile: set() reinstalls, set([]) gives that one back
    foreign = AttnProcessor2_0()
    name0, mod0 = mods[0]
    mod0.set_processor(foreign)
    patch.set([(hn, 0.5)])
    assert mod0.processor is not foreign and isinstance(mod0.processor, HypernetworkAttnProcessor)
    patch.set([])
    assert mod0.processor is foreign
    assert all(m.processor is originals[n] for n, m in mods[1:])
    patch.set([])
    assert all(m.processor is originals[n] for n, m in mods[1:])
    with pytest.raises(TypeError):
        patch.set([("not a hypernetwork", 1.0)])


def test_patch_moves_hypernetworks_to_unet_dtype(tmp_path, sd1_unet):
    unet = copy.deepcopy(sd1_unet).to(torch.float64)
    write_hypernetwork(tmp_path / "d.pt", (32,), activation_func="relu")
    hn = Hypernetwork.load(tmp_path / "d.pt")
    HypernetworkPatch(unet).set([(hn, 1.0)])
    assert hn.dtype == torch.float64
    assert all(p.dtype == torch.float64 for m in hn.modules() for p in m.parameters())
    out = _run(unet, {k: v.double() if v.is_floating_point() else v for k, v in _sd1_inputs().items()})
    assert out.dtype == torch.float64 and torch.isfinite(out).all()


def test_cross_attention_transforms_are_cached_and_pictures_unchanged(tmp_path):
    """The text context's hypernetwork transforms are computed once per distinct context (a prompt schedule's new
    context misses the cache), nothing is cached while training, and the UNet output is bit for bit the same."""
    unet = tiny_sd1(seed=0)["unet"].eval()
    write_hypernetwork(tmp_path / "h.pt", widths=(TINY_TEXT_WIDTH, 32, 64), activation_func="relu", seed=4)
    hypernetwork = Hypernetwork.load(tmp_path / "h.pt")
    patch = HypernetworkPatch(unet)
    patch.set([(hypernetwork, 0.7)])
    calls = []
    layer = hypernetwork.layers[TINY_TEXT_WIDTH][0]
    # counts the text contexts it transforms (77 tokens; self-attention contexts have the latent's 64)
    layer.register_forward_hook(lambda module, args, out: calls.append(1) if args[0].shape[1] == 77 else None)
    x, t = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([500.0, 500.0])
    contexts = [torch.randn(2, 77, TINY_TEXT_WIDTH, generator=torch.Generator().manual_seed(s)) for s in (2, 3)]

    def run(context, grad: bool):
        with torch.set_grad_enabled(grad):
            return unet(x, t, encoder_hidden_states=context).sample.detach()

    uncached = [run(c, True) for c in contexts]
    cross_layers = len(calls) // 2  # per forward, without a cache: one call per cross-attention module
    calls.clear()
    for step in range(3):  # a schedule: the first context for two steps, then the second
        context = contexts[0] if step < 2 else contexts[1].clone()
        assert torch.equal(run(context, False), uncached[0 if step < 2 else 1])
    assert len(calls) == 2 and cross_layers > 1  # once per distinct context, not per layer and step
    calls.clear()
    contexts[0].add_(1.0)  # modified in place: the same tensor object must not hit the old entry
    assert torch.equal(run(contexts[0], False), run(contexts[0].clone(), True))
    with torch.no_grad():
        layer.linear[0].weight.mul_(1.5)  # the hypernetwork changed (training): stale transforms are dropped
    assert torch.equal(run(contexts[1], False), run(contexts[1], True))
    patch.clear_cache()
    patch.set([])
