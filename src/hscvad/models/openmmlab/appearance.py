"""timm's ViT-L/16 on object crops."""

from __future__ import annotations

import numpy as np

from ..appearance import AppearanceModel
from ..registry import Runtime
from .loading import OpenMMLabBackend, require, torch_device


class TimmViT(AppearanceModel, OpenMMLabBackend):
    """timm ViT (default ViT-L/16 at 224 px): the pooled 1024-d token of each crop, many crops
    per forward pass."""
    uses_gpu = True  # PyTorch: CUDA when present

    def __init__(self, cfg: dict, runtime: Runtime, key: str):
        require("timm")
        import timm
        import torch

        self.arch = cfg["arch"]
        self.device = torch_device(runtime)
        self._use(timm.create_model(self.arch, pretrained=False, num_classes=0).eval().to(self.device), cfg, key)
        self.random = False  # LayerNorm only: no BatchNorm statistics to set
        dc = self.model.pretrained_cfg
        self.size = int(dc.get("input_size", (3, 224, 224))[-1])
        self.mean = torch.tensor(dc.get("mean", (0.5, 0.5, 0.5)), device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(dc.get("std", (0.5, 0.5, 0.5)), device=self.device).view(1, 3, 1, 1)
        self.dim = int(self.model.num_features)
        self.batch_size = int(cfg["batch_size"])
        self.input_hw = (self.size, self.size)  # crops are cut at this size

    def describe(self) -> str:
        return f"timm_vit({self.arch}, {self.weights})"

    def embed(self, crops: np.ndarray) -> np.ndarray:
        import torch

        out = []
        for a in range(0, len(crops), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(crops[a : a + self.batch_size])).to(self.device)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            if x.shape[-1] != self.size or x.shape[-2] != self.size:
                x = torch.nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear",
                                                    align_corners=False)
            with torch.no_grad():
                out.append(self.model((x - self.mean) / self.std).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
