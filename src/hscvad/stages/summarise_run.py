"""Rule ``summarise_run``: the run's benchmarks (one TSV per job, written by Snakemake's
``benchmark:``) summed per stage into a CSV and a bar plot, for the run report."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from ..evaluation import plots
from ..h5store import atomic_path
from ..jobs import reported_cpu

#: the run's benchmark files are its input; which of them count follows `shards` (the rule's
#: params.shards, computed in rules/shards.smk), no other setting changes its result
SETTINGS = ()

log = logging.getLogger(__name__)

COLUMNS = ["stage", "jobs", "wall_s_total", "wall_s_mean", "wall_s_max", "cpu_s_total", "max_rss_mb"]


def _num(x: str) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _current(stage_dir: Path, shards: dict[str, list[str]]) -> list[Path]:
    """The benchmark files of the jobs the current configuration defines for a stage: its shards'
    (``shards/<split>_<k>.tsv``, for a stage run in shards) or else every other file. Files that
    an earlier configuration left and the current one does not name (per-video files of a stage
    now run in shards, shard files of a stage now run per video) are not counted."""
    if stage_dir.name in shards:
        return [stage_dir / "shards" / name for name in sorted(shards[stage_dir.name])
                if (stage_dir / "shards" / name).is_file()]
    return [t for t in sorted(stage_dir.rglob("*.tsv")) if t.relative_to(stage_dir).parts[0] != "shards"]


def summarise(bench_dir: Path, shards: dict[str, list[str]] | None = None) -> list[dict]:
    """Per stage (the first folder below ``bench_dir``): jobs, wall-clock and CPU seconds, peak RSS.
    A job's CPU seconds are what it reported on its log's last line (the ``logs`` folder beside
    ``bench_dir``, same layout), else Snakemake's ``cpu_time``, which samples the job and misses
    what it used after the last sample.

    shards: per stage run in shards, the names of its shards' benchmark files (see _current)."""
    rows = []
    logs = Path(bench_dir).parent / "logs"
    for stage_dir in sorted(p for p in Path(bench_dir).iterdir() if p.is_dir()):
        walls, cpus, rss = [], [], []
        for tsv in _current(stage_dir, shards or {}):
            reported = reported_cpu(logs / tsv.relative_to(bench_dir).with_suffix(".log"))
            with open(tsv, newline="") as fh:
                for rec in csv.DictReader(fh, delimiter="\t"):
                    walls.append(_num(rec.get("s")))
                    cpus.append(reported if reported is not None else _num(rec.get("cpu_time")))
                    rss.append(_num(rec.get("max_rss")))
        if not walls:
            continue
        finite = [c for c in cpus if c == c]
        rss_f = [r for r in rss if r == r]
        rows.append({
            "stage": stage_dir.name,
            "jobs": len(walls),
            "wall_s_total": round(sum(walls), 2),
            "wall_s_mean": round(sum(walls) / len(walls), 2),
            "wall_s_max": round(max(walls), 2),
            "cpu_s_total": round(sum(finite), 2) if finite else "",
            "max_rss_mb": round(max(rss_f), 1) if rss_f else "",
        })
    return rows


def run(dataset_name: str, bench_dir: str, out_csv: str, out_png: str,
        shards: dict[str, list[str]] | None = None) -> list[dict]:
    rows = summarise(Path(bench_dir), shards)
    if not rows:
        raise FileNotFoundError(f"summarise_run: no benchmark TSV under {bench_dir}")
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    plots.stage_times([r["stage"] for r in rows], [r["wall_s_total"] for r in rows], Path(out_png), dataset_name)
    log.info("summarise_run: %d stages, %d jobs", len(rows), sum(r["jobs"] for r in rows))
    return rows


def main(job) -> None:
    run(job.dataset, job.extra["benchmarks"], job.output.table, job.output.plot, job.extra.get("shards"))
