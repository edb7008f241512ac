"""Seconds per epoch over a whole HSC training on a finished run's features: does training slow down?

    python bench/train_epochs.py [--results results/ped2] [--stream appearance] [--epochs 200]
                                 [--config config.yaml] [--threads 2]

Trains the stream exactly as ``train_hsc`` does (same samples, input normalisation, scene labels,
settings from the config) and prints every epoch's wall time, their min / median / max, and the
ratio of the last 20 epochs' mean to the first 20's (the first epoch, which fills the memory bank
and has no contrast terms, left out). Subnormal floats (memory entries and Adam moments decaying
towards 0) cost some CPUs two orders of magnitude per operation and show as a ratio far above 1;
training flushes them to zero (``torch.set_flush_denormal``), and this prints whether the CPU
supports that. Also the CPU model, since the effect depends on it.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from train_scale import EpochClock  # noqa: E402

from hscvad.config import load_schema, validate  # noqa: E402
from hscvad.features import STREAM_LAYOUT, load_samples, scene_labels_for  # noqa: E402
from hscvad.h5store import read_arrays  # noqa: E402
from hscvad.hsc.train import StreamData, input_norm, prepare_features, standard_stats, train_stream  # noqa: E402
from hscvad.stages.train_hsc import column_groups  # noqa: E402

STREAM_DIR = {"appearance": "objects", "velocity": "velocity", "motion": "motion"}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results/ped2")
    ap.add_argument("--stream", default="appearance", choices=sorted(STREAM_DIR))
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--config", default=str(REPO / "config.yaml"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(Path(args.config).read_text())
    validate(cfg, load_schema(REPO / "schemas" / "config.schema.yaml"))
    res = Path(args.results)
    files = sorted((res / STREAM_DIR[args.stream] / "train").glob("*.h5"))
    scene_files = [res / "scene" / "train" / f.name for f in files]
    if not files:
        sys.exit(f"no {args.stream} training features under {res / STREAM_DIR[args.stream] / 'train'}: run the "
                 "pipeline first (snakemake results/ped2/auc.json --cores 2)")
    s = load_samples([str(f) for f in files], [str(f) for f in scene_files], STREAM_LAYOUT[args.stream])
    hsc = copy.deepcopy(cfg["hsc"])
    stream_cfg = {**hsc, "architecture": hsc["architecture"][args.stream], "epochs": args.epochs}
    norm = input_norm(stream_cfg)
    stats = (standard_stats(s.feat, column_groups([str(f) for f in files], args.stream) if norm == "group" else None)
             if norm in ("standard", "group") else None)
    data = StreamData(prepare_features(s.feat, norm, stats), s.scene_feat, scene_labels_for(s, str(res / "scenes.h5")),
                      s.cls)
    _, sattrs = read_arrays(res / "scenes.h5", "scenes")
    flush = torch.set_flush_denormal(True)
    print(f"{cpu_model()}; flush-denormal supported: {flush}; {len(data)} {args.stream} samples, "
          f"{args.epochs} epochs, {args.threads} threads")
    clock = EpochClock()
    train_stream(data, stream_cfg, int(sattrs["n_scenes"]), int(cfg["seed"]), progress=clock)
    t = np.asarray(clock.times)
    print("s/epoch: " + " ".join(f"{x:.2f}" for x in t))
    body = t[1:]
    k = min(20, len(body) // 2)
    first, last = body[:k].mean(), body[-k:].mean()
    print(f"min {body.min():.2f} / median {np.median(body):.2f} / max {body.max():.2f} s per epoch "
          f"(epochs 2..{len(t)})")
    print(f"last {k} epochs {last:.2f} s, first {k} {first:.2f} s: ratio {last / first:.2f}")


if __name__ == "__main__":
    main()
