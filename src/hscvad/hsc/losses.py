"""Hierarchical semantic contrast (METHOD.md §4) and memory-based scoring (§5), vectorised.

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
