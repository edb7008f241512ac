"""The binary motion classifier of the supplement (Eq. 2): input [f_mot, f_B], a three-layer MLP
with hidden units 512 and 32 and 2 outputs, ReLU after the first layer, dropout 0.6 between layers,
softmax and cross-entropy. At test time the motion stream's score becomes P(abnormal)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class MotionClassifier(nn.Module):
    def __init__(self, in_dim: int, hidden: tuple[int, int] = (512, 32), dropout: float = 0.6):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], 2)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, 2); softmax is applied by the loss and by ``abnormal_probability``."""
        x = self.drop(F.relu(self.fc1(x)))
        x = self.drop(self.fc2(x))
        return self.fc3(x)


def train_classifier(x: np.ndarray, y: np.ndarray, epochs: int = 50, lr: float = 1e-3, batch_size: int = 256,
                     weight_decay: float = 1e-4, seed: int = 0, device: str = "cpu"
                     ) -> tuple[MotionClassifier, list[float]]:
    """Cross-entropy training with Adam; returns the model (in eval mode) and the mean loss per epoch."""
    if len(np.unique(y)) < 2:
        raise ValueError("the motion classifier needs samples of both classes (normal and abnormal); "
                         "the selection kept only one (see motion_augmentation.t_norm / t_abn)")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    dev = torch.device(device)
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(dev)
    yt = torch.from_numpy(np.asarray(y, np.int64)).to(dev)
    model = MotionClassifier(xt.shape[1]).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history = []
    n = len(xt)
    for _ in range(int(epochs)):
        model.train()
        order = torch.randperm(n, generator=gen).to(dev)
        total = 0.0
        for lo in range(0, n, batch_size):
            idx = order[lo : lo + batch_size]
            loss = F.cross_entropy(model(xt[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        history.append(total / n)
    return model.eval(), history


@torch.no_grad()
def abnormal_probability(model: MotionClassifier, x: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    model.eval()
    dev = next(model.parameters()).device
    out = []
    for lo in range(0, len(x), batch_size):
        xb = torch.from_numpy(np.ascontiguousarray(x[lo : lo + batch_size], np.float32)).to(dev)
        out.append(torch.softmax(model(xb), 1)[:, 1].cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def classifier_input(feat: np.ndarray, scene_feat: np.ndarray, feature_norm: str) -> np.ndarray:
    """The classifier's input [f_mot, f_B] (f_mot normalised as ``hsc.feature_norm`` says)."""
    from ..hsc.train import prepare_features

    return np.concatenate([prepare_features(feat, feature_norm), scene_feat], 1).astype(np.float32)


def load_classifier(path: str, device: str = "cpu") -> MotionClassifier | None:
    """The trained classifier, or None when the file marks it disabled (fallback ``autoencoder``)."""
    payload = torch.load(path, map_location=device, weights_only=True)
    if not payload["enabled"]:
        return None
    model = MotionClassifier(payload["in_dim"])
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()
