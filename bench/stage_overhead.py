"""Per-video stages against their bare model calls on the same frames (issue 12, item 6).

    python bench/stage_overhead.py [--results results/ped2] [--videos 01 02] [--threads 2]

For each per-video stage with an offline backend (detect_track, appearance, scene, flow), on the
same test videos of a finished run, in one process, one after the other:

- *stage*: the stage's own ``run`` (what its Snakemake job runs after start-up: decoding, the
  model, cropping / tiling / tracking / statistics, writing the HDF5 file), into a temporary folder;
- *model*: only the backend calls the stage makes, on inputs prepared beforehand (frames decoded,
  crops cut): ``detect`` per frame, ``embed`` per batch of crops, ``class_scores`` per segmented
  frame, ``flow`` per frame pair;
- *decode*: one full decode of the same videos, the part of the gap no model change removes.

Prints seconds and the ratio stage / model (1.0 is the limit). The job start-up (process, imports,
model load) comes on top of *stage* and is printed separately per backend.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hscvad.appearance import select_rows  # noqa: E402
from hscvad.config import stage_params, validate  # noqa: E402
from hscvad.data import build_dataset  # noqa: E402
from hscvad.features import object_samples  # noqa: E402
from hscvad.h5store import read_arrays  # noqa: E402
from hscvad.models.appearance import crop_boxes  # noqa: E402
from hscvad.models.registry import Runtime, registry_for  # noqa: E402
from hscvad.stages import appearance, detect_track, flow, scene  # noqa: E402

STAGES = ("detect_track", "appearance", "scene", "flow")


def _backend(params: dict, section: str, runtime: Runtime):
    cfg = params[section]
    return registry_for(section).build(cfg["backend"], cfg.get(cfg["backend"], {}), runtime, section)


def bare_detect(params, frames, runtime) -> float:
    det = _backend(params, "detection", runtime)
    t0 = time.perf_counter()
    for f in frames:
        det.detect(f)
    return time.perf_counter() - t0


def bare_appearance(params, frames, tracks, runtime) -> float:
    cfg = params["appearance"]
    model = _backend(params, "appearance", runtime)
    arr, _ = read_arrays(tracks, "tracks")
    sample, _ = object_samples(arr["frame"], arr["track_id"], int(params["clip_length"]))
    rows = np.flatnonzero(select_rows(sample, arr["frame"], int(cfg["crops_per_sample"])))
    crops = np.concatenate([crop_boxes(frames[int(arr["frame"][r])], arr["box"][r : r + 1], model.input_hw,
                                       float(cfg["context"]), model.keep_aspect) for r in rows])
    bs = int(cfg["batch_size"])
    t0 = time.perf_counter()
    for i in range(0, len(crops), bs):
        model.embed(crops[i : i + bs])
    return time.perf_counter() - t0


def bare_scene(params, frames, runtime) -> float:
    cfg = params["scene"]
    model = _backend(params, "scene", runtime)
    T, stride = int(params["clip_length"]), int(cfg["frame_stride"])
    picked = [f for i, f in enumerate(frames) if not (i % T) % stride]
    t0 = time.perf_counter()
    for f in picked:
        model.class_scores(f)
    return time.perf_counter() - t0


def bare_flow(params, frames, runtime) -> float:
    model = _backend(params, "flow", runtime)
    t0 = time.perf_counter()
    for a, b in zip(frames[:-1], frames[1:]):
        model.flow(a, b)
    return time.perf_counter() - t0


def startup(stage: str, section: str, backend: str, cfg_block: dict, threads: int) -> float:
    """Seconds for a fresh process to import the stage and build its backend (a job's start-up)."""
    code = (f"import time; t=time.perf_counter()\nfrom hscvad.stages import {stage}\n"
            "from hscvad.models.registry import registry_for, Runtime\n"
            f"registry_for({section!r}).build({backend!r}, {cfg_block!r}, Runtime('cpu', {threads}), {section!r})\n"
            "print(time.perf_counter()-t)")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    wall = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(out.stderr)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results/ped2")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--videos", nargs="+", default=["01", "02"])
    ap.add_argument("--config", default=str(REPO / "config.yaml"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    results = Path(args.results)
    dataset = args.dataset or results.name
    cfg = validate(yaml.safe_load(Path(args.config).read_text()))
    runtime = Runtime("cpu", args.threads)
    P = {s: stage_params(cfg, dataset, s) for s in STAGES}
    ds = build_dataset(dataset, P["detect_track"]["dataset"])
    rows = {s: [0.0, 0.0] for s in STAGES}
    decode = 0.0
    n_frames = 0
    with tempfile.TemporaryDirectory() as tmp:
        for v in args.videos:
            tracks = str(results / "tracks" / "test" / f"{v}.h5")
            t0 = time.perf_counter()
            frames = list(ds.source("test", v).frames())
            decode += time.perf_counter() - t0
            n_frames += len(frames)
            for s in STAGES:
                out = str(Path(tmp) / f"{s}_{v}.h5")
                dcfg = P[s]["dataset"]
                t0 = time.perf_counter()
                if s == "detect_track":
                    detect_track.run(dataset, dcfg, "test", v, out, P[s], runtime)
                elif s == "appearance":
                    appearance.run(dataset, dcfg, "test", v, tracks, out, P[s], runtime)
                elif s == "scene":
                    scene.run(dataset, dcfg, "test", v, out, P[s], runtime)
                else:
                    flow.run(dataset, dcfg, "test", v, tracks, out, P[s], runtime)
                rows[s][0] += time.perf_counter() - t0
            rows["detect_track"][1] += bare_detect(P["detect_track"], frames, runtime)
            rows["appearance"][1] += bare_appearance(P["appearance"], frames, tracks, runtime)
            rows["scene"][1] += bare_scene(P["scene"], frames, runtime)
            rows["flow"][1] += bare_flow(P["flow"], frames, runtime)
    print(f"{dataset} test videos {' '.join(args.videos)} ({n_frames} frames), {args.threads} threads; "
          f"one full decode {decode:.2f} s")
    print(f"{'stage':14s} {'stage s':>9s} {'model s':>9s} {'ratio':>6s}")
    for s, (st, bare) in rows.items():
        print(f"{s:14s} {st:9.2f} {bare:9.2f} {st / bare:6.2f}")
    print("job start-up (fresh process: imports + backend load), seconds:")
    for s, section in (("detect_track", "detection"), ("appearance", "appearance"), ("scene", "scene"),
                       ("flow", "flow")):
        sec = P[s][section]
        seconds = startup(s, section, sec["backend"], sec.get(sec["backend"], {}), args.threads)
        print(f"  {s:14s} {sec['backend']:20s} {seconds:.2f}")


if __name__ == "__main__":
    main()
