"""HSC losses, memory update and read-out against naive per-sample computations (docs/method.md §4-5)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hscvad.hsc import losses as L


def _setup(b=6, n=20, d=8, scenes=3, classes=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(b, d, generator=g), dim=1)
    bank = F.normalize(torch.randn(n, d, generator=g), dim=1)
    bank_scene = torch.randint(0, scenes, (n,), generator=g)
    bank_cls = torch.randint(0, classes, (n,), generator=g)
    idx = torch.randperm(n, generator=g)[:b]
    return z, bank, bank_scene[idx], bank_cls[idx], bank_scene, bank_cls


def naive_scene(z, bank, a_s, b_s, tau):
    out = []
    for i in range(len(z)):
        num = sum(math.exp(float(z[i] @ bank[j]) / tau) for j in range(len(bank)) if b_s[j] == a_s[i])
        den = sum(math.exp(float(z[i] @ bank[j]) / tau) for j in range(len(bank)))
        out.append(-math.log(num / den))
    return sum(out) / len(out)


def naive_object(z, bank, a_s, a_c, b_s, b_c, tau):
    out = []
    for i in range(len(z)):
        same = [j for j in range(len(bank)) if b_s[j] == a_s[i]]
        num = sum(math.exp(float(z[i] @ bank[j]) / tau) for j in same if b_c[j] == a_c[i])
        den = sum(math.exp(float(z[i] @ bank[j]) / tau) for j in same)
        out.append(-math.log(num / den))
    return sum(out) / len(out)


@pytest.mark.parametrize("tau", [0.5, 0.1])
def test_scene_contrast_matches_naive(tau):
    z, bank, a_s, a_c, b_s, b_c = _setup()
    got = float(L.scene_contrast(z, bank, a_s, b_s, tau))
    assert got == pytest.approx(naive_scene(z, bank, a_s, b_s, tau), rel=1e-5)


@pytest.mark.parametrize("tau", [0.5, 0.1])
def test_object_contrast_matches_naive(tau):
    z, bank, a_s, a_c, b_s, b_c = _setup(seed=3)
    got = float(L.object_contrast(z, bank, a_s, a_c, b_s, b_c, tau))
    assert got == pytest.approx(naive_object(z, bank, a_s, a_c, b_s, b_c, tau), rel=1e-5)


def test_contrast_with_one_scene_is_zero_and_no_gradient_into_bank():
    z, bank, a_s, a_c, b_s, b_c = _setup()
    z = z.clone().requires_grad_(True)
    bank = bank.clone().requires_grad_(True)
    zero = torch.zeros_like(b_s)
    loss = L.scene_contrast(z, bank, zero[: len(z)], zero, 0.5)
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
    loss2 = L.object_contrast(z, bank, a_s, a_c, b_s, b_c, 0.5)
    loss2.backward()
    assert bank.grad is None and z.grad is not None


def test_scene_classification_is_plain_cross_entropy():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    y = torch.tensor([0, 2])
    p = torch.softmax(logits, 1)
    naive = -(math.log(p[0, 0]) + math.log(p[1, 2])) / 2
    assert float(L.scene_classification(logits, y)) == pytest.approx(naive, rel=1e-6)


def test_reconstruction_reductions():
    r, t = torch.ones(2, 3), torch.zeros(2, 3)
    assert float(L.reconstruction(r, t, "mean")) == pytest.approx(1.0)
    assert float(L.reconstruction(r, t, "sum")) == pytest.approx(3.0)


def test_memory_update_eq6():
    bank = F.normalize(torch.randn(5, 4), dim=1)
    z = F.normalize(torch.randn(2, 4), dim=1)
    idx = torch.tensor([1, 3])
    expected = bank.clone()
    for k, i in enumerate(idx):
        v = 0.9 * bank[i] + 0.1 * z[k]
        expected[i] = v / v.norm()
    L.memory_update(bank, idx, z, 0.9)
    assert torch.allclose(bank, expected, atol=1e-6)
    assert torch.allclose(bank.norm(dim=1), torch.ones(5), atol=1e-6)


def test_memory_readout_eq10():
    bank = F.normalize(torch.randn(7, 4), dim=1)
    z = F.normalize(torch.randn(3, 4), dim=1)
    got = L.memory_readout(z, bank, 0.5)
    for i in range(3):
        w = np.exp([float(z[i] @ m) / 0.5 for m in bank])
        w /= w.sum()
        exp = sum(float(w[j]) * bank[j] for j in range(7))
        assert torch.allclose(got[i], exp, atol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_product_hierarchical_contrast_equals_the_two_definitions(seed):
    """Values and gradients of the fused Eqs. 3 and 5 (training's) equal the masked definitions,
    with a scene that has no bank entry and anchors whose class is missing from their scene; a tiny
    tau (where shifted exponentials could underflow) takes the definitions' path."""
    g = torch.Generator().manual_seed(seed)
    n, b, d, scenes, classes = 300, 40, 16, 6, 4
    bank = F.normalize(torch.randn(n, d, generator=g), dim=1)
    b_scene = torch.randint(0, scenes - 1, (n,), generator=g)  # scene 5 has no bank entry
    b_cls = torch.randint(0, classes, (n,), generator=g)
    b_cls[b_scene == 2] = 0  # in scene 2 only class 0: anchors of other classes have no positive
    a_scene = torch.randint(0, scenes, (b,), generator=g)
    a_cls = torch.randint(0, classes, (b,), generator=g)
    z0 = F.normalize(torch.randn(b, d, generator=g), dim=1)
    groups = L.ContrastGroups(b_scene, b_cls, scenes)
    assert groups.count.shape == (scenes, classes) and int(groups.count[5].sum()) == 0
    for tau in (0.01, 0.07, 0.5):
        z_ref = z0.clone().requires_grad_(True)
        ref_s = L.scene_contrast(z_ref, bank, a_scene, b_scene, tau)
        ref_o = L.object_contrast(z_ref, bank, a_scene, a_cls, b_scene, b_cls, tau)
        (ref_s + 2 * ref_o).backward()
        z_new = z0.clone().requires_grad_(True)
        new_s, new_o = L.hierarchical_contrast(z_new, bank, a_scene, a_cls, groups, tau)
        (new_s + 2 * new_o).backward()
        assert float(new_s.detach()) == pytest.approx(float(ref_s.detach()), rel=1e-5, abs=1e-5)
        assert float(new_o.detach()) == pytest.approx(float(ref_o.detach()), rel=1e-5, abs=1e-5)
        assert torch.allclose(z_new.grad, z_ref.grad, atol=1e-5, rtol=1e-4)
    only_s, none_o = L.hierarchical_contrast(z0, bank, a_scene, a_cls, groups, 0.5, objects=False)
    assert none_o is None
    assert float(only_s) == pytest.approx(float(L.scene_contrast(z0, bank, a_scene, b_scene, 0.5)), abs=1e-5)


def test_group_exp_sums_are_the_written_out_operations_to_the_bit():
    """hierarchical_contrast's one-buffer autograd function gives exactly the values and gradient of
    the same operations written out for autograd (product, shift, exponential, group sums)."""
    g = torch.Generator().manual_seed(3)
    n, b, d, scenes, classes, tau = 3000, 64, 24, 5, 3, 0.5
    bank = F.normalize(torch.randn(n, d, generator=g), dim=1)
    groups = L.ContrastGroups(torch.randint(0, scenes, (n,), generator=g), torch.randint(0, classes, (n,), generator=g),
                              scenes)
    z0 = F.normalize(torch.randn(b, d, generator=g), dim=1)
    w = torch.randn(b, scenes * classes, generator=g)  # an arbitrary upstream gradient
    z_ref = z0.clone().requires_grad_(True)
    ref, ref_top, _ = L.group_exp_sums_autograd(z_ref, bank, groups.group, scenes * classes, tau)
    (ref * w).sum().backward()
    z_new = z0.clone().requires_grad_(True)
    got, top, spread = L.group_exp_sums(z_new, bank, groups.group, scenes * classes, tau)
    (got * w).sum().backward()
    assert np.isnan(spread) and torch.equal(top, ref_top)  # 2 / tau = 4: the spread need not be measured
    assert torch.equal(got.detach(), ref.detach())
    assert torch.equal(z_new.grad, z_ref.grad)


def test_contrast_step_bench_finds_both_ways_identical():
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(repo / "bench" / "contrast_step.py"), "--sizes", "700:16", "--threads", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    row = out.strip().splitlines()[-1].split()
    assert row[:2] == ["700", "16"] and row[-1] == "yes", out
