"""Freed memory kept for reuse (hscvad.memory) against glibc's default, side by side.

    python bench/freed_memory.py [--rounds 2] [--workloads efficientnet_torch efficientnet_onnx posec3d]

Each workload runs in a fresh process (as a job does), once with ``keep_freed_memory()`` applied
and once without (``HSCVAD_KEEP_FREED_MEMORY=0``), alternating, ``--rounds`` times; printed per run:
wall seconds of the work (after a first, untimed batch), user and system CPU seconds, minor page
faults, the process's peak resident memory, and a checksum of the outputs (equal on and off).

- ``efficientnet_torch``: EfficientNet-Lite0 on PyTorch (``engine: torch``), 320 crops in batches
  of 64 at 2 threads (random pixels: the time does not depend on them).
- ``efficientnet_onnx``: the same on ONNX Runtime (the default engine), which has its own arena.
- ``posec3d``: PoseConv3D (mmaction, random weights; the paper preset's motion model), 20 person
  clips of 16 frames at 1 thread; only where the OpenMMLab stack is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import hashlib, json, resource, sys, time
import numpy as np
from hscvad.memory import keep_freed_memory
kept = keep_freed_memory()
from hscvad.models.registry import APPEARANCE, Runtime
name = sys.argv[1]
if name.startswith("efficientnet"):
    threads = 2
    model = APPEARANCE.build("efficientnet_lite0", {"engine": "torch" if name.endswith("torch") else "onnxruntime"},
                             Runtime("cpu", threads))
    x = np.random.default_rng(0).integers(0, 255, (320, 224, 224, 3), dtype=np.uint8)
    batches = [x[i:i + 64] for i in range(0, len(x), 64)]
    work = model.embed
else:
    from hscvad.models.motion import build_motion
    from hscvad.models.openmmlab.loading import install_shims
    install_shims()
    model = build_motion({"backend": "mmaction_posec3d", "min_score": 0.2,
                          "mmaction_posec3d": {"weights": None, "batch_size": 16, "clip_len": 16}}, Runtime("cpu", 1))
    rng = np.random.default_rng(1)
    S, T = 20, 16
    K = np.zeros((S, T, 17, 3), np.float32)
    K[..., 0] = 180 + rng.normal(0, 20, (S, T, 17))
    K[..., 1] = 120 + rng.normal(0, 40, (S, T, 17))
    K[..., 2] = 0.9
    B = np.tile(np.array([150, 60, 210, 180], np.float32), (S, T, 1))
    M = np.ones((S, T), bool)
    batches = [(K, B, M, (240, 360))]
    work = lambda b: model.embed(*b)[0]
work(batches[0])  # the model's first pass (allocations, kernels chosen), not timed
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
out = [work(b) for b in batches]
wall = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
digest = hashlib.sha256(b"".join(np.ascontiguousarray(o).tobytes() for o in out)).hexdigest()[:12]
print(json.dumps({"kept": kept, "wall": wall, "user": r1.ru_utime - r0.ru_utime, "system": r1.ru_stime - r0.ru_stime,
                  "faults": r1.ru_minflt - r0.ru_minflt, "peak_mb": r1.ru_maxrss / 1024, "digest": digest}))
"""


def run(workload: str, keep: bool) -> dict:
    env = {**os.environ, "HSCVAD_KEEP_FREED_MEMORY": "1" if keep else "0", "PYTHONPATH": str(REPO / "src")}
    r = subprocess.run([sys.executable, "-c", PROBE, workload], capture_output=True, text=True, env=env, cwd=REPO)
    if r.returncode != 0:
        raise SystemExit(f"{workload}: {r.stderr[-2000:]}")
    return json.loads(r.stdout.splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workloads", nargs="+", default=["efficientnet_torch", "efficientnet_onnx", "posec3d"])
    args = ap.parse_args()
    import importlib.util

    if "posec3d" in args.workloads and importlib.util.find_spec("mmaction") is None:
        print("posec3d left out: mmaction is not installed (bash scripts/setup.sh --openmmlab)")
        args.workloads.remove("posec3d")
    print(f"{'workload':<20}{'freed memory':>13}{'wall s':>8}{'user s':>8}{'system s':>10}{'faults':>10}"
          f"{'peak MB':>9}  outputs")
    for workload in args.workloads:
        res: dict[bool, list[dict]] = {True: [], False: []}
        for _ in range(args.rounds):
            for keep in (False, True):
                m = run(workload, keep)
                res[keep].append(m)
                print(f"{workload:<20}{'kept' if m['kept'] else 'unmapped':>13}{m['wall']:>8.2f}{m['user']:>8.2f}"
                      f"{m['system']:>10.2f}{m['faults']:>10}{m['peak_mb']:>9.0f}  {m['digest']}", flush=True)
        wall = {k: min(m["wall"] for m in v) for k, v in res.items()}
        same = len({m["digest"] for v in res.values() for m in v}) == 1
        print(f"{workload}: best wall {wall[False]:.2f} s default, {wall[True]:.2f} s kept "
              f"({wall[False] / wall[True]:.2f}x); outputs {'identical' if same else 'DIFFER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
