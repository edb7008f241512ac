"""The per-video stages of the default Avenue streams on the two Avenue videos in ../shared, git
revisions side by side.

    python bench/avenue_stages.py --revisions 43a2ef8 HEAD [--cores 2] [--shared ../shared]
    python bench/avenue_stages.py --revisions 43a2ef8 HEAD HEAD=bench/configs/avenue_as_43a2ef8.yaml
                                  # REV=FILE: that revision with FILE's settings over its config.yaml

For each revision, one after the other, on a fresh checkout (its own Snakefile, code and config.yaml;
this checkout's resources/ linked in; this interpreter; an empty cache of exported models),
Snakemake with ``--cores N`` makes every per-video output of Avenue training videos 12 and 16
(640x360, crowded; 389 frames): tracks, objects, scene, flow, velocity, pose and motion, what the
avenue dataset's streams (appearance, motion, velocity) need before training. The only setting
added to the revision's config is where the videos are (``allow_partial``: the rest of Avenue is
not here).

Prints, per revision: the wall time and seconds per frame of the whole set, user and system CPU,
and per stage the summed job seconds per frame, CPU seconds and CPU / wall against the threads its
jobs declared; then each revision's seconds per frame as a ratio of the first's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from ped2_pipeline import run_revision  # noqa: E402

VIDEOS = ("12", "16")
KINDS = ("tracks", "objects", "scene", "flow", "velocity", "pose", "motion")
STAGES = ("detect_track", "appearance", "scene", "flow", "velocity", "pose", "motion")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--revisions", nargs="+", default=["HEAD"], metavar="REV[=FILE]")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work folders")
    args = ap.parse_args()
    root = (args.shared / "datasets" / "avenue").resolve()
    missing = [v for v in VIDEOS if not (root / "training_videos" / f"{v}.avi").is_file()]
    if missing:
        print(f"{root}/training_videos: videos {missing} missing", file=sys.stderr)
        return 2
    import av

    frames = 0
    for v in VIDEOS:
        with av.open(str(root / "training_videos" / f"{v}.avi")) as c:
            frames += sum(1 for _ in c.decode(c.streams.video[0]))
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(f"datasets:\n  avenue:\n    adapter: avenue\n    root: {root}\n    allow_partial: true\n")
        extra = Path(f.name)
    targets = [f"results/avenue/{k}/train/{v}.h5" for k in KINDS for v in VIDEOS]
    rows = []
    for rev in args.revisions:
        r = run_revision(rev, "avenue", args.cores, args.keep, targets=targets, configfiles=(extra,), stages=STAGES)
        rows.append(r)
        print(f"\n# {r['rev']} ({r['commit']}): Avenue training videos {' and '.join(VIDEOS)}, {frames} frames, "
              f"--cores {args.cores}")
        print(f"wall {r['wall']:.1f} s, {r['wall'] / frames:.3f} s per frame; CPU user {r['user']:.0f} s, system "
              f"{r['system']:.0f} s (system / user {r['system'] / max(r['user'], 1e-9):.1%})")
        print(f"{'stage':<14}{'jobs':>6}{'job s/frame':>13}{'cpu seconds':>13}{'cpu/wall':>10}{'threads':>9}")
        for stage, (n, wall, cpu, threads) in r["stages"].items():
            if n:
                print(f"{stage:<14}{n:>6}{wall / frames:>13.3f}{cpu:>13.1f}{cpu / max(wall, 1e-9):>10.2f}"
                      f"{threads or '-':>9}", flush=True)
        total = sum(w for _, w, _, _ in r["stages"].values())
        print(f"{'all stages':<14}{'':>6}{total / frames:>13.3f}")
    extra.unlink()
    print(f"\n# seconds per frame of the per-video stages (wall of the whole set, {args.cores} cores), side by side")
    width = max(len(r["rev"]) for r in rows) + 2
    for r in rows:
        ratio = r["wall"] / rows[0]["wall"]
        print(f"{r['rev']:<{width}}{r['commit']:<10}{r['wall'] / frames:>8.3f} s/frame  ratio {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
