"""Several videos per job (config ``shards``) against one job per video (issue 12, item 4).

    python bench/shards.py [--results results/ped2] [--stage scene] [--split test] [--videos 01 02 03 04]

For one per-video stage of a finished run, on the given videos, one after the other in one run:

- *per video*: one fresh Python process per video, each running that video's job (``hscvad.jobs.
  run``, what ``scripts/run_stage.py`` runs for a Snakemake job): imports, model load, the stage;
- *shard*: one fresh process running the shard job of all those videos (rules/shards.smk), which
  loads the model once.

Both write into temporary folders; the script checks that every output file holds the same
datasets and attributes, and prints both wall times and their ratio. Snakemake's own per-job cost
(scheduling, spawning the script) comes on top of the per-video figure and is not counted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hscvad.config import stage_params, validate  # noqa: E402
from hscvad.h5store import contents  # noqa: E402

#: per-video stages and the per-video input files they read besides the video (results/<ds>/<dir>)
INPUTS = {"detect_track": {}, "appearance": {"tracks": "tracks"}, "scene": {}, "flow": {"tracks": "tracks"},
          "pose": {"tracks": "tracks"}, "velocity": {"tracks": "tracks", "flow": "flow"},
          "motion": {"tracks": "tracks", "pose": "pose"}}
OUTPUT_DIR = {"detect_track": "tracks", "appearance": "objects", "scene": "scene", "flow": "flow", "pose": "pose",
              "velocity": "velocity", "motion": "motion"}

JOB = """
import json, sys
from hscvad import jobs
spec = json.loads(sys.argv[1])
job = jobs.Job(rule=spec["rule"], input=jobs.Files(spec["files"], spec["input"]), output=jobs.Files(spec["output"]),
               params=spec["params"], threads=spec["threads"], device="cpu", log=spec["log"])
if len(spec["output"]) == 1:
    from types import SimpleNamespace
    job.wildcards = SimpleNamespace(**spec["wildcards"])
sys.exit(jobs.run(job))
"""


def run_job(spec: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", JOB, json.dumps(spec)], cwd=REPO, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"job {spec['rule']} failed:\n{r.stderr[-3000:]}\n{Path(spec['log']).read_text()[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="results/ped2")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--stage", default="scene", choices=sorted(INPUTS))
    ap.add_argument("--split", default="test", choices=("train", "test"))
    ap.add_argument("--videos", nargs="+", default=["01", "02", "03", "04"])
    ap.add_argument("--config", default=str(REPO / "config.yaml"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    results = (REPO / args.results).resolve()
    name = args.dataset or results.name
    cfg = yaml.safe_load(Path(args.config).read_text())
    validate(cfg)
    params = stage_params(cfg, name, args.stage)
    from hscvad.data import build_dataset

    ds = build_dataset(name, params["dataset"])

    def inputs(video: str) -> dict:
        named = {"video": str(ds.path(args.split, video))}
        named.update({k: str(results / d / args.split / f"{video}.h5") for k, d in INPUTS[args.stage].items()})
        return named

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        single = tmp / "single" / name / OUTPUT_DIR[args.stage] / args.split
        shard = tmp / "shard" / name / OUTPUT_DIR[args.stage] / args.split
        t_single = 0.0
        for v in args.videos:
            named = inputs(v)
            t_single += run_job({"rule": args.stage, "files": list(named.values()), "input": named,
                                 "output": [str(single / f"{v}.h5")], "params": params, "threads": args.threads,
                                 "log": str(tmp / f"{v}.log"), "wildcards": {"dataset": name, "split": args.split,
                                                                             "video": v}})
        per = [inputs(v) for v in args.videos]
        named = {k: [p[k] for p in per] for k in per[0]}
        t_shard = run_job({"rule": f"{args.stage}__shard_bench", "input": named,
                           "files": [f for files in named.values() for f in files],
                           "output": [str(shard / f"{v}.h5") for v in args.videos], "params": params,
                           "threads": args.threads, "log": str(tmp / "shard.log"), "wildcards": {}})
        same = all(contents(single / f"{v}.h5") == contents(shard / f"{v}.h5") for v in args.videos)
    backend = params.get(args.stage, {}).get("backend") or params.get("detection", {}).get("backend")
    print(f"{name} {args.split} videos {' '.join(args.videos)}, stage {args.stage} (backend {backend}), "
          f"{args.threads} threads")
    print(f"one process per video: {t_single:8.2f} s ({len(args.videos)} jobs)")
    print(f"one shard job:         {t_shard:8.2f} s")
    print(f"shard / per-video: {t_shard / t_single:.3f}; saved {t_single - t_shard:.2f} s, "
          f"{(t_single - t_shard) / max(len(args.videos) - 1, 1):.2f} s per video after the first")
    print(f"outputs identical: {same}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
