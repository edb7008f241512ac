"""The contrast against the memory bank, one training step, two ways side by side in one process.

    python bench/contrast_step.py [--threads 2] [--sizes 2237:1280 18756:1280 356376:1280 356376:128]

Each size is ``bank entries:latent``; a batch of 128 anchors (``hsc.batch_size``), 13 scenes x 8
classes of bank groups, tau 0.5. Per size: forward and backward of the group sums that Eqs. 3 and 5
are made of, written out for autograd (``hscvad.hsc.losses.group_exp_sums_autograd``, an array per
operation, as training computed it before) and as training computes it now (``group_exp_sums``: one
anchors x bank buffer), the milliseconds of each (best of five after a warm-up), their ratio, and
whether values and gradients are identical to the bit. The default sizes: Ped2's appearance stream,
Avenue's and ShanghaiTech's projected ones (``bench/projected_times.py``), and ShanghaiTech's with
the velocity stream's latent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hscvad.denormals import flush_denormals  # noqa: E402
from hscvad.hsc import losses as L  # noqa: E402

BATCH, SCENES, CLASSES, TAU = 128, 13, 8, 0.5


def step(fn, z0: torch.Tensor, bank: torch.Tensor, groups: L.ContrastGroups, w: torch.Tensor):
    """One forward and backward pass; the sums and the anchors' gradient."""
    z = z0.clone().requires_grad_(True)
    sums, _, _ = fn(z, bank, groups.group, SCENES * CLASSES, TAU)
    (sums * w).sum().backward()
    return sums.detach(), z.grad


def best_ms(fn, *args, repeats: int = 5) -> float:
    fn(*args)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return min(times) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (train_hsc's: 2)")
    ap.add_argument("--sizes", nargs="+", default=["2237:1280", "18756:1280", "356376:1280", "356376:128"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    flush_denormals()
    g = torch.Generator().manual_seed(0)
    print(f"contrast of {BATCH} anchors against the bank, forward + backward, {args.threads} threads, "
          f"torch {torch.__version__}")
    print(f"{'entries':>8} {'latent':>6} {'written out ms':>15} {'one buffer ms':>14} {'ratio':>6}  identical")
    for size in args.sizes:
        n, d = (int(x) for x in size.split(":"))
        bank = F.normalize(torch.randn(n, d, generator=g), dim=1)
        groups = L.ContrastGroups(torch.randint(0, SCENES, (n,), generator=g),
                                  torch.randint(0, CLASSES, (n,), generator=g), SCENES)
        z0 = F.normalize(torch.randn(BATCH, d, generator=g), dim=1)
        w = torch.randn(BATCH, SCENES * CLASSES, generator=g)
        ref = step(L.group_exp_sums_autograd, z0, bank, groups, w)
        new = step(L.group_exp_sums, z0, bank, groups, w)
        same = all(torch.equal(a, b) for a, b in zip(ref, new))
        t_ref = best_ms(step, L.group_exp_sums_autograd, z0, bank, groups, w)
        t_new = best_ms(step, L.group_exp_sums, z0, bank, groups, w)
        print(f"{n:>8} {d:>6} {t_ref:>15.1f} {t_new:>14.1f} {t_new / t_ref:>6.2f}  {'yes' if same else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
