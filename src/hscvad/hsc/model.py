"""The scene-aware memory autoencoder of one stream (docs/method.md §3), tensors in, tensors out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mlp(dims: list[int], block: str = "ours") -> nn.Sequential:
    """``ours``: linear layers with batch normalisation and ReLU between them (none after the last).
    ``reference``: the public reference code's block, linear layers without bias, each followed by
    batch normalisation, with ReLU between them (Linear -> BN -> ReLU -> Linear -> BN)."""
    if block not in ("ours", "reference"):
        raise ValueError(f"hsc.architecture.<stream>.block: {block!r} is not 'ours' or 'reference'")
    ref = block == "reference"
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=not ref))
        last = i == len(dims) - 2
        if not last or ref:
            layers.append(nn.BatchNorm1d(dims[i + 1]))
        if not last:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SceneAwareAE(nn.Module):
    """Encoder Phi([f, f_B]) -> l2-normalised z (Eq. 1); decoder Theta(z) -> f (Eq. 2); linear
    scene classifier Lambda(z) (Eq. 4, absent when there is one scene or L_LC is off).

    ``scene_aware=False`` feeds the object feature alone (Table 3 ablation);
    ``object_centric=False`` makes the decoder reconstruct [f, f_B] instead of f.
    """

    def __init__(self, feat_dim: int, scene_dim: int, encoder_hidden: list[int], latent: int,
                 decoder_hidden: list[int], n_scenes: int, scene_aware: bool = True,
                 object_centric: bool = True, classifier: bool = True, block: str = "ours"):
        super().__init__()
        self.feat_dim, self.scene_dim = int(feat_dim), int(scene_dim)
        self.scene_aware, self.object_centric = bool(scene_aware), bool(object_centric)
        in_dim = self.feat_dim + (self.scene_dim if self.scene_aware else 0)
        out_dim = self.feat_dim + (0 if self.object_centric else self.scene_dim)
        self.encoder = mlp([in_dim, *encoder_hidden, latent], block)
        self.decoder = mlp([latent, *decoder_hidden, out_dim], block)
        self.classifier = nn.Linear(latent, n_scenes) if (classifier and n_scenes > 1) else None

    def encode(self, f: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        x = torch.cat([f, fb], 1) if self.scene_aware else f
        return F.normalize(self.encoder(x), dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def target(self, f: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
        return f if self.object_centric else torch.cat([f, fb], 1)
