"""Training one HSC stream (docs/method.md §4) and scoring samples with it (§5, Eqs. 10-11).

Batches are index tensors into the stream's arrays; every loss and the memory update act on the
whole batch at once. Determinism: a seeded ``torch.Generator`` orders the batches, the model is
initialised after ``torch.manual_seed(seed)``, and deterministic algorithms are requested.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..denormals import flush_denormals
from . import losses as L
from .model import SceneAwareAE


@dataclass
class StreamData:
    """Training (or test) samples of one stream: object features, their clip's scene feature,
    the scene pseudo-label and the object class used by the object-level contrast."""

    feat: np.ndarray
    scene_feat: np.ndarray
    scene: np.ndarray
    cls: np.ndarray

    def __len__(self) -> int:
        return len(self.feat)


@dataclass
class TrainResult:
    model: SceneAwareAE
    bank: torch.Tensor
    bank_scene: torch.Tensor
    bank_class: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)


def prepare_features(feat: np.ndarray, norm: str, stats: dict[str, list[float]] | None = None) -> np.ndarray:
    """``none``: as is; ``l2``: unit length per sample; ``standard``: per dimension
    (f - mean) / std with the training samples' ``stats`` (:func:`standard_stats`)."""
    feat = np.asarray(feat, np.float32)
    if norm == "l2":
        return feat / np.maximum(np.linalg.norm(feat, axis=1, keepdims=True), 1e-12)
    if norm == "none":
        return feat
    if norm in ("standard", "group"):
        if stats is None:
            raise ValueError("input normalisation 'standard' needs the training samples' mean and std")
        mean, std = np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)
        return ((feat - mean) / std).astype(np.float32)
    raise ValueError(f"hsc.feature_norm: unknown value {norm!r} (none, l2, standard or group)")


def standard_stats(feat: np.ndarray, groups: list[str] | None = None) -> dict[str, list[float]]:
    """Per-dimension mean and standard deviation of training features (constant dimensions get 1).
    With ``groups`` (one name per column: columns in one unit) every column of a group is divided by
    the group's pooled standard deviation, sqrt(mean of its columns' variances), instead of its own:
    a direction of motion never seen in training (a variance near 0) then counts by its speed, not
    by how rare it was."""
    feat = np.asarray(feat, np.float64)
    sd = feat.std(0)
    if groups is not None:
        g = np.asarray(groups)
        if len(g) != feat.shape[1]:
            raise ValueError(f"{len(g)} column groups for {feat.shape[1]} feature columns")
        for name in np.unique(g):
            sd[g == name] = np.sqrt(np.mean(sd[g == name] ** 2))
    return {"mean": feat.mean(0).tolist(), "std": np.where(sd > 1e-8, sd, 1.0).tolist()}


def model_input(feat: np.ndarray, meta: dict[str, Any], stream: str) -> np.ndarray:
    """Object features as a trained checkpoint's ``stream`` expects them (its input normalisation)."""
    return prepare_features(feat, input_norm(meta["stream_cfg"][stream]), meta.get("input_norm_stats", {}).get(stream))


def input_norm(stream_cfg: dict[str, Any]) -> str:
    """A stream's input normalisation: its architecture's ``input_norm``, else ``hsc.feature_norm``."""
    return stream_cfg["architecture"].get("input_norm") or stream_cfg["feature_norm"]


def build_model(cfg: dict[str, Any], feat_dim: int, scene_dim: int, n_scenes: int) -> SceneAwareAE:
    arch, abl = cfg["architecture"], cfg["ablation"]
    return SceneAwareAE(
        feat_dim, scene_dim, arch["encoder_hidden"], arch["latent"], arch["decoder_hidden"], n_scenes,
        scene_aware=abl["scene_aware_encoder"], object_centric=abl["object_centric_decoder"],
        classifier=abl["loss_classification"], block=arch["block"],
    )


def _optimizer(cfg, params):
    name = cfg["optimizer"]
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    if name == "adam_fused":  # the same update in one pass over each tensor: rounds differently from adam
        return torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"], fused=True)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=0.9, weight_decay=cfg["weight_decay"])
    raise ValueError(f"hsc.optimizer: unknown optimiser {name!r}")


