"""Affine hypernetworks (A1111's default ``linear`` activation) folded into self-attention's to_k/to_v.

The folded UNet must equal the independent hooked reference of test_hypernetwork (the reference MLPs run on the
inputs of to_k/to_v), its self-attention MLPs must not run at all, and every change that a fold depends on (a
LoRA merged into to_k, a training step on the hypernetwork) must refold.
"""
from __future__ import annotations

import copy

import pytest
import torch

from modules.networks.hypernet_attention import HypernetworkPatch
from modules.networks.hypernet_fold import affine_map, chain_affine_map, fold_into_linear
from modules.networks.hypernetwork import Hypernetwork
from tests.hypernet_files import write_hypernetwork, write_old_hypernetwork
from tests.networks.test_hypernetwork import _attn_modules, _RefHooks, _run, _sd1_inputs, ref_apply
from tests.tiny_models import TINY_TEXT_WIDTH, tiny_sd1

AFFINE = {
    "121-linear": dict(layer_structure=(1, 2, 1), activation_func="linear"),
    "121-none": dict(layer_structure=(1, 2, 1), activation_func=None),
    "1.5-2-1-linear-dropout": dict(layer_structure=(1, 1.5, 2, 1), activation_func="linear", use_dropout=True,
                                   last_layer_dropout=True),
}
NOT_AFFINE = {
    "relu": dict(activation_func="relu"),
    "linear-layer-norm": dict(activation_func="linear", is_layer_norm=True),
}


