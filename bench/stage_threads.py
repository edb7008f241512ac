"""Per-video stages at 1 and 2 threads: wall, user and system CPU of each job, side by side.

    python bench/stage_threads.py [--results results/ped2] [--video 01] [--threads 1 2]
                                  [--stages detect_track appearance scene flow]

Runs each stage's job as Snakemake would (``hscvad run <stage>``, a fresh process: start-up, imports,
model load and the work) on one test video of a finished run (the tracks it needs come from that
run), at each thread count, one after the other, and prints the job's wall seconds, user and system
CPU seconds, CPU / wall, and how many videos per second two jobs side by side at 1 thread would
finish against one job at 2 threads (the choice a rule's ``threads`` makes on a 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEEDS_TRACKS = {"appearance", "flow", "pose"}


def run_job(stage: str, results: Path, video: str, threads: int, out: Path) -> tuple[float, float, float]:
    cmd = [sys.executable, "-m", "hscvad.cli", "run", stage, "--dataset", results.name, "--split", "test",
           "--video", video, "--threads", str(threads), "--output", f"out={out}", "--log", str(out.with_suffix(".log"))]
    if stage in NEEDS_TRACKS:
        cmd[5:5] = ["--input", f"tracks={results / 'tracks' / 'test' / f'{video}.h5'}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", type=Path, default=REPO / "results" / "ped2")
    ap.add_argument("--video", default="01")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--stages", nargs="+", default=["detect_track", "appearance", "scene", "flow"])
    args = ap.parse_args()
    results = args.results.resolve()
    print(f"{results.name} test video {args.video}; one job per row, a fresh process each")
    print(f"{'stage':<14}{'threads':>8}{'wall s':>9}{'user s':>9}{'system s':>10}{'cpu/wall':>10}")
    walls: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stage in args.stages:
            for threads in args.threads:
                out = Path(tmp) / f"{stage}_{threads}.h5"
                wall, user, system = run_job(stage, results, args.video, threads, out)
                walls[stage, threads] = wall
                print(f"{stage:<14}{threads:>8}{wall:>9.2f}{user:>9.2f}{system:>10.2f}{(user + system) / wall:>10.2f}",
                      flush=True)
    if 1 in args.threads and 2 in args.threads:
        print("videos per minute on 2 cores: two 1-thread jobs side by side / one 2-thread job")
        for stage in args.stages:
            print(f"{stage:<14}{2 * 60 / walls[stage, 1]:>8.1f} / {60 / walls[stage, 2]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