def train_stream(data: StreamData, cfg: dict[str, Any], n_scenes: int, seed: int, device: str = "cpu",
                 progress: Any = None, reference_contrast: bool = False,
                 steps_per_epoch: int | None = None) -> TrainResult:
    """Train one stream's autoencoder with the hierarchical semantic contrast losses.

    ``reference_contrast`` computes Eqs. 3 and 5 with their definitions (two anchors x bank products
    and masks) instead of :func:`losses.hierarchical_contrast`: the same losses, slower; for
    ``bench/train_scale.py`` and the tests that compare the two. ``steps_per_epoch`` ends each epoch
    after that many batches (``bench/projected_times.py`` times steps against a full-size bank)."""
    n = len(data)
    if n < 2:
        raise ValueError(f"HSC training needs at least 2 object samples, got {n}")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Subnormal floats (Adam moments, then weights, decaying towards 0 from epoch ~80 on Ped2) cost some CPUs two
    # orders of magnitude per operation; flush them to zero where the CPU supports it.
    flush_denormals()
    gen = torch.Generator().manual_seed(seed)
    dev = torch.device(device)
    abl = cfg["ablation"]
    tau, m = float(cfg["tau"]), float(cfg["memory_momentum"])

    # torch's default dtype (float32; bench/train_scale.py --float64 compares formulas without rounding)
    dtype = torch.get_default_dtype()
    f = torch.from_numpy(np.ascontiguousarray(data.feat, np.float32)).to(dev, dtype)
    fb = torch.from_numpy(np.ascontiguousarray(data.scene_feat, np.float32)).to(dev, dtype)
    scene = torch.from_numpy(data.scene.astype(np.int64)).to(dev)
    cls = torch.from_numpy(data.cls.astype(np.int64)).to(dev)

    model = build_model(cfg, f.shape[1], fb.shape[1], n_scenes).to(dev)
    opt = _optimizer(cfg, model.parameters())
    groups = L.ContrastGroups(scene, cls, n_scenes)
    bank = torch.zeros(n, cfg["architecture"]["latent"], device=dev)
    use_scn = abl["loss_scene"] and n_scenes > 1
    use_obj = bool(abl["loss_object"])
    batch = min(int(cfg["batch_size"]), n)
    starts = list(range(0, n, batch))
    if n % batch == 1:  # BatchNorm needs >= 2 samples: a lone last sample joins the batch before it
        starts.pop()
    batches = list(zip(starts, [*starts[1:], n]))[:steps_per_epoch]
    epochs = int(cfg["epochs"])
    # hsc.matmul_precision: medium lets float32 products run in bfloat16 where the CPU or GPU has it
    # (AMX / AVX512-BF16, tensor cores); the recalibration and scoring below run at full precision
    if cfg["matmul_precision"] not in ("highest", "medium"):
        raise ValueError(f"hsc.matmul_precision: {cfg['matmul_precision']!r} is not highest or medium")
    precision_before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(cfg["matmul_precision"])
    try:
        history = _epochs(model, opt, f, fb, scene, cls, groups, bank, gen, dev, cfg, batches, n, epochs, tau, m,
                          use_scn, use_obj, reference_contrast, progress)
    finally:
        torch.set_float32_matmul_precision(precision_before)
    recalibrate_batchnorm(model, f, fb, batch)
    model.eval()
    return TrainResult(model, bank, scene, cls, history)


