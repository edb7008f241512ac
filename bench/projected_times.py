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
   projects each dataset's per-video stages as seconds per frame x its frames / cores.
4. Training: a step costs its layers' products plus its contrast against the memory bank (a product
   with every entry), so an epoch of n samples costs n / batch steps of a cost that grows with n:
   quadratic in the dataset. Per stream of the dataset (its feature and scene sizes, its samples per
   frame as measured in 1.), a few steps on synthetic features against a bank of the dataset's
   projected size, with ``train_hsc``'s threads, give the cost per step; the projection is that x
   steps per epoch x epochs. The same projection for the Ped2 run given with ``--ped2`` is printed
   beside a training of that run's features timed in the same invocation (how far to trust it), and
   the linear projection from Ped2's cost per sample, which leaves the bank's growth out.

Frames: Avenue 15,328 training + 15,324 test; ShanghaiTech 274,515 training + 40,791 test (its official frame labels).
"""

from __future__ import annotations

import argparse
import csv
import json
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
from hscvad.features import STREAM_LAYOUT  # noqa: E402

FRAMES = {"avenue": (15328, 15324), "shanghaitech": (274515, 40791)}
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


#: scenes of the pseudo-labels assumed for the training projection (one camera; ShanghaiTech's 13)
SCENES = {"avenue": 1, "shanghaitech": 13}


class _Clock:
    """A progress bar for ``train_stream`` that notes when each epoch ends."""

    def __init__(self):
        self.t = [time.perf_counter()]

    def update(self, _n):
        self.t.append(time.perf_counter())

    def set_postfix(self, *_a, **_k):
        pass


def step_cost(hsc: dict, stream: str, feat_dim: int, scene_dim: int, n_scenes: int, n: int, threads: int,
              steps: int) -> tuple[float, float]:
    """Seconds per training step of ``stream`` without the contrast (the first epoch, which fills the
    bank) and with it against a bank of ``n`` entries: three epochs of ``steps`` batches each on
    synthetic features, with the hsc settings ``hsc`` and ``threads`` threads (the third epoch
    timed, the second warms up)."""
    import numpy as np

    from hscvad.hsc.train import StreamData, train_stream
    from hscvad.threads import limit

    rng = np.random.default_rng(0)
    data = StreamData(rng.standard_normal((n, feat_dim), np.float32), rng.standard_normal((n, scene_dim), np.float32),
                      rng.integers(0, n_scenes, n), rng.integers(0, 8, n))
    cfg = {**hsc, "architecture": hsc["architecture"][stream], "epochs": 3}
    clock = _Clock()
    with limit(threads):
        train_stream(data, cfg, n_scenes, 0, "cpu", clock, steps_per_epoch=steps)
    batch = min(int(hsc["batch_size"]), n)
    ran = min(steps, -(-n // batch) - (n % batch == 1))  # the batches of an epoch (train_stream's)
    return (clock.t[1] - clock.t[0]) / ran, (clock.t[3] - clock.t[2]) / ran


def training_hours(hsc: dict, stream: str, dims: tuple[int, int], n_scenes: int, n: int, threads: int,
                   steps: int) -> tuple[float, str]:
    """Projected hours of one stream's training on ``n`` samples, and a line saying how."""
    first, step = step_cost(hsc, stream, *dims, n_scenes, n, threads, steps)
    per_epoch = -(-n // int(hsc["batch_size"]))
    hours = per_epoch * (first + (int(hsc["epochs"]) - 1) * step) / 3600
    how = (f"{stream} ({dims[0]}-d, latent {hsc['architecture'][stream]['latent']}), {n} samples: "
           f"{first * 1e3:.0f} ms per step in the first epoch, {step * 1e3:.0f} ms with the bank; {hours:.2f} h")
    return hours, how


def stream_sizes(res: Path, streams) -> tuple[dict[str, tuple[int, int]], int]:
    """Per stream of a run's ``results/<dataset>``: training samples and feature size; and the scene
    feature's size."""
    sizes = {}
    for stream in streams:
        n, dim = 0, 0
        for f in (res / STREAM_LAYOUT[stream] / "train").glob("*.h5"):
            with h5py.File(f) as h:
                n, dim = n + h["feature"].shape[0], h["feature"].shape[1]
        sizes[stream] = (n, dim)
    with h5py.File(next((res / "scene" / "train").glob("*.h5"))) as h:
        return sizes, h["feature"].shape[1]


def ped2_training_check(res: Path, cfg: dict, threads: int, steps: int, work: Path) -> str:
    """The training projection applied to a finished Ped2 run, beside a training of its features
    timed now (``train_hsc``'s job on the run's files, this checkout's code and config)."""
    from hscvad.config import params_json
    from hscvad.jobs import Files, Job, run

    params = json.loads(params_json(cfg, "ped2", "train_hsc"))
    sizes, scene_dim = stream_sizes(res, params["streams"])
    with h5py.File(res / "scenes.h5") as h:
        n_scenes = int(h.attrs["n_scenes"])
    projected = sum(3600 * training_hours(cfg["hsc"], s, (dim, scene_dim), n_scenes, n, threads, steps)[0]
                    for s, (n, dim) in sizes.items())
    scenes = sorted(str(f) for f in (res / "scene" / "train").glob("*.h5"))
    named = {"scenes": scenes, "labels": str(res / "scenes.h5")}
    for s in params["streams"]:
        named[{"appearance": "objects"}.get(s, s)] = [f.replace("/scene/train/", f"/{STREAM_LAYOUT[s]}/train/")
                                                     for f in scenes]
    job = Job("train_hsc", Files(None, named), Files(None, {"model": str(work / "ped2_model.pt"),
                                                             "history": str(work / "ped2_history.csv")}),
              params, threads=threads, device="cpu", log=str(work / "ped2_train_hsc.log"))
    t = time.perf_counter()
    if run(job):
        raise SystemExit(f"the Ped2 training check failed: {work / 'ped2_train_hsc.log'}")
    took = time.perf_counter() - t
    return (f"# check on Ped2 ({', '.join(f'{s} {n}' for s, (n, _) in sizes.items())} samples): the same projection "
            f"{projected:.0f} s; its training, timed now: {took:.0f} s (projection / measured {projected / took:.2f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ped2", type=Path, required=True, help="a finished Ped2 run's results/ped2 (training cost)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--train-steps", type=int, default=20,
                    help="training steps timed per stream, against a bank of the projected size")
    ap.add_argument("--train-threads", type=int, default=2, help="train_hsc's threads (the rule's)")
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
        measured[ds]["streams"], measured[ds]["scene_dim"] = stream_sizes(res, cfg["datasets"][ds]["streams"])
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
    train, linear, notes = {}, {}, []
    for ds, m in measured.items():
        train[ds] = linear[ds] = 0.0
        for stream, (n, dim) in m["streams"].items():
            n_train = round(n / m["frames"] * FRAMES[ds][0])
            hours, how = training_hours(cfg["hsc"], stream, (dim, m["scene_dim"]), SCENES[ds], n_train,
                                        args.train_threads, args.train_steps)
            train[ds] += hours
            linear[ds] += per_sample_epoch * n_train * epochs / 3600
            notes.append(f"{ds}: {n / m['frames']:.2f} {stream} samples per frame -> {how}")
        totals[ds] += train[ds]
    print(f"{'train_hsc':<14}{'':>14}" + "".join(f"{'':>22}{train[ds]:>20.2f}" for ds in FRAMES))
    print(f"{'total':<14}{'':>14}" + "".join(f"{'':>22}{totals[ds]:>20.1f}" for ds in FRAMES))
    print(f"# train_hsc: {epochs} epochs per stream, {args.train_threads} threads (the rule's), "
          f"{', '.join(f'{ds} {SCENES[ds]} scene(s)' for ds in FRAMES)}; steps timed against a bank of each "
          "dataset's projected size:")
    for line in notes:
        print(f"#   {line}")
    print(ped2_training_check(args.ped2, cfg, args.train_threads, args.train_steps, work))
    print("# linear in the samples from Ped2's train_hsc (its seconds per sample, epoch and stream, "
          f"{per_sample_epoch * 1e6:.1f} us; leaves the bank's growth out): "
          + ", ".join(f"{ds} {linear[ds]:.2f} h" for ds in FRAMES))
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
