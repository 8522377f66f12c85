"""Per-type LoRA/LyCORIS weight maths, checked against formulas written out independently here."""
from __future__ import annotations

import collections

import pytest
import torch

from modules.networks.adapters import ADAPTER_TYPES, AdapterError, AdapterModule, create_module

G = torch.Generator().manual_seed(1234)


def rnd(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=G).to(dtype)


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-4) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a, b.to(a.dtype), rtol=tol, atol=tol)


def delta(tensors: dict, weight: torch.Tensor, m: float = 1.0, **kw) -> torch.Tensor:
    mod = create_module("lora_unet_test_module", tensors)
    before = weight.clone()
    d, _ = mod.delta(weight, m, **kw)
    assert torch.equal(weight, before), "delta() must not modify the weight"
    assert d.dtype == torch.float32 and d.shape == weight.shape
    return d


# ---------------------------------------------------------------------------------------------- registry

def test_detection_order_and_kinds():
    assert [c.kind for c in ADAPTER_TYPES] == ["lora", "loha", "ia3", "lokr", "full", "norm", "glora", "oft"]
    samples = {
        "lora": {"lora_up.weight": rnd(4, 2), "lora_down.weight": rnd(2, 3)},
        "loha": {n: rnd(2, 2) for n in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")},
        "ia3": {"weight": rnd(4)},
        "lokr": {"lokr_w1": rnd(2, 2), "lokr_w2": rnd(2, 2)},
        "full": {"diff": rnd(4, 4)},
        "norm": {"w_norm": rnd(4), "b_norm": rnd(4)},
        "glora": {n: rnd(2, 2) for n in ("a1.weight", "a2.weight", "b1.weight", "b2.weight")},
        "oft": {"oft_blocks": rnd(2, 2, 2)},
    }
    for kind, tensors in samples.items():
        assert create_module("k", tensors).kind == kind


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_files_compute_in_float32(dtype):
    cases = [
        ({"lora_up.weight": rnd(6, 2), "lora_down.weight": rnd(2, 4), "alpha": torch.tensor(1.0), "dora_scale": rnd(6, 1).abs()}, (6, 4)),
        ({n: rnd(6, 2) if n.endswith("_a") else rnd(2, 4) for n in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")}, (6, 4)),
        ({"lokr_w1": rnd(2, 2), "lokr_w2_a": rnd(3, 1), "lokr_w2_b": rnd(1, 2)}, (6, 4)),
        ({"weight": rnd(6)}, (6, 4)),
        ({"oft_blocks": rnd(3, 2, 2) * 0.3, "alpha": torch.tensor(0.1)}, (6, 4)),
        ({"oft_blocks": rnd(2, 4, 2, 2) * 0.3}, (8, 4)),
        ({"a1.weight": rnd(2, 4), "a2.weight": rnd(4, 2), "b1.weight": rnd(2, 4), "b2.weight": rnd(6, 2)}, (6, 4)),
    ]
    for tensors, shape in cases:
        w = rnd(*shape)
        low = {k: v.to(dtype) for k, v in tensors.items()}
        ref = {k: v.float() for k, v in low.items()}  # same values, already float32
        got = delta(low, w.to(dtype), 0.75)
        close(got, delta(ref, w.to(dtype).float(), 0.75), 1e-5)


def test_unknown_param_set_names_key_and_params():
    with pytest.raises(AdapterError) as e:
        create_module("lora_te_text_model_encoder_layers_0_mlp_fc1", {"lora_up.weight": rnd(4, 2), "alpha": torch.tensor(1.0)})
    msg = str(e.value)
    assert "lora_te_text_model_encoder_layers_0_mlp_fc1" in msg and "lora_up.weight" in msg and "alpha" in msg


def test_unused_params_reported_and_bytes():
    mod = create_module("k", {"lora_up.weight": rnd(4, 2), "lora_down.weight": rnd(2, 3, dtype=torch.float16), "extra.thing": rnd(5)})
    assert mod.unused_params == ("extra.thing",)
    assert mod.tensors_bytes() == 8 * 4 + 6 * 2 + 5 * 4
    assert isinstance(mod, AdapterModule) and mod.dim == 2


# ---------------------------------------------------------------------------------------------- LoRA

def test_lora_linear_alpha_multiplier():
    up, down = rnd(6, 3), rnd(3, 5)
    w = rnd(6, 5)
    expected = sum(torch.outer(up[:, r], down[r]) for r in range(3))
    for m in (1.0, 0.7, -1.5, 2.5):
        close(delta({"lora_up.weight": up, "lora_down.weight": down, "alpha": torch.tensor(1.5)}, w, m), expected * 1.5 / 3 * m)
    # "scale" wins over alpha / dim
    close(delta({"lora_up.weight": up, "lora_down.weight": down, "alpha": torch.tensor(1.5), "scale": torch.tensor(0.25)}, w), expected * 0.25)
    # no alpha: scale 1
    close(delta({"lora_up.weight": up, "lora_down.weight": down}, w), expected)


def test_multiplier_zero_is_exactly_zero():
    tensors = {"lora_up.weight": rnd(6, 3), "lora_down.weight": rnd(3, 5), "alpha": torch.tensor(3.0), "dora_scale": rnd(6, 1).abs()}
    d = delta(tensors, rnd(6, 5), 0.0)
    assert torch.count_nonzero(d) == 0
    oft = {"oft_blocks": rnd(3, 2, 2), "alpha": torch.tensor(0.5)}
    assert torch.count_nonzero(delta(oft, rnd(6, 4), 0.0)) == 0


def test_lora_peft_aliases():
    a, b = rnd(3, 5), rnd(6, 3)
    close(delta({"lora_A.weight": a, "lora_B.weight": b, "alpha": torch.tensor(6.0)}, rnd(6, 5)), torch.einsum("or,ri->oi", b, a) * 2)


def test_locon_conv_and_f16():
    up, down = rnd(8, 4, 1, 1, dtype=torch.float16), rnd(4, 3, 3, 3, dtype=torch.float16)
    w = rnd(8, 3, 3, 3, dtype=torch.float16)
    up32, down32 = up.float(), down.float()
    expected = torch.zeros(8, 3, 3, 3)
    for o in range(8):
        for r in range(4):
            expected[o] += up32[o, r, 0, 0] * down32[r]
    close(delta({"lora_up.weight": up, "lora_down.weight": down, "alpha": torch.tensor(2.0, dtype=torch.float16)}, w, 0.8), expected * 0.5 * 0.8)


def test_lora_linear_onto_1x1_conv():
    up, down = rnd(6, 2), rnd(2, 4)
    close(delta({"lora_up.weight": up, "lora_down.weight": down}, rnd(6, 4, 1, 1)), (up @ down).reshape(6, 4, 1, 1))


def test_lora_tucker_mid():
    up, down, mid = rnd(7, 3, 1, 1), rnd(3, 5, 1, 1), rnd(3, 3, 3, 3)
    expected = torch.zeros(7, 5, 3, 3)
    for n in range(3):
        for m in range(3):
            expected += torch.outer(up[:, n, 0, 0], down[m, :, 0, 0])[:, :, None, None] * mid[n, m]
    t = {"lora_up.weight": up, "lora_down.weight": down, "lora_mid.weight": mid, "alpha": torch.tensor(1.0)}
    close(delta(t, rnd(7, 5, 3, 3)), expected / 3)
    # dyn_dim truncates the core too; the scale keeps the full rank
    exp2 = torch.zeros(7, 5, 3, 3)
    for n in range(2):
        for m in range(2):
            exp2 += torch.outer(up[:, n, 0, 0], down[m, :, 0, 0])[:, :, None, None] * mid[n, m]
    close(delta(t, rnd(7, 5, 3, 3), dyn_dim=2), exp2 / 3)


def test_lora_dyn_dim():
    up, down = rnd(6, 4), rnd(4, 5)
    t = {"lora_up.weight": up, "lora_down.weight": down, "alpha": torch.tensor(2.0)}
    expected = sum(torch.outer(up[:, r], down[r]) for r in range(2)) * (2.0 / 4)
    close(delta(t, rnd(6, 5), dyn_dim=2), expected)
    close(delta(t, rnd(6, 5), dyn_dim=99), (up @ down) * 0.5)
    assert torch.count_nonzero(delta(t, rnd(6, 5), dyn_dim=0)) == 0


def test_bias_key_added_before_scale():
    up, down, b = rnd(6, 2), rnd(2, 5), rnd(6, 5)
    t = {"lora_up.weight": up, "lora_down.weight": down, "alpha": torch.tensor(1.0), "bias": b.flatten()}
    close(delta(t, rnd(6, 5), 3.0), (up @ down + b) * 0.5 * 3.0)


def test_inpainting_zero_pad_input_channels():
    up, down = rnd(8, 2, 1, 1), rnd(2, 4, 3, 3)
    d = delta({"lora_up.weight": up, "lora_down.weight": down}, rnd(8, 9, 3, 3))
    close(d[:, :4], torch.einsum("or,rihw->oihw", up[:, :, 0, 0], down))
    assert torch.count_nonzero(d[:, 4:]) == 0


def test_shape_mismatch_errors_name_key_and_shapes():
    with pytest.raises(AdapterError, match=r"my_key: .*expected shape \[6, 5\], got \[7, 5\]"):
        create_module("my_key", {"lora_up.weight": rnd(7, 2), "lora_down.weight": rnd(2, 5)}).delta(rnd(6, 5), 1.0)
    with pytest.raises(AdapterError, match="my_key: .*rank"):
        create_module("my_key", {"lora_up.weight": rnd(7, 3), "lora_down.weight": rnd(2, 5)})
    with pytest.raises(AdapterError, match="my_key"):  # fewer target inputs than the delta: never cropped
        create_module("my_key", {"lora_up.weight": rnd(6, 2), "lora_down.weight": rnd(2, 5)}).delta(rnd(6, 4), 1.0)
    with pytest.raises(AdapterError, match="my_key: 'alpha'"):
        create_module("my_key", {"lora_up.weight": rnd(6, 2), "lora_down.weight": rnd(2, 5), "alpha": rnd(2)})
    with pytest.raises(AdapterError, match="my_key: 'bias'"):
        create_module("my_key", {"lora_up.weight": rnd(6, 2), "lora_down.weight": rnd(2, 5), "bias": rnd(3)}).delta(rnd(6, 5), 1.0)


# ---------------------------------------------------------------------------------------------- DoRA

def _dora_expected(w, d, mag, axis):
    merged = w + d
    out = torch.empty_like(merged)
    if axis == 0:
        for o in range(merged.shape[0]):
            out[o] = merged[o] / merged[o].pow(2).sum().sqrt() * mag.flatten()[o]
    else:
        for i in range(merged.shape[1]):
            out[:, i] = merged[:, i] / merged[:, i].pow(2).sum().sqrt() * mag.flatten()[i]
    return out - w


@pytest.mark.parametrize("mag_shape,axis", [((6, 1), 0), ((1, 5), 1), ((6,), 0)])
def test_dora_linear_both_axes(mag_shape, axis):
    up, down, w = rnd(6, 2), rnd(2, 5), rnd(6, 5)
    mag = rnd(*mag_shape).abs() + 0.5
    t = {"lora_up.weight": up, "lora_down.weight": down, "alpha": torch.tensor(1.0), "dora_scale": mag}
    base = _dora_expected(w, up @ down * 0.5, mag, axis)
    for m in (1.0, 0.3, -2.0):  # multiplier applied after the re-normalisation (A1111)
        close(delta(t, w, m), base * m)
    # with m = 1 the merged weight carries exactly the learned magnitudes
    merged = w + delta(t, w, 1.0)
    norms = torch.linalg.vector_norm(merged, dim=1 - axis)
    close(norms, mag.flatten(), 1e-4)


@pytest.mark.parametrize("mag_shape,axis", [((8, 1, 1, 1), 0), ((1, 3, 1, 1), 1)])
def test_dora_conv_both_axes(mag_shape, axis):
    up, down, w = rnd(8, 2, 1, 1), rnd(2, 3, 3, 3), rnd(8, 3, 3, 3)
    mag = rnd(*mag_shape).abs() + 0.5
    d = torch.einsum("or,rihw->oihw", up[:, :, 0, 0], down)
    t = {"lora_up.weight": up, "lora_down.weight": down, "dora_scale": mag}
    close(delta(t, w, 0.9), _dora_expected(w, d, mag, axis) * 0.9)


def test_dora_bad_shape_errors():
    t = {"lora_up.weight": rnd(6, 2), "lora_down.weight": rnd(2, 5), "dora_scale": rnd(3, 1)}
    with pytest.raises(AdapterError, match=r"lk: dora_scale of shape \[3, 1\]"):
        create_module("lk", t).delta(rnd(6, 5), 1.0)


# ---------------------------------------------------------------------------------------------- LoHa

def test_loha_linear_and_conv_flat():
    a1, b1, a2, b2 = rnd(6, 3), rnd(3, 5), rnd(6, 3), rnd(3, 5)
    t = {"hada_w1_a": a1, "hada_w1_b": b1, "hada_w2_a": a2, "hada_w2_b": b2, "alpha": torch.tensor(1.0)}
    expected = torch.einsum("or,ri->oi", a1, b1) * torch.einsum("or,ri->oi", a2, b2)
    close(delta(t, rnd(6, 5), -0.5), expected / 3 * -0.5)
    # conv file layout: w_b flattened to [r, in*kh*kw]
    a1, b1, a2, b2 = rnd(4, 2), rnd(2, 27), rnd(4, 2), rnd(2, 27)
    t = {"hada_w1_a": a1, "hada_w1_b": b1, "hada_w2_a": a2, "hada_w2_b": b2}
    close(delta(t, rnd(4, 3, 3, 3)), ((a1 @ b1) * (a2 @ b2)).reshape(4, 3, 3, 3))


def test_loha_cp():
    r, out, n_in = 3, 5, 4
    t1, t2 = rnd(r, r, 3, 3), rnd(r, r, 3, 3)
    a1, b1, a2, b2 = rnd(r, out), rnd(r, n_in), rnd(r, out), rnd(r, n_in)

    def cp(t, a, b):
        res = torch.zeros(out, n_in, 3, 3)
        for i in range(r):
            for j in range(r):
                res += torch.outer(a[i], b[j])[:, :, None, None] * t[i, j]
        return res

    t = {"hada_w1_a": a1, "hada_w1_b": b1, "hada_w2_a": a2, "hada_w2_b": b2, "hada_t1": t1, "hada_t2": t2, "alpha": torch.tensor(1.5)}
    close(delta(t, rnd(out, n_in, 3, 3), 2.0), cp(t1, a1, b1) * cp(t2, a2, b2) * 0.5 * 2.0)


# ---------------------------------------------------------------------------------------------- LoKr

def _kron_blocks(w1, w2):
    a, c = w1.shape
    b, d = w2.shape[:2]
    res = torch.zeros(a * b, c * d, *w2.shape[2:])
    for i in range(a):
        for j in range(c):
            res[i * b:(i + 1) * b, j * d:(j + 1) * d] = w1[i, j] * w2
    return res


def test_lokr_full_factors_linear():
    w1, w2 = rnd(2, 3), rnd(4, 5)
    t = {"lokr_w1": w1, "lokr_w2": w2, "alpha": torch.tensor(7.0)}  # no rank: alpha not used
    close(delta(t, rnd(8, 15), 0.5), _kron_blocks(w1, w2) * 0.5)


def test_lokr_factorised_linear_scale():
    w1a, w1b, w2a, w2b = rnd(2, 2), rnd(2, 3), rnd(4, 2), rnd(2, 5)
    t = {"lokr_w1_a": w1a, "lokr_w1_b": w1b, "lokr_w2_a": w2a, "lokr_w2_b": w2b, "alpha": torch.tensor(1.0)}
    mod = create_module("k", t)
    assert mod.dim == 2 and mod.calc_scale() == 0.5
    close(delta(t, rnd(8, 15)), _kron_blocks(w1a @ w1b, w2a @ w2b) * 0.5)


def test_lokr_conv_4d_w2_and_flattened():
    w1, w2 = rnd(2, 3), rnd(4, 2, 3, 3)  # w2 kept 4-D (current LyCORIS)
    close(delta({"lokr_w1": w1, "lokr_w2": w2}, rnd(8, 6, 3, 3)), _kron_blocks(w1, w2))
    w2a, w2b = rnd(4, 2), rnd(2, 2, 3, 3)  # factorised, w2_b 4-D
    close(delta({"lokr_w1": w1, "lokr_w2_a": w2a, "lokr_w2_b": w2b}, rnd(8, 6, 3, 3)),
          _kron_blocks(w1, torch.einsum("br,rdhw->bdhw", w2a, w2b)) / 1.0)
    # old LyCORIS: the flattened [out, in*kh*kw] matrix was factorised (w1 [2, 6], w2 [4, 9] -> [8, 54])
    w1, w2a, w2b = rnd(2, 6), rnd(4, 2), rnd(2, 9)
    expected = _kron_blocks(w1, w2a @ w2b).reshape(8, 6, 3, 3)
    close(delta({"lokr_w1": w1, "lokr_w2_a": w2a, "lokr_w2_b": w2b, "alpha": torch.tensor(2.0)}, rnd(8, 6, 3, 3)), expected)


def test_lokr_tucker_t2():
    r = 2
    w1, t2, w2a, w2b = rnd(2, 3), rnd(r, r, 3, 3), rnd(r, 4), rnd(r, 2)
    w2 = torch.zeros(4, 2, 3, 3)
    for i in range(r):
        for j in range(r):
            w2 += torch.outer(w2a[i], w2b[j])[:, :, None, None] * t2[i, j]
    t = {"lokr_w1": w1, "lokr_w2_a": w2a, "lokr_w2_b": w2b, "lokr_t2": t2, "alpha": torch.tensor(1.0)}
    close(delta(t, rnd(8, 6, 3, 3)), _kron_blocks(w1, w2) * 0.5)


def test_lokr_real_fixture(real_fixtures):
    from safetensors.torch import load_file

    path = real_fixtures / "lora" / "lycoris_lokr_sd15" / "smart_falcon_4_lokr.safetensors"
    if not path.is_file():
        pytest.skip(f"missing {path}")
    groups: dict[str, dict[str, torch.Tensor]] = collections.defaultdict(dict)
    for k, v in load_file(str(path)).items():
        module, param = k.split(".", 1)
        groups[module][param] = v
    kinds = collections.Counter()
    seen_categories: set[str] = set()
    nonzero = 0
    for name, tensors in sorted(groups.items()):
        mod = create_module(name, tensors)
        kinds[mod.kind] += 1
        assert mod.unused_params == ()
        # all modules are parsed; the delta is computed for one module per layer kind (fc1, conv1, to_q, ...)
        category = ("te_" if name.startswith("lora_te") else "unet_") + name.rsplit("_", 1)[-1]
        if category in seen_categories:
            continue
        seen_categories.add(category)
        w1 = tensors["lokr_w1_a"].shape[0], tensors["lokr_w1_b"].shape[1]
        w2 = tensors["lokr_w2_a"].shape[0], tensors["lokr_w2_b"].shape[1]
        out, flat_in = w1[0] * w2[0], w1[1] * w2[1]
        # conv modules store the flattened kernel: in*9 for 3x3 convs, in for 1x1 / Linear
        target = (out, flat_in // 9, 3, 3) if ("conv" in name and "shortcut" not in name and flat_in % 9 == 0) else (out, flat_in)
        d, b = mod.delta(torch.zeros(*target, dtype=torch.float16), 1.0)  # LoKr does not read W
        assert d.shape == target and d.dtype == torch.float32 and b is None
        assert torch.isfinite(d).all()
        nonzero += bool(torch.count_nonzero(d))
    assert kinds == {"lokr": 350}
    assert len(seen_categories) >= 10 and nonzero >= len(seen_categories) - 2


# ---------------------------------------------------------------------------------------------- IA3

def test_ia3_out_and_input_axes():
    w = rnd(6, 5)
    v = rnd(6)
    expected = torch.stack([w[o] * v[o] for o in range(6)])
    close(delta({"weight": v}, w, 0.5), expected * 0.5)
    vi = rnd(5)
    expected = torch.stack([w[:, i] * vi[i] for i in range(5)], dim=1)
    close(delta({"weight": vi, "on_input": torch.tensor(True)}, w), expected)
    wc, vc = rnd(4, 3, 3, 3), rnd(1, 4, 1, 1)  # conv file layout [1, out, 1, 1]
    close(delta({"weight": vc}, wc), wc * vc.reshape(4, 1, 1, 1))
    with pytest.raises(AdapterError, match="ia3_key: ia3 weight has 6 values"):
        create_module("ia3_key", {"weight": v}).delta(rnd(5, 5), 1.0)


# ---------------------------------------------------------------------------------------------- Full / Norm

def test_full_diff_and_diff_b():
    diff, diff_b, bias = rnd(6, 5), rnd(6), rnd(6)
    mod = create_module("k", {"diff": diff, "diff_b": diff_b, "scale": torch.tensor(2.0)})
    d, db = mod.delta(rnd(6, 5), -0.5, bias=bias)
    close(d, diff * 2.0 * -0.5)
    close(db, diff_b * -0.5)  # extra bias: multiplier only
    with pytest.raises(AdapterError, match=r"k: bias delta .*expected shape \[4\], got \[6\]"):
        mod.delta(rnd(6, 5), 1.0, bias=rnd(4))
    with pytest.raises(AdapterError, match=r"expected shape \[6, 4\], got \[6, 5\]"):
        mod.delta(rnd(6, 4), 1.0)


def test_norm_w_b():
    wn, bn = rnd(8), rnd(8)
    d, db = create_module("k", {"w_norm": wn, "b_norm": bn}).delta(rnd(8), 1.5, bias=rnd(8))
    close(d, wn * 1.5)
    close(db, bn * 1.5)


# ---------------------------------------------------------------------------------------------- GLoRA

def test_glora_old_layout_linear():
    out, n_in, r = 6, 5, 2
    a1, a2, b1, b2 = rnd(r, n_in), rnd(n_in, r), rnd(r, n_in), rnd(out, r)
    w = rnd(out, n_in)
    t = {"a1.weight": a1, "a2.weight": a2, "b1.weight": b1, "b2.weight": b2, "alpha": torch.tensor(1.0)}
    expected = torch.einsum("or,ri->oi", b2, b1) + torch.einsum("oi,ir,rj->oj", w, a2, a1)
    close(delta(t, w, 2.0), expected * 0.5 * 2.0)


def test_glora_new_layout_conv():
    out, n_in, r = 6, 4, 2
    a1, a2, b1, b2 = rnd(n_in, r, 1, 1), rnd(r, n_in, 1, 1), rnd(out, r, 1, 1), rnd(r, n_in, 3, 3)
    w = rnd(out, n_in, 3, 3)
    t = {"a1.weight": a1, "a2.weight": a2, "b1.weight": b1, "b2.weight": b2, "alpha": torch.tensor(4.0)}
    expected = torch.einsum("or,rihw->oihw", b1[:, :, 0, 0], b2) + torch.einsum(
        "oihw,ir,rj->ojhw", w, a1[:, :, 0, 0], a2[:, :, 0, 0]
    )
    close(delta(t, w), expected * 2.0)
    with pytest.raises(AdapterError, match="gk: "):
        create_module("gk", t).delta(rnd(out, n_in + 1, 3, 3), 1.0)


# ---------------------------------------------------------------------------------------------- OFT

def _cayley_ref(blocks, constraint):
    q = blocks - blocks.transpose(1, 2)
    n = float(q.pow(2).sum().sqrt())
    if constraint > 0 and n > constraint:
        q = q * (constraint / n)
    eye = torch.eye(blocks.shape[-1]).expand_as(q)
    # R (I - Q) = I + Q  ->  (I - Q)^T R^T = (I + Q)^T
    return torch.linalg.solve((eye - q).transpose(1, 2), (eye + q).transpose(1, 2)).transpose(1, 2)


@pytest.mark.parametrize("alpha", [None, 1e-3, 10.0])
def test_oft_kohya_linear(alpha):
    n, b, n_in = 3, 4, 5
    blocks, w = rnd(n, b, b) * 0.3, rnd(n * b, n_in)
    t = {"oft_blocks": blocks}
    if alpha is not None:
        t["alpha"] = torch.tensor(alpha)
    r = _cayley_ref(blocks, (alpha or 0) * n * b)
    for blk in r:  # orthogonal
        close(blk @ blk.T, torch.eye(b), 1e-4)
    big = torch.block_diag(*r)
    expected = big.T @ w - w  # kohya: x·R on the outputs, i.e. W' = Rᵀ W
    mod = create_module("k", t)
    assert mod.calc_scale() == 1.0
    close(delta(t, w, 0.6), expected * 0.6)


def test_oft_constraint_bounds_rotation():
    blocks, w = rnd(2, 3, 3) * 5, rnd(6, 4)
    free = delta({"oft_blocks": blocks}, w)
    tight = delta({"oft_blocks": blocks, "alpha": torch.tensor(1e-4)}, w)
    assert tight.abs().max() < free.abs().max() * 0.01
    close(tight, torch.block_diag(*_cayley_ref(blocks, 1e-4 * 6)).T @ w - w, 1e-5)


def test_oft_conv_with_rescale():
    n, b = 2, 4
    blocks, w, rescale = rnd(n, b, b) * 0.2, rnd(n * b, 3, 3, 3), rnd(n * b, 1, 1, 1)
    big = torch.block_diag(*_cayley_ref(blocks, 0))
    rotated = (big.T @ w.reshape(n * b, -1)).reshape(w.shape)
    close(delta({"oft_blocks": blocks, "rescale": rescale}, w), rotated * rescale - w)


def test_oft_diag_old_lycoris_both_forms():
    n, b = 3, 2
    w = rnd(n * b, 4)
    r = _cayley_ref(rnd(n, b, b) * 0.3, 0)  # stored R (identity-initialised versions, A1111's reading)
    close(delta({"oft_diag": r}, w), torch.block_diag(*r).T @ w - w)
    d = rnd(n, b, b) * 0.05  # stored offset D, R = I + D (zero-initialised first version)
    close(delta({"oft_diag": d}, w), torch.block_diag(*(d + torch.eye(b))).T @ w - w)


def test_oft_wrong_rows_errors():
    with pytest.raises(AdapterError, match="ok_key: 3 blocks of 4 rows do not cover"):
        create_module("ok_key", {"oft_blocks": rnd(3, 4, 4)}).delta(rnd(10, 5), 1.0)


def _butterfly_perm(rows, half):
    p = torch.zeros(rows, rows)
    for c in range(rows // (2 * half)):
        for g in range(2):
            for j in range(half):
                p[c * 2 * half + j * 2 + g, c * 2 * half + g * half + j] = 1.0  # new position <- old row
    return p


@pytest.mark.parametrize("m,n,b", [(2, 4, 2), (3, 4, 4), (1, 2, 4)])
def test_boft(m, n, b):
    rows = n * b
    blocks, w = rnd(m, n, b, b) * 0.3, rnd(rows, 3)
    r = _cayley_ref(blocks.reshape(m * n, b, b), 0).reshape(m, n, b, b)
    expected = w.clone()
    for i in range(m):
        p = _butterfly_perm(rows, (b // 2) * 2**i)
        expected = p.T @ torch.block_diag(*r[i]) @ p @ expected
    close(delta({"oft_blocks": blocks}, w, -0.5), (expected - w) * -0.5)
    # orthogonal overall: row norms of W' = R W keep the column norms of W
    close(torch.linalg.vector_norm(expected, dim=0), torch.linalg.vector_norm(w, dim=0), 1e-4)


def test_boft_refuses_bad_sizes():
    with pytest.raises(AdapterError, match="bk: BOFT block size must be even"):
        create_module("bk", {"oft_blocks": rnd(2, 3, 3, 3)})
    with pytest.raises(AdapterError, match="bk: BOFT with 3 stages of block size 2 needs out divisible by 8, got 6"):
        create_module("bk", {"oft_blocks": rnd(3, 3, 2, 2)}).delta(rnd(6, 3), 1.0)