def _epochs(model, opt, f, fb, scene, cls, groups, bank, gen, dev, cfg, batches, n, epochs, tau, m, use_scn, use_obj,
            reference_contrast, progress) -> list[dict[str, float]]:
    """The training loop of :func:`train_stream` (its epochs, in order)."""
    abl = cfg["ablation"]
    history: list[dict[str, float]] = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n, generator=gen).to(dev)
        sums: dict[str, float] = {}
        contrast = epoch > 0  # the bank holds every sample from the second epoch on
        for lo, hi in batches:
            idx = order[lo:hi]
            z = model.encode(f[idx], fb[idx])
            terms: dict[str, torch.Tensor] = {}
            if abl["loss_reconstruction"]:
                terms["rec"] = L.reconstruction(model.decode(z), model.target(f[idx], fb[idx]), cfg["rec_reduction"])
            if model.classifier is not None:
                terms["lc"] = L.scene_classification(model.classifier(z), scene[idx])
            if contrast and reference_contrast:
                if use_scn:
                    terms["scn"] = L.scene_contrast(z, bank, scene[idx], scene, tau)
                if use_obj:
                    terms["obj"] = L.object_contrast(z, bank, scene[idx], cls[idx], scene, cls, tau)
            elif contrast and (use_scn or use_obj):
                scn, obj = L.hierarchical_contrast(z, bank, scene[idx], cls[idx], groups, tau, use_scn, use_obj)
                terms.update({k: v for k, v in (("scn", scn), ("obj", obj)) if v is not None})
            loss = sum(terms.values()) if terms else None
            if loss is not None and loss.requires_grad:
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if contrast:
                L.memory_update(bank, idx, z, m)
            else:
                bank[idx] = z.detach()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
        rec = {"epoch": epoch + 1, **{k: v / n for k, v in sums.items()}}
        rec["total"] = sum(v for k, v in rec.items() if k != "epoch")
        history.append(rec)
        if progress is not None:
            progress.update(1)
            progress.set_postfix({k: f"{v:.4f}" for k, v in rec.items() if k != "epoch"})
    return history


