"""Benchmark: the full UCSD Ped2 pipeline from scratch, with per-stage figures.

    python bench/ped2_pipeline.py                 # fresh run in a temporary work folder
    python bench/ped2_pipeline.py --summarise .   # figures of an existing run in ./results/ped2
    python bench/ped2_pipeline.py --revisions 10be308 HEAD   # whole runs of git revisions, one after
                                                             # the other, wall times and AUCs side by side
    python bench/ped2_pipeline.py --revisions 10be308 HEAD=bench/configs/ped2_as_10be308.yaml
                                  # REV=FILE: that revision with FILE's settings over its config.yaml
                                  # (Snakemake's --configfile): here the work 10be308 did, like for like

(10be308: the code issue 12 measured, before the velocity stream and 224 px appearance crops.)

Prints the wall time of the whole run and, from Snakemake's benchmark files, per stage: summed job
seconds, frames/s of detect + track, object samples/s and crops/s of the appearance stage, frames/s
of the scene stage, seconds per training epoch, and the AUCs of auc.json under both protocols.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

from hscvad.config import load_config  # noqa: E402
from hscvad.jobs import reported_cpu  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STAGES = ("detect_track", "appearance", "flow", "velocity", "scene", "scene_labels", "train_hsc", "score", "explain",
          "evaluate")


def stage_seconds(res: Path, stages=STAGES) -> dict[str, tuple[int, float]]:
    """Per stage: its jobs and their summed wall seconds (Snakemake's benchmark files)."""
    return {stage: (n, s) for stage, (n, s, _, _) in stage_cpu(res, stages).items()}


def stage_cpu(res: Path, stages=STAGES) -> dict[str, tuple[int, float, float, int]]:
    """Per stage: jobs, summed wall seconds (Snakemake's benchmark files), summed CPU seconds (user +
    system) and the threads its jobs declared (from their logs' first line; 0 if unknown).

    The CPU seconds are what each job's process reports on its log's last line (``hscvad.jobs``,
    start-up included) where every job of the stage has that line; else Snakemake's ``cpu_time``,
    which samples the job (every 0.5 s for about 15 s, then every 30 s) and misses what it used
    after the last sample: all of a job shorter than half a second, up to 30 s of a longer one."""
    out = {}
    for stage in stages:
        files = list((res / "benchmarks" / stage).rglob("*.tsv"))
        wall = sampled = 0.0
        reported = []
        for f in files:
            rows = list(csv.DictReader(f.open(), delimiter="\t"))
            wall += float(rows[-1]["s"])
            sampled += float(rows[-1]["cpu_time"])
            reported.append(reported_cpu(res / "logs" / f.relative_to(res / "benchmarks").with_suffix(".log")))
        cpu = sum(reported) if files and None not in reported else sampled
        threads = 0
        for log in sorted((res / "logs" / stage).rglob("*.log"))[:1]:
            m = re.search(r"rule \w+, threads (\d+),", log.read_text(errors="replace"))
            threads = int(m[1]) if m else 0
        out[stage] = (len(files), wall, cpu, threads)
    return out


def print_stage_cpu(res: Path, stages=STAGES, frames: int | None = None) -> None:
    """The per-stage table: jobs, job seconds, CPU seconds, CPU / wall against the declared threads."""
    rows = stage_cpu(res, stages)
    per = f"{'s/frame':>9}" if frames else ""
    print(f"{'stage':<14}{'jobs':>6}{'job seconds':>14}{'cpu seconds':>13}{'cpu/wall':>10}{'threads':>9}{per}")
    for stage, (n, wall, cpu, threads) in rows.items():
        if not n:
            continue
        ratio = cpu / wall if wall else 0.0
        pf = f"{wall / frames:>9.3f}" if frames else ""
        print(f"{stage:<14}{n:>6}{wall:>14.1f}{cpu:>13.1f}{ratio:>10.2f}{threads or '-':>9}{pf}")
    print("(cpu seconds: each job's own report on its log's last line; Snakemake's sampled cpu_time, which "
          "undercounts, for a stage whose logs lack it)")


def cpu_line(user: float, system: float, wall: float) -> str:
    return (f"CPU of the whole run: user {user:.0f} s, system {system:.0f} s (system / user "
            f"{system / max(user, 1e-9):.1%}), (user + system) / wall {(user + system) / max(wall, 1e-9):.2f}")


def summarise(workdir: Path, dataset: str, wall: float | None) -> None:
    res = workdir / "results" / dataset
    secs = stage_seconds(res)
    frames = samples = crops = 0
    for f in (res / "tracks").rglob("*.h5"):
        with h5py.File(f) as h:
            frames += int(h.attrs["n_frames"])
    for f in (res / "objects").rglob("*.h5"):
        with h5py.File(f) as h:
            samples += h["feature"].shape[0]
            crops += int(h["n_crops"][()].sum())
    history = list(csv.DictReader((res / "hsc" / "history.csv").open()))
    n_streams = len({r["stream"] for r in history})
    epochs = len(history) // max(n_streams, 1)
    auc = json.loads((res / "auc.json").read_text())
    print(f"# {dataset} pipeline benchmark ({workdir})")
    if wall is not None:
        print(f"wall time, whole pipeline from scratch: {wall:.1f} s ({wall / 60:.1f} min)")
    print_stage_cpu(res)
    d, a, sc, t = secs["detect_track"][1], secs["appearance"][1], secs["scene"][1], secs["train_hsc"][1]
    print(f"detect+track: {frames} frames, {frames / d:.1f} frames/s")
    print(f"appearance: {samples} object samples ({crops} crops), "
          f"{samples / a:.1f} samples/s, {crops / a:.1f} crops/s")
    print(f"scene: {frames / sc:.1f} frames/s")
    if secs.get("flow", (0, 0.0))[0]:
        print(f"flow (+ per-box statistics): {frames / secs['flow'][1]:.1f} frames/s (job time incl. decoding)")
    print(f"training: {epochs} epochs x {n_streams} stream(s), {t / max(epochs, 1):.3f} s/epoch (all streams; "
          "job time incl. loading)")
    for p in ("reference", "strict", "strict_unsmoothed"):
        r = auc["protocols"][p]
        print(f"AUC {p:<18} micro {r['micro_auc']:.4f}  macro {r['macro_auc']:.4f}  ({r['n_frames']} frames)")
    print("per stream (python bench/ped2_streams.py table --results RESULTS):")
    sys.path.insert(0, str(REPO / "bench"))
    import ped2_streams

    ped2_streams.table(res)


def link_resources(work: Path) -> None:
    """``work/resources/<folder>/<entry>``: a link to each weights file and dataset of this
    checkout's resources/, so that a run that deletes an output it means to fetch again (an older
    revision's download rules) removes only the link, never the file."""
    for folder in (REPO / "resources").resolve().iterdir():
        if folder.is_dir():
            (work / "resources" / folder.name).mkdir(parents=True)
            for entry in folder.iterdir():
                (work / "resources" / folder.name / entry.name).symlink_to(entry.resolve())


def parse_revision(spec: str) -> tuple[str, Path | None]:
    """``REV`` or ``REV=FILE``: a git revision and an optional config file of this checkout whose
    settings go over the revision's config.yaml."""
    rev, sep, path = spec.partition("=")
    if not sep:
        return rev, None
    extra = Path(path).resolve()
    if not extra.is_file():
        raise SystemExit(f"--revisions {spec}: config file {path} not found")
    return rev, extra


def run_revision(spec: str, dataset: str, cores: int, keep: bool, targets: list[str] | None = None,
                 configfiles: tuple[Path, ...] = (), stages=STAGES) -> dict:
    """The README's main command (or Snakemake for ``targets``) on a fresh checkout of git revision
    ``rev`` (its own Snakefile, code and config.yaml, with ``configfiles`` and ``spec``'s config file
    over it; this checkout's resources/ linked in, this interpreter): wall time, the user and system
    CPU of every process it ran, the per-stage figures of its benchmark files, and the micro AUCs of
    its auc.json."""
    rev, extra = parse_revision(spec)
    work = Path(tempfile.mkdtemp(prefix=f"hscvad-bench-{rev}-"))
    tree = work / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev], check=True,
                   capture_output=True)
    try:
        commit = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], check=True,
                                capture_output=True, text=True).stdout.strip()
        link_resources(tree)
        # a fresh cache of exported models (a revision that exports pays for it, as on a new machine)
        env = {**os.environ, "PYTHONPATH": str(tree / "src"), "HSCVAD_CACHE": str(work / "cache")}
        cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), "-q"]
        files = [*configfiles, *([extra] if extra is not None else [])]
        if files:
            cmd += ["--configfile", *map(str, files)]
        cmd += ["--", *(targets or [f"results/{dataset}/auc.json"])]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=tree, env=env)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode:
            keep = True
            raise SystemExit(f"revision {rev}: snakemake failed ({r.returncode}); work folder kept: {tree}")
        res = tree / "results" / dataset
        auc_file = res / "auc.json"
        auc = json.loads(auc_file.read_text()) if auc_file.exists() else {}
        prot = auc.get("protocols", {})
        return {"rev": spec, "commit": commit, "wall": wall, "user": after.ru_utime - before.ru_utime,
                "system": after.ru_stime - before.ru_stime, "stages": stage_cpu(res, stages),
                **{p: prot.get(p, {}).get("micro_auc") for p in ("reference", "strict")}}
    finally:
        if not keep:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], capture_output=True)
            shutil.rmtree(work, ignore_errors=True)


