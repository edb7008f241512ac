"""Hierarchical semantic contrast (docs/method.md §4) and memory-based scoring (§5), vectorised.

Anchors are a batch's encodings z (B, d); the other side of every similarity is the memory bank
(N, d), which carries no gradient. All vectors are l2-normalised, so sim is a dot product.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _masked_lse(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(logits.masked_fill(~mask, float("-inf")), dim=1)


def scene_contrast(z, bank, anchor_scene, bank_scene, tau: float) -> torch.Tensor:
    """Eq. 3: -log( sum_{same scene} exp(sim/tau) / sum_{all} exp(sim/tau) ), batch mean."""
    logits = z @ bank.detach().T / tau
    pos = anchor_scene[:, None] == bank_scene[None, :]
    valid = pos.any(1)
    loss = torch.logsumexp(logits, 1) - _masked_lse(logits, pos)
    return loss[valid].mean() if valid.any() else logits.new_zeros(())


def object_contrast(z, bank, anchor_scene, anchor_class, bank_scene, bank_class, tau: float) -> torch.Tensor:
    """Eq. 5, within the anchor's scene: -log( sum_{same scene, same class} / sum_{same scene} )."""
    logits = z @ bank.detach().T / tau
    same_scene = anchor_scene[:, None] == bank_scene[None, :]
    pos = same_scene & (anchor_class[:, None] == bank_class[None, :])
    valid = pos.any(1)
    loss = _masked_lse(logits, same_scene) - _masked_lse(logits, pos)
    return loss[valid].mean() if valid.any() else logits.new_zeros(())


class ContrastGroups:
    """The (scene, class) group of every memory-bank entry, for :func:`hierarchical_contrast`
    (fixed during training: computed once)."""

    def __init__(self, bank_scene: torch.Tensor, bank_class: torch.Tensor, n_scenes: int):
        self.bank_scene, self.bank_class = bank_scene, bank_class
        self.n_scenes = max(int(n_scenes), int(bank_scene.max()) + 1)
        self.n_classes = int(bank_class.max()) + 1
        self.group = bank_scene * self.n_classes + bank_class
        self.count = torch.bincount(self.group, minlength=self.n_scenes * self.n_classes).view(
            self.n_scenes, self.n_classes)


#: largest spread of a query's logits (max - min) for which exp(logit - max) cannot underflow in float32
_MAX_SPREAD = 80.0


class _GroupExpSums(torch.autograd.Function):
    """Each anchor's exp-similarities to the bank, shifted by its largest, summed per bank group:
    ``sums[i, g] = sum_{j in g} exp(l_ij - max_j l_ij)`` with ``l = z bank^T / tau``; also returns
    the shift and the largest spread of a query's logits (NaN where not computed: it cannot exceed
    ``_MAX_SPREAD`` for unit vectors at this tau).

    The same operations, in the same order, as writing it out for autograd (the same numbers to the
    bit, values and gradients), in two anchors x bank arrays instead of seven: the product, shift and
    exponential overwrite one, which the backward pass reuses for the gradient, and the gradient's
    gather is a ``gather`` rather than ``index_select`` (the same values, faster). At
    ShanghaiTech's scale (356,000 entries) that halves the contrast's cost when the latent is small
    (docs/benchmarks.md, "Training throughput")."""

    @staticmethod
    def forward(ctx, z, bank, group, n_groups, tau):
        e = torch.mm(z, bank.t())
        e.div_(tau)
        top = e.amax(1, keepdim=True)
        # unit vectors: logits lie within +-1/tau; the spread is measured only where 2/tau could reach the limit
        spread = float((top - e.amin(1, keepdim=True)).max()) if 2.0 / tau > _MAX_SPREAD / 1.01 else float("nan")
        e.sub_(top).exp_()
        if e.is_cuda:  # index_add_ accumulates with atomics on CUDA: a one-hot product keeps runs deterministic
            sums = e @ F.one_hot(group, n_groups).to(e.dtype)
        else:
            sums = e.new_zeros(len(e), n_groups).index_add_(1, group, e)
        ctx.save_for_backward(e, bank, group)
        ctx.tau = tau
        ctx.mark_non_differentiable(top)
        return sums, top, spread

    @staticmethod
    def backward(ctx, grad_sums, _top, _spread):
        e, bank, group = ctx.saved_tensors
        g = torch.gather(grad_sums, 1, group.expand(len(e), -1))
        g.mul_(e).div_(ctx.tau)
        return g.mm(bank), None, None, None, None


