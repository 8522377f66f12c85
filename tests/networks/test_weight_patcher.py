"""WeightPatcher: merged deltas, bit-exact restore, only changed modules rewritten, rollback on failure."""
from __future__ import annotations

import pytest
import torch

from modules.networks.weight_patcher import Contribution, WeightPatcher


class Fixed:
    """A delta source returning a constant delta (and counting calls)."""

    def __init__(self, d_weight: torch.Tensor, d_bias: torch.Tensor | None = None):
        self.d_weight, self.d_bias, self.calls = d_weight, d_bias, 0

    def delta(self, weight, multiplier, *, dyn_dim=None, bias=None):
        self.calls += 1
        return self.d_weight * multiplier, (self.d_bias * multiplier if self.d_bias is not None else None)


class Failing:
    def delta(self, weight, multiplier, *, dyn_dim=None, bias=None):
        raise ValueError("broken module")


def snapshot(*modules):
    return [{k: v.clone() for k, v in m.state_dict().items()} for m in modules]


def assert_bitwise(modules, snap):
    for module, saved in zip(modules, snap):
        for key, value in module.state_dict().items():
            assert torch.equal(value, saved[key]), key


@pytest.fixture
def layers():
    torch.manual_seed(0)
    return torch.nn.Linear(8, 4), torch.nn.Conv2d(3, 5, 3), torch.nn.Linear(8, 4).half()


def test_merge_adds_deltas_in_float32_and_restore_is_bitwise(layers):
    lin, conv, half = layers
    original = snapshot(lin, conv, half)
    d1 = torch.randn(4, 8)
    d2 = torch.randn(5, 3, 3, 3)
    d3 = torch.randn(4, 8)
    patcher = WeightPatcher()
    patcher.apply({
        lin: [Contribution("a", Fixed(d1, torch.ones(4)), 0.5)],
        conv: [Contribution("a", Fixed(d2), 1.0), Contribution("b", Fixed(d2), -2.0)],
        half: [Contribution("a", Fixed(d3), 1.5)],
    })
    assert torch.allclose(lin.weight, original[0]["weight"] + 0.5 * d1)
    assert torch.allclose(lin.bias, original[0]["bias"] + 0.5)
    assert torch.allclose(conv.weight, original[1]["weight"] - d2, atol=1e-6)
    expected_half = (original[2]["weight"].float() + 1.5 * d3).half()
    assert torch.equal(half.weight, expected_half)
    assert half.weight.dtype == torch.float16
    patcher.apply({})
    assert_bitwise((lin, conv, half), original)
    assert patcher.patched_modules == []


def test_only_modules_whose_contributions_changed_are_rewritten(layers):
    lin, conv, _ = layers
    a, b = Fixed(torch.randn(4, 8)), Fixed(torch.randn(5, 3, 3, 3))
    patcher = WeightPatcher()
    assert patcher.apply({lin: [Contribution("a", a, 1.0)], conv: [Contribution("b", b, 1.0)]}) == 2
    # same request: nothing recomputed
    assert patcher.apply({lin: [Contribution("a", a, 1.0)], conv: [Contribution("b", b, 1.0)]}) == 0
    assert (a.calls, b.calls) == (1, 1)
    # only lin's multiplier changes
    assert patcher.apply({lin: [Contribution("a", a, 0.3)], conv: [Contribution("b", b, 1.0)]}) == 1
    assert (a.calls, b.calls) == (2, 1)


def test_changing_set_restores_before_adding(layers):
    lin, _, _ = layers
    original = lin.weight.detach().clone()
    d = torch.randn(4, 8)
    patcher = WeightPatcher()
    patcher.apply({lin: [Contribution("a", Fixed(d), 1.0)]})
    patcher.apply({lin: [Contribution("a", Fixed(d), 0.25)]})
    assert torch.allclose(lin.weight, original + 0.25 * d)
    patcher.apply({lin: []})
    assert torch.equal(lin.weight, original)


def test_failure_rolls_back_touched_modules_and_propagates(layers):
    lin, conv, half = layers
    original = snapshot(lin, conv, half)
    patcher = WeightPatcher()
    with pytest.raises(ValueError, match="broken"):
        patcher.apply({lin: [Contribution("a", Fixed(torch.randn(4, 8)), 1.0)], conv: [Contribution("x", Failing(), 1.0)]})
    assert_bitwise((lin, conv, half), original)
    assert patcher.patched_modules == []


def test_cpu_backup_device_restores_exactly(layers):
    lin, _, _ = layers
    original = lin.weight.detach().clone()
    patcher = WeightPatcher(backup_device="cpu")
    patcher.apply({lin: [Contribution("a", Fixed(torch.randn(4, 8)), 1.0)]})
    assert not torch.equal(lin.weight, original)
    patcher.restore_all()
    assert torch.equal(lin.weight, original)


def test_later_contributions_see_the_weight_patched_by_earlier_ones(layers):
    lin, _, _ = layers
    seen = []

    class Recording:
        def delta(self, weight, multiplier, *, dyn_dim=None, bias=None):
            seen.append(weight.clone())
            return torch.ones_like(weight), None

    original = lin.weight.detach().clone()
    WeightPatcher().apply({lin: [Contribution("a", Recording(), 1.0), Contribution("b", Recording(), 1.0)]})
    assert torch.equal(seen[0], original)
    assert torch.equal(seen[1], original + 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_low_rank_fast_path_equals_the_general_delta(dtype):
    """Plain LoRAs go through one in-place addmm; the result must match W + Σ delta() of the same modules."""
    from modules.networks.adapters.lora import LoRAModule

    torch.manual_seed(1)
    conv = torch.nn.Conv2d(6, 8, 3).to(dtype)
    original = conv.weight.detach().float().clone()

    def lora(rank, seed, **extra):
        g = torch.Generator().manual_seed(seed)
        t = {"lora_down.weight": torch.randn(rank, 6, 3, 3, generator=g), "lora_up.weight": torch.randn(8, rank, 1, 1, generator=g),
             "alpha": torch.tensor(rank / 2)}
        t.update(extra)
        return LoRAModule(f"m{seed}", t)

    a, b = lora(4, 1), lora(2, 2)
    c = lora(3, 3, dora_scale=torch.rand(1, 6, 1, 1) + 0.5)  # DoRA: general path between two fast ones
    assert a.low_rank(tuple(conv.weight.shape), 0.7) is not None and c.low_rank(tuple(conv.weight.shape), 1.0) is None
    WeightPatcher().apply({conv: [Contribution("a", a, 0.7), Contribution("c", c, 0.9), Contribution("b", b, -1.3, dyn_dim=1)]})
    w = original + a.delta(original, 0.7)[0]
    w = w + c.delta(w, 0.9)[0]
    w = w + b.delta(w, -1.3, dyn_dim=1)[0]
    assert torch.allclose(conv.weight.float(), w.to(dtype).float(), atol=1e-5 if dtype == torch.float32 else 1e-2)
