"""HSC training at ShanghaiTech scale: seconds per epoch of the fused contrast against the definitions.

    python bench/train_scale.py [--samples 50000] [--scenes 23] [--classes 8] [--stream velocity]
                                [--epochs 3] [--threads 2] [--float64]

Synthetic object samples (features around a per-scene, per-class centre; one-hot-like scene
features) of the chosen stream's sizes (``velocity``: 32-d input, latent 128; ``appearance``: the
EfficientNet-Lite0 1280-d feature, latent 1280, the paper's appearance autoencoder) are trained twice
in one process, side by side: with :func:`hscvad.hsc.losses.hierarchical_contrast` (one anchors x bank
product per batch, each scene's anchors reading their scene's block) and with Eqs. 3 and 5 as defined
(``scene_contrast`` and ``object_contrast``: two products and anchors x bank masks, the code before
it). Prints every epoch's seconds for both (the first epoch has no contrast terms: the bank fills),
the ratio over the epochs with contrast, and the largest difference between the two runs' per-epoch
losses. In float32 the two runs drift apart by rounding over an epoch of updates; ``--float64`` trains
both in double precision (torch's default dtype), where the per-epoch losses of the two formulas can be
compared to 1e-5 and beyond (its timings are not the pipeline's: training runs in float32).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hscvad.config import defaults  # noqa: E402
from hscvad.hsc.train import StreamData, train_stream  # noqa: E402

SIZES = {"velocity": (32, "velocity"), "appearance": (1280, "appearance")}


class EpochClock:
    """The progress object train_stream updates once per epoch: records the epochs' wall times."""

    def __init__(self):
        self.times, self.t = [], time.perf_counter()

    def update(self, _n):
        now = time.perf_counter()
        self.times.append(now - self.t)
        self.t = now

    def set_postfix(self, _d):
        pass


def synthetic(n: int, scenes: int, classes: int, dim: int, scene_dim: int, seed: int) -> StreamData:
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, scenes, n)
    cls = rng.integers(0, classes, n)
    centres = rng.normal(size=(scenes, classes, dim)).astype(np.float32)
    feat = centres[scene, cls] + 0.3 * rng.normal(size=(n, dim)).astype(np.float32)
    basis = rng.normal(size=(scenes, scene_dim)).astype(np.float32)
    scene_feat = basis[scene] + 0.05 * rng.normal(size=(n, scene_dim)).astype(np.float32)
    return StreamData(feat.astype(np.float32), scene_feat.astype(np.float32), scene, cls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=50_000)
    ap.add_argument("--scenes", type=int, default=23)
    ap.add_argument("--classes", type=int, default=8)
    ap.add_argument("--stream", choices=sorted(SIZES), default="velocity")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--scene-dim", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--float64", action="store_true", help="train both runs in double precision")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.float64:
        torch.set_default_dtype(torch.float64)
    dim, arch_name = SIZES[args.stream]
    hsc = defaults("hsc")  # the pipeline's training settings
    cfg = {**hsc, "epochs": args.epochs, "optimizer": "adam", "feature_norm": "l2",
           "architecture": hsc["architecture"][arch_name]}
    cfg["architecture"]["input_norm"] = "l2"
    data = synthetic(args.samples, args.scenes, args.classes, dim, args.scene_dim, seed=0)
    data.feat /= np.linalg.norm(data.feat, axis=1, keepdims=True)
    print(f"{args.samples} samples, {args.scenes} scenes, {args.classes} classes, stream {args.stream} "
          f"({dim}-d, latent {cfg['architecture']['latent']}), batch 128, {args.threads} threads, "
          f"{args.epochs} epochs each, {torch.get_default_dtype()}")
    runs = {}
    for name, reference in (("fused", False), ("definitions", True)):
        clock = EpochClock()
        res = train_stream(data, cfg, args.scenes, seed=0, progress=clock, reference_contrast=reference)
        runs[name] = (clock.times, res.history)
        trained = res
        print(f"{name:12s} s/epoch: " + " ".join(f"{t:.2f}" for t in clock.times), flush=True)
    (tf, hf), (tr, hr) = runs["fused"], runs["definitions"]
    ratio = sum(tr[1:]) / sum(tf[1:])
    diff = max(abs(a[k] - b[k]) for a, b in zip(hf, hr) for k in a if k != "epoch")
    print(f"epochs with contrast (2..{args.epochs}): definitions {np.mean(tr[1:]):.2f} s/epoch, fused "
          f"{np.mean(tf[1:]):.2f} s/epoch: {ratio:.2f}x faster")
    drift = " (in float32 the runs drift apart by rounding over an epoch of updates)" if not args.float64 else ""
    print(f"largest difference between the two runs' per-epoch mean losses: {diff:.2e}{drift}")
    # the same batch through both: one batch of trained codes against the trained bank
    import torch.nn.functional as F

    from hscvad.hsc import losses as L

    g = torch.Generator().manual_seed(1)
    idx = torch.randperm(len(data), generator=g)[:128]
    bank, scene, cls = trained.bank, trained.bank_scene, trained.bank_class
    z = F.normalize(bank[idx] + 0.05 * torch.randn(len(idx), bank.shape[1], generator=g, dtype=bank.dtype), dim=1)
    tau = cfg["tau"]
    s_ref = float(L.scene_contrast(z, bank, scene[idx], scene, tau))
    o_ref = float(L.object_contrast(z, bank, scene[idx], cls[idx], scene, cls, tau))
    s_new, o_new = L.hierarchical_contrast(z, bank, scene[idx], cls[idx], L.ContrastGroups(scene, cls, args.scenes),
                                           tau)
    worst = max(abs(s_ref - float(s_new)), abs(o_ref - float(o_new)))
    print(f"one batch against the {len(bank)}-entry bank: scene term {s_ref:.6f} vs {float(s_new):.6f}, object term "
          f"{o_ref:.6f} vs {float(o_new):.6f} (largest difference {worst:.1e})")


if __name__ == "__main__":
    main()