def group_exp_sums(z: torch.Tensor, bank: torch.Tensor, group: torch.Tensor, n_groups: int,
                   tau: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """:class:`_GroupExpSums`: (sums per anchor and group, each anchor's shift, largest spread or NaN)."""
    return _GroupExpSums.apply(z, bank.detach(), group, int(n_groups), float(tau))


def group_exp_sums_autograd(z: torch.Tensor, bank: torch.Tensor, group: torch.Tensor, n_groups: int,
                            tau: float) -> tuple[torch.Tensor, torch.Tensor, float]:
    """:func:`group_exp_sums` written out for autograd, as training computed it on the CPU before (an
    array per operation): the reference that the tests and ``bench/contrast_step.py`` compare it with."""
    logits = z @ bank.detach().T / tau
    top = logits.detach().amax(1, keepdim=True)
    spread = float((top - logits.detach().amin(1, keepdim=True)).max())
    e = torch.exp(logits - top)
    return e.new_zeros(len(e), int(n_groups)).index_add_(1, group, e), top, spread


def hierarchical_contrast(z: torch.Tensor, bank: torch.Tensor, anchor_scene: torch.Tensor,
                          anchor_class: torch.Tensor, groups: ContrastGroups, tau: float, scene: bool = True,
                          objects: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Eqs. 3 and 5 from one similarity product, with no anchors x bank mask: the values of
    :func:`scene_contrast` and :func:`object_contrast` (their definitions).

    Each anchor's exp-similarities, shifted by its largest one, are summed per (scene, class) group of
    the bank in one pass (:class:`_GroupExpSums`); Eq. 3 is log(all) - log(anchor's scene) and Eq. 5
    log(anchor's scene) - log(anchor's scene and class), the shift cancelling. When a query's
    similarities spread so widely (a tiny tau) that a shifted exponential could underflow, the
    definitions are used instead.
    """
    sums, _, spread = group_exp_sums(z, bank, groups.group, groups.n_scenes * groups.n_classes, tau)
    if spread > _MAX_SPREAD:
        return (scene_contrast(z, bank, anchor_scene, groups.bank_scene, tau) if scene else None,
                object_contrast(z, bank, anchor_scene, anchor_class, groups.bank_scene, groups.bank_class, tau)
                if objects else None)
    sums = sums.view(len(sums), groups.n_scenes, groups.n_classes)
    rows = torch.arange(len(sums), device=sums.device)
    scene_sum = sums.sum(2)[rows, anchor_scene]
    scn = obj = None
    if scene:
        valid = groups.count[anchor_scene].sum(1) > 0
        loss = torch.log(sums.sum((1, 2))[valid]) - torch.log(scene_sum[valid])
        scn = loss.mean() if valid.any() else sums.new_zeros(())
    if objects:
        valid = groups.count[anchor_scene, anchor_class] > 0
        loss = torch.log(scene_sum[valid]) - torch.log(sums[rows, anchor_scene, anchor_class][valid])
        obj = loss.mean() if valid.any() else sums.new_zeros(())
    return scn, obj


def scene_classification(logits: torch.Tensor, scene: torch.Tensor) -> torch.Tensor:
    """Eq. 4: cross-entropy of Lambda(z) (raw logits, softmax applied once) against the scene."""
    return F.cross_entropy(logits, scene)


def reconstruction(recon: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """L_rec: 'mean' over every element (the reference) or 'sum' over dimensions, batch mean."""
    err = (recon - target) ** 2
    return err.mean() if reduction == "mean" else err.sum(1).mean()


@torch.no_grad()
def memory_update(bank: torch.Tensor, idx: torch.Tensor, z: torch.Tensor, momentum: float) -> None:
    """Eq. 6 in place: M[i] <- normalize(m * M[i] + (1 - m) * z_i)."""
    bank[idx] = F.normalize(momentum * bank[idx] + (1.0 - momentum) * z.detach(), dim=1)


@torch.no_grad()
def memory_readout(z: torch.Tensor, bank: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 10: sum_i softmax_i(sim(z, M_i) / tau) M_i."""
    return torch.softmax(z @ bank.T / tau, dim=1) @ bank
