"""ShanghaiTech-scale DAGs and SLURM job overhead.

    python bench/slurm_scale.py dry-run [--videos 100 437 2000]
    python bench/slurm_scale.py overhead [--jobs 6]      # needs root: starts a local SLURM

dry-run: writes a synthetic dataset in ShanghaiTech's layout (training/videos/*.avi,
testing/frames/*/, testing/test_frame_mask/*.npy; tiny 8-frame videos, 13 scenes, the real
330/107 train/test ratio) and times `snakemake -n` of results/<name>/auc.json with the slurm
workflow profile, printing the per-video job count and the number of SLURM jobs after grouping.

overhead: the wall time per job of a trivial rule, run locally and through a one-node SLURM on
localhost (scripts/local_slurm.py), measured in one run.
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from hscvad.config import load_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
PER_VIDEO = ("detect_track", "appearance", "scene", "pose", "motion")


def make_shanghaitech(root: Path, n_videos: int, frames: int = 8, hw=(32, 48)) -> tuple[int, int]:
    """Synthetic ShanghaiTech layout; returns (n_train, n_test). Scenes cycle over 01..13."""
    import cv2

    n_train = round(n_videos * 330 / 437)
    n_test = n_videos - n_train
    vids = root / "training" / "videos"
    vids.mkdir(parents=True, exist_ok=True)
    img = np.full((*hw, 3), 90, np.uint8)
    ok, jpg = cv2.imencode(".jpg", img)
    for i in range(n_train):
        w = cv2.VideoWriter(str(vids / f"{i % 13 + 1:02d}_{i // 13 + 1:03d}.avi"), cv2.VideoWriter_fourcc(*"MJPG"),
                            25, (hw[1], hw[0]))
        for _ in range(frames):
            w.write(img)
        w.release()
    masks = root / "testing" / "test_frame_mask"
    masks.mkdir(parents=True, exist_ok=True)
    for i in range(n_test):
        name = f"{i % 13 + 1:02d}_{i // 13 + 1:04d}"
        fdir = root / "testing" / "frames" / name
        fdir.mkdir(parents=True, exist_ok=True)
        for t in range(frames):
            (fdir / f"{t:03d}.jpg").write_bytes(jpg.tobytes())
        y = np.zeros(frames, np.int8)
        y[frames // 2 :] = 1
        np.save(masks / f"{name}.npy", y)
    return n_train, n_test


def config_for(root: Path, workdir: Path) -> Path:
    cfg = load_config()
    cfg["datasets"] = {"shanghaitech": {**cfg["datasets"]["shanghaitech"], "root": str(root)}}
    # the models: this checkout's resources/ (a dry run plans fetch jobs for any that are missing)
    if (REPO / "resources").exists() and not (workdir / "resources").exists():
        (workdir / "resources").symlink_to(REPO / "resources")
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def dry_run(workdir: Path, cfgfile: Path, profile: Path = REPO / "profiles" / "slurm") -> tuple[float, str]:
    cmd = [*SNAKEMAKE, "-d", str(workdir), "--configfile", str(cfgfile), "--workflow-profile", str(profile),
           "results/shanghaitech/auc.json", "-n"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    dt = time.perf_counter() - t0
    if r.returncode:
        raise SystemExit(f"dry run failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return dt, r.stdout + r.stderr


def job_counts(out: str) -> dict[str, int]:
    jobs = {}
    for line in out.split("Job stats:")[-1].splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


def group_jobs(out: str) -> int:
    """Group jobs of the group `videos` in a dry run's listing."""
    return len(re.findall(r"Group job videos \(", out))


def cmd_dry_run(args) -> None:
    prof = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    per_group = prof["group-components"]["videos"]
    print(f"slurm profile: {per_group} components (= {per_group // 2} videos) per group job")
    print(f"{'videos':>7} {'per-video jobs':>15} {'SLURM jobs (grouped)':>21} {'dry run s':>10}")
    for n in args.videos:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            make_shanghaitech(tmp / "sht", n)
            cfg = config_for(tmp / "sht", tmp)
            dt, out = dry_run(tmp, cfg)
            jobs = job_counts(out)
            per_video = sum(jobs.get(r, 0) for r in PER_VIDEO)
            groups = group_jobs(out)
            others = sum(v for k, v in jobs.items() if k not in PER_VIDEO)
            # each video is two connected components (detect_track -> appearance, scene)
            assert groups == math.ceil(2 * n / per_group), (groups, n, per_group)
            print(f"{n:>7} {per_video:>15} {groups + others:>21} {dt:>10.1f}")


def cmd_overhead(args) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    import local_slurm

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "Snakefile").write_text(
            "rule all:\n    input: expand('out/{i}.txt', i=range(N_JOBS))\n"
            "rule one:\n    output: 'out/{i}.txt'\n    resources: gpu=1\n    shell: 'echo {wildcards.i} > {output}'\n"
            .replace("N_JOBS", str(args.jobs))
        )
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--resources", "gpu=1", "-q"], cwd=tmp,
                       check=True, capture_output=True)
        local = (time.perf_counter() - t0) / args.jobs
        subprocess.run(["rm", "-rf", str(tmp / "out"), str(tmp / ".snakemake")], check=True)
        d = tmp / "cluster"
        env = local_slurm.start(d)
        try:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "snakemake", "--executor", "slurm", "--jobs", "100",
                            "--slurm-status-command", "squeue", "--slurm-no-account",
                            "--slurm-init-seconds-before-status-checks", "1", "--default-resources", "mem_mb=500",
                            "runtime=5", "-q"], cwd=tmp, env=env, check=True, capture_output=True, timeout=1200)
            slurm = (time.perf_counter() - t0) / args.jobs
            subprocess.run(["rm", "-rf", str(tmp / "out"), str(tmp / ".snakemake")], check=True)
            # the same jobs as one group job (--cores 1: its members run one after another)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "snakemake", "--executor", "slurm", "--jobs", "100", "--cores", "1",
                            "--groups", "one=g", "--group-components", f"g={args.jobs}",
                            "--slurm-status-command", "squeue", "--slurm-no-account",
                            "--slurm-init-seconds-before-status-checks", "1", "--default-resources", "mem_mb=500",
                            "runtime=5", "-q"], cwd=tmp, env=env, check=True, capture_output=True, timeout=1200)
            grouped = (time.perf_counter() - t0) / args.jobs
        finally:
            local_slurm.stop(d)
    print(f"{args.jobs} jobs of a trivial GPU rule (one fake GPU: they run one after another)")
    print(f"local:  {local:6.2f} s per job")
    print(f"SLURM:  {slurm:6.2f} s per job  ({slurm / local:.1f}x local)")
    print(f"SLURM, one group job: {grouped:6.2f} s per job  ({grouped / local:.1f}x local)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dry-run")
    d.add_argument("--videos", type=int, nargs="+", default=[100, 437, 2000])
    o = sub.add_parser("overhead")
    o.add_argument("--jobs", type=int, default=6)
    args = p.parse_args()
    {"dry-run": cmd_dry_run, "overhead": cmd_overhead}[args.cmd](args)


if __name__ == "__main__":
    main()