def _x(width: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 5, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("case", sorted(AFFINE))
def test_affine_map_equals_the_mlp(tmp_path, case):
    saved = write_hypernetwork(tmp_path / "h.pt", (32,), seed=2, **AFFINE[case])
    hn = Hypernetwork.load(tmp_path / "h.pt")
    for which in (0, 1):
        for multiplier in (1.0, -0.7, 0.0):
            a, c = affine_map(hn.layers[32][which], multiplier)
            x = _x(32)
            torch.testing.assert_close(x @ a.T + c, ref_apply(saved, which, x, multiplier), rtol=1e-5, atol=1e-5)


def test_old_files_are_affine(tmp_path):
    saved = write_old_hypernetwork(tmp_path / "old.pt", (32,), seed=3)
    hn = Hypernetwork.load(tmp_path / "old.pt")
    a, c = affine_map(hn.layers[32][1], 0.8)
    x = _x(32)
    torch.testing.assert_close(x @ a.T + c, ref_apply(saved, 1, x, 0.8), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", sorted(NOT_AFFINE))
def test_non_affine_mlps_are_not_folded(tmp_path, case):
    write_hypernetwork(tmp_path / "h.pt", (32,), **NOT_AFFINE[case])
    hn = Hypernetwork.load(tmp_path / "h.pt")
    assert affine_map(hn.layers[32][0], 1.0) is None
    assert chain_affine_map([(hn, 1.0)], 32, 0) is None


def test_dropout_folds_only_in_eval(tmp_path):
    write_hypernetwork(tmp_path / "h.pt", (32,), **AFFINE["1.5-2-1-linear-dropout"])
    module = Hypernetwork.load(tmp_path / "h.pt").layers[32][0]
    assert affine_map(module, 1.0) is not None
    module.train()
    assert affine_map(module, 1.0) is None


def test_chain_and_fold_into_linear(tmp_path):
    sa = write_hypernetwork(tmp_path / "a.pt", (32,), activation_func="linear", seed=4)
    sb = write_hypernetwork(tmp_path / "b.pt", (32, 64), activation_func=None, seed=5)
    ha, hb = Hypernetwork.load(tmp_path / "a.pt"), Hypernetwork.load(tmp_path / "b.pt")
    linear = torch.nn.Linear(32, 48)
    x = _x(32)
    chain = chain_affine_map([(ha, 0.6), (hb, -1.1)], 32, 1)
    weight, bias = fold_into_linear(linear, chain)
    want = linear(ref_apply(sb, 1, ref_apply(sa, 1, x, 0.6), -1.1))
    torch.testing.assert_close(torch.nn.functional.linear(x, weight, bias), want, rtol=1e-5, atol=1e-5)
    assert chain_affine_map([(ha, 1.0)], 64, 0) is None  # no layer of that width: nothing to fold
    assert chain_affine_map([(ha, 0.0)], 32, 0) is None  # multiplier 0: nothing to fold either


def _reference(unet, inputs, chain) -> tuple[torch.Tensor, list]:
    """The independent path: stock attention, with the reference MLPs of ``chain`` ((saved file, multiplier)
    pairs) hooked in front of to_k/to_v. Returns the output and the (module, width) pairs they transformed."""
    hooks = _RefHooks(unet, chain)
    try:
        return _run(unet, inputs), hooks.hits
    finally:
        hooks.remove()


def _unet_and_counts(hn: Hypernetwork):
    """A tiny SD1 UNet, and a list that records the width of every context the hypernetwork's MLPs transform."""
    unet = tiny_sd1(seed=5)["unet"].eval()
    seen: list[int] = []
    for width, pair in hn.layers.items():
        for module in pair:
            module.register_forward_hook(lambda m, args, out: seen.append((args[0].shape[1], args[0].shape[-1])))
    return unet, seen


def test_folded_unet_equals_the_hooked_reference_and_skips_self_attention_mlps(tmp_path):
    widths = (TINY_TEXT_WIDTH, 32, 64)  # the text width, and the UNet's channel widths (self-attention)
    saved = write_hypernetwork(tmp_path / "lin.pt", widths, activation_func="linear", seed=6, scale=0.5)
    hn = Hypernetwork.load(tmp_path / "lin.pt")
    unet, seen = _unet_and_counts(hn)
    inputs = _sd1_inputs()
    base = _run(unet, inputs)
    patch = HypernetworkPatch(unet)
    patch.set([(hn, 0.9)])
    got = _run(unet, inputs)
    text_tokens = inputs["encoder_hidden_states"].shape[1]
    assert seen and all(tokens == text_tokens for tokens, _ in seen)  # only the text context went through MLPs
    patch.set([])
    want, hits = _reference(unet, inputs, [(saved, 0.9)])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert (got - base).abs().max() > 1e-3
    assert ("attn1", 32) in hits and ("attn1", 64) in hits  # self-attention was changed too

    # while gradients are recorded (training) the MLPs run step by step, with the same result
    patch.set([(hn, 0.9)])
    seen.clear()
    with torch.enable_grad():
        trained_path = unet(**inputs).sample.detach()
    assert any(tokens != text_tokens for tokens, _ in seen)
    torch.testing.assert_close(trained_path, got, rtol=1e-5, atol=1e-5)
    patch.set([])
    assert torch.equal(_run(unet, inputs), base)


def test_folds_follow_lora_merges_and_training(tmp_path):
    """One processor stays installed while its inputs change under it: each change must refold."""
    saved = write_hypernetwork(tmp_path / "lin.pt", (32, 64), activation_func="linear", seed=7, scale=0.5)
    hn = Hypernetwork.load(tmp_path / "lin.pt")
    unet = tiny_sd1(seed=5)["unet"].eval()
    inputs = _sd1_inputs()
    attn1 = next(m for n, m in _attn_modules(unet) if n.endswith("attn1"))
    delta = torch.randn(attn1.to_k.weight.shape, generator=torch.Generator().manual_seed(8)) * 0.2
    trained = copy.deepcopy(saved)
    trained[32][1]["linear.0.weight"] = saved[32][1]["linear.0.weight"] * 1.5

    def reference(chain_saved):
        return _reference(unet, inputs, [(chain_saved, 1.2)])[0]

    def merge(sign: float) -> None:  # a LoRA merged in place into a self-attention projection (WeightPatcher's way)
        with torch.no_grad():
            attn1.to_k.weight.add_(delta * sign)

    want_plain = reference(saved)
    merge(1)
    want_merged = reference(saved)
    merge(-1)
    want_trained = reference(trained)

    patch = HypernetworkPatch(unet)
    patch.set([(hn, 1.2)])
    processor = attn1.processor
    torch.testing.assert_close(_run(unet, inputs), want_plain, rtol=1e-5, atol=1e-5)
    merge(1)
    torch.testing.assert_close(_run(unet, inputs), want_merged, rtol=1e-5, atol=1e-5)
    assert (want_merged - want_plain).abs().max() > 1e-4
    merge(-1)
    torch.testing.assert_close(_run(unet, inputs), want_plain, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # a training step on the hypernetwork
        hn.layers[32][1].linear[0].weight.mul_(1.5)
    torch.testing.assert_close(_run(unet, inputs), want_trained, rtol=1e-5, atol=1e-5)
    assert attn1.processor is processor  # all of it through the same processor and its folds


def test_multiplier_zero_linear_file_is_bit_exact(tmp_path):
    write_hypernetwork(tmp_path / "z.pt", (TINY_TEXT_WIDTH, 32, 64), activation_func="linear")
    unet = tiny_sd1(seed=5)["unet"].eval()
    inputs = _sd1_inputs()
    base = _run(unet, inputs)
    HypernetworkPatch(unet).set([(Hypernetwork.load(tmp_path / "z.pt"), 0.0)])
    assert torch.equal(_run(unet, inputs), base)


def test_projections_that_are_not_plain_linears_are_not_folded(tmp_path):
    """An unmerged LoRA layer (PEFT) wraps to_k: it must see the transformed context, so no fold."""
    saved = write_hypernetwork(tmp_path / "lin.pt", (32, 64), activation_func="linear", seed=9, scale=0.5)
    hn = Hypernetwork.load(tmp_path / "lin.pt")
    unet = tiny_sd1(seed=5)["unet"].eval()

    class Wrapped(torch.nn.Linear):  # stands for a LoRA layer around the projection
        def forward(self, x):
            return super().forward(x) * 1.1

    for _, attn in _attn_modules(unet):
        wrapped = Wrapped(attn.to_k.in_features, attn.to_k.out_features, bias=attn.to_k.bias is not None)
        wrapped.load_state_dict(attn.to_k.state_dict())
        attn.to_k = wrapped
    inputs = _sd1_inputs()
    patch = HypernetworkPatch(unet)
    patch.set([(hn, 1.0)])
    got = _run(unet, inputs)
    patch.set([])
    torch.testing.assert_close(got, _reference(unet, inputs, [(saved, 1.0)])[0], rtol=1e-5, atol=1e-5)


def test_weights_elsewhere_than_the_context_are_not_folded(tmp_path):
    """--lowvram leaves a projection's weights on the meta device until the Linear itself runs."""
    from diffusers.models.attention_processor import Attention

    from modules.networks.hypernet_fold import FoldedProjections

    write_hypernetwork(tmp_path / "lin.pt", (32,), activation_func="linear")
    hn = Hypernetwork.load(tmp_path / "lin.pt")
    folds = FoldedProjections([(hn, 1.0)])
    attn = Attention(query_dim=32, heads=2, dim_head=16).eval()
    context = _x(32)
    assert folds.get(attn, context) is not None
    attn.to_k.to("meta")
    assert folds.get(attn, context) is None