def fmt(x) -> str:
    return f"{x:.4f}" if isinstance(x, float) else "-"


def compare_revisions(revs: list[str], dataset: str, cores: int, keep: bool) -> None:
    rows = [run_revision(rev, dataset, cores, keep) for rev in revs]
    print(f"# {dataset}: the README's main command on fresh checkouts, one after the other, {cores} cores")
    width = max(12, *(len(r["rev"]) + 2 for r in rows))
    print(f"{'revision':<{width}}{'commit':<10}{'wall s':>9}{'ratio':>8}{'reference':>11}{'strict':>9}"
          f"{'user s':>9}{'system s':>10}{'sys/user':>9}")
    for r in rows:
        print(f"{r['rev']:<{width}}{r['commit']:<10}{r['wall']:>9.1f}{r['wall'] / rows[0]['wall']:>8.3f}"
              f"{fmt(r['reference']):>11}{fmt(r['strict']):>9}{r['user']:>9.0f}{r['system']:>10.0f}"
              f"{r['system'] / max(r['user'], 1e-9):>9.1%}")
    for r in rows:
        print(f"\nper stage, {r['rev']} ({r['commit']}): summed job seconds, CPU seconds (user + system) and "
              "CPU / wall against the threads the jobs declared")
        print(f"{'stage':<14}{'jobs':>6}{'job seconds':>14}{'cpu seconds':>13}{'cpu/wall':>10}{'threads':>9}")
        for stage, (n, wall, cpu, threads) in r["stages"].items():
            if n:
                print(f"{stage:<14}{n:>6}{wall:>14.1f}{cpu:>13.1f}{cpu / max(wall, 1e-9):>10.2f}{threads or '-':>9}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--summarise", type=Path, help="only summarise the run in this work folder")
    ap.add_argument("--dataset", default="ped2")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    ap.add_argument("--revisions", nargs="+", metavar="REV[=FILE]",
                    help="run these git revisions' pipelines and compare them (=FILE: with that config file's "
                         "settings over the revision's config.yaml)")
    args = ap.parse_args()
    if args.revisions:
        compare_revisions(args.revisions, args.dataset, args.cores, args.keep)
        return 0
    if args.summarise:
        summarise(args.summarise, args.dataset, None)
        return 0
    cfg = load_config()
    root = cfg["datasets"][args.dataset]["root"]
    if not (REPO / root).exists():
        print(f"dataset root {root} missing: run scripts/setup.sh first", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="hscvad-bench-"))
    link_resources(work)
    shutil.copy(REPO / "config.yaml", work / "config.yaml")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work),
           f"results/{args.dataset}/auc.json", "--cores", str(args.cores), "--resources", "gpu=1", "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=work)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        print(f"snakemake failed ({r.returncode}); work folder kept: {work}", file=sys.stderr)
        return r.returncode
    summarise(work, args.dataset, wall)
    print(cpu_line(after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime, wall))
    if not args.keep:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