@torch.no_grad()
def recalibrate_batchnorm(model: SceneAwareAE, f: torch.Tensor, fb: torch.Tensor, batch_size: int) -> None:
    """Recompute every BatchNorm layer's running mean and variance over the whole training set with
    the final weights (an exact average over training-size batches, "precise BN"). The running
    averages kept during training lag weights that the optimiser still moves (lr 0.01), and in
    evaluation mode the autoencoder then reconstructs far worse than in training: measured on
    Ped2's velocity stream, 167 against 1.3 (squared error per sample) after recalibration."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    n = len(f)
    starts = list(range(0, n, batch_size))
    if n % batch_size == 1 and len(starts) > 1:
        starts.pop()
    for lo, hi in zip(starts, [*starts[1:], n]):
        model.decode(model.encode(f[lo:hi], fb[lo:hi]))
    for m in bns:
        m.momentum = 0.1
    model.eval()


@torch.no_grad()
def encode(model: SceneAwareAE, feat: np.ndarray, scene_feat: np.ndarray, device, batch_size: int = 4096
           ) -> torch.Tensor:
    """Encodings z (Eq. 1) of samples, in evaluation mode."""
    model.eval()
    out = []
    for i in range(0, len(feat), batch_size):
        f = torch.from_numpy(np.ascontiguousarray(feat[i : i + batch_size], np.float32)).to(device)
        fb = torch.from_numpy(np.ascontiguousarray(scene_feat[i : i + batch_size], np.float32)).to(device)
        out.append(model.encode(f, fb))
    return torch.cat(out) if out else torch.zeros(0, model.decoder[0].in_features, device=device)


def _masked_logits(z: torch.Tensor, bank: torch.Tensor, tau: float, query_group: torch.Tensor | None,
                   bank_group: torch.Tensor | None) -> torch.Tensor:
    logits = z @ bank.T / tau
    if query_group is not None:  # leave-one-group-out: a query never reads its own group's entries
        logits = logits.masked_fill(query_group[:, None] == bank_group[None, :], float("-inf"))
    return logits


@torch.no_grad()
def effective_entries(z: torch.Tensor, bank: torch.Tensor, tau: float, query_group: torch.Tensor | None = None,
                      bank_group: torch.Tensor | None = None, batch_size: int = 1024) -> torch.Tensor:
    """Per query, the effective number of bank entries Eq. 10's read-out averages: 1 / sum_i w_i^2
    (N when the weights are uniform, 1 when one entry takes all)."""
    out = []
    for i in range(0, len(z), batch_size):
        qg = query_group[i : i + batch_size] if query_group is not None else None
        w = torch.softmax(_masked_logits(z[i : i + batch_size], bank, tau, qg, bank_group), dim=1)
        out.append(1.0 / (w * w).sum(1))
    return torch.cat(out) if out else torch.zeros(0)


#: the most query x bank products :func:`readout_temperature` keeps in memory (float32: 256 MB)
PRODUCT_CACHE_ENTRIES = 64 * 1024 * 1024


@torch.no_grad()
def readout_temperature(z: torch.Tensor, bank: torch.Tensor, target: float, query_group: torch.Tensor | None = None,
                        bank_group: torch.Tensor | None = None, lo: float = 1e-4, hi: float = 10.0,
                        iterations: int = 40) -> float:
    """The read-out temperature at which the median query reads ``target`` effective entries
    (bisection on log tau; the effective number grows with tau). Uses no label of any kind."""
    target = float(target)
    # the products z @ bank.T do not depend on tau: computed once where they fit in memory (then
    # each step divides them by its tau, as _masked_logits does: the same numbers, not 40 products)
    products = None
    if len(z) * len(bank) <= PRODUCT_CACHE_ENTRIES:
        products = _masked_logits(z, bank, 1.0, query_group, bank_group)
    for _ in range(iterations):
        mid = float(np.sqrt(lo * hi))
        if products is not None:
            w = torch.softmax(products / mid, dim=1)
            n_eff = 1.0 / (w * w).sum(1)
        else:
            n_eff = effective_entries(z, bank, mid, query_group, bank_group)
        if float(n_eff.median()) > target:
            hi = mid
        else:
            lo = mid
    return float(np.sqrt(lo * hi))


@torch.no_grad()
def score_samples(model: SceneAwareAE, bank: torch.Tensor, feat: np.ndarray, scene_feat: np.ndarray,
                  tau: float, batch_size: int = 1024, query_group: np.ndarray | None = None,
                  bank_group: np.ndarray | None = None) -> np.ndarray:
    """Eq. 11 for every sample: || f - Theta( sum_i w_i M_i ) ||^2 with w from Eq. 10. With
    ``query_group`` / ``bank_group`` a sample does not read the entries of its own group (training
    samples scored leave-one-video-out, as a normal video the model has not seen)."""
    flush_denormals()
    model.eval()
    dev = bank.device
    out = []
    bg = torch.from_numpy(np.asarray(bank_group, np.int64)).to(dev) if bank_group is not None else None
    for i in range(0, len(feat), batch_size):
        f = torch.from_numpy(np.ascontiguousarray(feat[i : i + batch_size], np.float32)).to(dev)
        fb = torch.from_numpy(np.ascontiguousarray(scene_feat[i : i + batch_size], np.float32)).to(dev)
        z = model.encode(f, fb)
        qg = (torch.from_numpy(np.asarray(query_group[i : i + batch_size], np.int64)).to(dev)
              if query_group is not None else None)
        w = torch.softmax(_masked_logits(z, bank, tau, qg, bg), dim=1)
        recon = model.decode(w @ bank)
        out.append(((model.target(f, fb) - recon) ** 2).sum(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def save_checkpoint(path, streams: dict[str, TrainResult], meta: dict[str, Any]) -> None:
    from ..h5store import save_torch

    payload = {
        "meta": meta,
        "streams": {
            name: {
                "state_dict": r.model.state_dict(),
                "bank": r.bank.cpu(),
                "bank_scene": r.bank_scene.cpu(),
                "bank_class": r.bank_class.cpu(),
                "dims": [r.model.feat_dim, r.model.scene_dim],
            }
            for name, r in streams.items()
        },
    }
    save_torch(payload, path)


def load_checkpoint(path, device: str = "cpu") -> tuple[dict[str, tuple[SceneAwareAE, torch.Tensor]], dict]:
    payload = torch.load(path, map_location=device, weights_only=True)
    meta = payload["meta"]
    out = {}
    for name, s in payload["streams"].items():
        feat_dim, scene_dim = s["dims"]
        model = build_model(meta["stream_cfg"][name], feat_dim, scene_dim, meta["n_scenes"])
        model.load_state_dict(s["state_dict"])
        model.to(device).eval()
        out[name] = (model, F.normalize(s["bank"].to(device), dim=1))
    return out, meta
