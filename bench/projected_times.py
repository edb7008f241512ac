"""What a full Avenue or ShanghaiTech run costs on this machine, projected from measured costs.

    python bench/projected_times.py --ped2 results/ped2 [--cores 2] [--shared ../shared]

1. Runs this checkout's per-video stages of the default Avenue / ShanghaiTech streams (detect_track,
   appearance, scene, flow, velocity, pose, motion; each dataset's own detection settings) with
   Snakemake and ``--cores N`` on Avenue training videos 12 and 16 (640x360, crowded, 389 frames) and
   on the same frames resized to 856x480 (ShanghaiTech's size: no ShanghaiTech video is at hand;
   its crowds are of the same order), in a temporary folder.
2. Per stage: summed job seconds per frame (jobs run ``--cores`` at a time, one thread each), and
   object samples per frame.
3. Prints the same per-frame costs of the finished Ped2 run given with ``--ped2`` (360x240), and
   projects each dataset's per-video stages as seconds per frame x its frames / cores, and training
   from the finished Ped2 run given with ``--ped2`` (its ``train_hsc`` seconds per sample, epoch and
   stream) x the projected samples x epochs x streams. Training is the least certain line: its
   contrast against the memory bank grows with the bank, so the cost per sample rises with the
   dataset (docs/benchmarks.md, "Training throughput").

Frames: Avenue 15,328 training + 15,324 test; ShanghaiTech 274,515 training + 42,883 test.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "src"))

from ped2_pipeline import link_resources, stage_cpu  # noqa: E402

from hscvad.config import load_config, section, validate  # noqa: E402

FRAMES = {"avenue": (15328, 15324), "shanghaitech": (274515, 42883)}
SIZE = {"avenue": None, "shanghaitech": (856, 480)}
VIDEOS = ("12", "16")
KINDS = ("tracks", "objects", "scene", "flow", "velocity", "pose", "motion")
STAGES = ("detect_track", "appearance", "scene", "flow", "velocity", "pose", "motion")


def write_videos(src: Path, dst: Path, size: tuple[int, int] | None) -> int:
    """The two Avenue videos under ``dst/training_videos`` (linked, or resized to ``size``); frames."""
    import av
    import cv2

    (dst / "training_videos").mkdir(parents=True)
    frames = 0
    for v in VIDEOS:
        path = src / "training_videos" / f"{v}.avi"
        with av.open(str(path)) as c:
            images = [f.to_ndarray(format="bgr24") for f in c.decode(c.streams.video[0])]
        frames += len(images)
        out = dst / "training_videos" / f"{v}.avi"
        if size is None:
            out.symlink_to(path.resolve())
            continue
        w = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
        for img in images:
            w.write(cv2.resize(img, size, interpolation=cv2.INTER_LINEAR))
        w.release()
    return frames


def ped2_training_cost(res: Path) -> float:
    """Seconds per object sample, epoch and stream of a finished run's ``train_hsc``."""
    _, wall, _, _ = stage_cpu(res, ("train_hsc",))["train_hsc"]
    history = list(csv.DictReader((res / "hsc" / "history.csv").open()))
    streams = len({r["stream"] for r in history})
    epochs = len(history) // max(streams, 1)
    samples = 0
    for f in (res / "objects" / "train").glob("*.h5"):
        with h5py.File(f) as h:
            samples += h["feature"].shape[0]
    return wall / (samples * epochs * streams)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ped2", type=Path, required=True, help="a finished Ped2 run's results/ped2 (training cost)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    per_sample_epoch = ped2_training_cost(args.ped2)
    cfg = validate(load_config(REPO / "config.yaml"))
    work = Path(tempfile.mkdtemp(prefix="hscvad-projected-"))
    link_resources(work)
    shutil.copy(REPO / "config.yaml", work / "config.yaml")
    lines = ["datasets:"]
    measured = {}
    for ds in FRAMES:
        frames = write_videos(args.shared / "datasets" / "avenue", work / "data" / ds, SIZE[ds])
        det = section(cfg, ds, "detection")
        measured[ds] = {"frames": frames}
        lines += [f"  {ds}_sample:", "    adapter: avenue", f"    root: {work / 'data' / ds}",
                  "    allow_partial: true",
                  f"    streams: {cfg['datasets'][ds]['streams']}",
                  f"    detection: {{yolox: {{full_frame: {str(det['yolox']['full_frame']).lower()}}}}}"]
    (work / "bench.yaml").write_text("\n".join(lines) + "\n")
    env = {**os.environ, "HSCVAD_CACHE": str(work / "cache")}
    for ds in FRAMES:
        targets = [f"results/{ds}_sample/{k}/train/{v}.h5" for k in KINDS for v in VIDEOS]
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work),
                            "--cores", str(args.cores), "-q", "--configfile", str(work / "bench.yaml"), "--", *targets],
                           cwd=work, env=env)
        if r.returncode:
            print(f"snakemake failed ({r.returncode}); work folder kept: {work}", file=sys.stderr)
            return r.returncode
        res = work / "results" / f"{ds}_sample"
        measured[ds]["wall"] = time.perf_counter() - t0
        measured[ds]["stages"] = stage_cpu(res, STAGES)
        samples = 0
        for f in (res / "objects" / "train").glob("*.h5"):
            with h5py.File(f) as h:
                samples += h["feature"].shape[0]
        measured[ds]["samples"] = samples
    print(f"# projected wall time on this machine, --cores {args.cores}; per-frame costs measured on Avenue training "
          "videos 12 and 16 (640x360, and resized to 856x480 for ShanghaiTech)")
    epochs = cfg["hsc"]["epochs"]
    ped2_frames = 0
    for f in (args.ped2 / "tracks").rglob("*.h5"):
        with h5py.File(f) as h:
            ped2_frames += int(h.attrs["n_frames"])
    ped2 = stage_cpu(args.ped2, STAGES)
    header = (f"{'stage':<14}{'ped2 s/frame':>14}"
              + "".join(f"{f'{ds} s/frame':>22}{f'{ds} hours':>20}" for ds in FRAMES))
    print(f"{'':<14}{'360x240':>14}{'640x360':>22}{'':>20}{'856x480':>22}")
    print(header)
    totals = dict.fromkeys(FRAMES, 0.0)
    for stage in STAGES:
        n_ped2, wall_ped2, _, _ = ped2[stage]
        row = f"{stage:<14}" + (f"{wall_ped2 / ped2_frames:>14.3f}" if n_ped2 else f"{'-':>14}")
        for ds, m in measured.items():
            n, wall, _, _ = m["stages"][stage]
            spf = wall / m["frames"]
            hours = spf * sum(FRAMES[ds]) / args.cores / 3600
            totals[ds] += hours
            row += f"{spf:>22.3f}{hours:>20.2f}"
        print(row)
    row = f"{'train_hsc':<14}{'':>14}"
    train = {}
    for ds, m in measured.items():
        streams = len(cfg["datasets"][ds]["streams"])
        n_train = m["samples"] / m["frames"] * FRAMES[ds][0]
        train[ds] = per_sample_epoch * n_train * epochs * streams / 3600
        totals[ds] += train[ds]
        row += f"{'':>22}{train[ds]:>20.2f}"
    print(row)
    print(f"{'total':<14}{'':>14}" + "".join(f"{'':>22}{totals[ds]:>20.1f}" for ds in FRAMES))
    for ds, m in measured.items():
        print(f"{ds}: {m['samples'] / m['frames']:.2f} object samples per frame measured -> "
              f"{m['samples'] / m['frames'] * FRAMES[ds][0]:.0f} training samples; training {epochs} epochs x "
              f"{len(cfg['datasets'][ds]['streams'])} streams at {per_sample_epoch * 1e6:.1f} us per sample, epoch "
              f"and stream (Ped2's, a lower bound: the bank's contrast grows with the bank)")
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
