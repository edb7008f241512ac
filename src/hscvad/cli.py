"""``hscvad <stage> ...``: the command each Snakemake rule runs (one subcommand per rule)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from .stages.common import parse_params, setup_logging

STAGES = {
    "detect-track": "detect_track",
    "appearance": "appearance",
    "scene": "scene",
    "scene-labels": "scene_labels",
    "train-hsc": "train_hsc",
    "pose": "pose",
    "motion": "motion",
    "flow": "flow",
    "velocity": "velocity",
    "score": "score",
    "augment-motion": "augment_motion",
    "train-motion-classifier": "train_motion_classifier",
    "evaluate": "evaluate",
    "explain": "explain",
    "summarise-run": "summarise_run",
    "fetch": "fetch",
    "check-dataset": "check_dataset",
}


LOG_HELP = "the job's log: stderr goes there, and a failure's one-line cause also to the console"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hscvad", description=__doc__)
    sub = p.add_subparsers(dest="stage", required=True)

    def stage(name, help_):
        s = sub.add_parser(name, help=help_)
        s.add_argument("--params", type=parse_params, required=True, help="the rule's parameters as JSON")
        s.add_argument("--threads", type=int, default=1)
        s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        s.add_argument("--dataset", default=None)
        s.add_argument("--log", default=None, help=LOG_HELP)
        return s

    for name in ("detect-track", "appearance", "scene", "pose", "flow"):
        s = stage(name, f"per-video stage {name}")
        s.add_argument("--split", required=True)
        s.add_argument("--video", required=True)
        s.add_argument("--input", default=None)
        s.add_argument("--output", required=True)
    s = stage("motion", "per-video motion features from skeletons")
    s.add_argument("--tracks", required=True)
    s.add_argument("--pose", required=True)
    s.add_argument("--output", required=True)
    s = stage("velocity", "per-video velocity descriptors from tracks and flow statistics")
    s.add_argument("--tracks", required=True)
    s.add_argument("--flow", required=True)
    s.add_argument("--output", required=True)
    s = stage("scene-labels", "scene pseudo-labels")
    s.add_argument("--inputs", nargs="+", required=True)
    s.add_argument("--output", required=True)
    s.add_argument("--plot", required=True)
    s = stage("train-hsc", "train the HSC autoencoders")
    s.add_argument("--objects", nargs="*", default=[], help="appearance files of the training videos")
    s.add_argument("--motion", nargs="*", default=[], help="motion files of the training videos")
    s.add_argument("--velocity", nargs="*", default=[], help="velocity files of the training videos")
    s.add_argument("--scenes", nargs="+", required=True)
    s.add_argument("--scene-labels", required=True)
    s.add_argument("--output", required=True)
    s.add_argument("--history", required=True)
    s.add_argument("--augmented", default=None, help="MA-: pseudo-normal motion samples to add")
    s = stage("score", "score test samples and frames")
    s.add_argument("--model", required=True)
    s.add_argument("--train-objects", nargs="*", default=[])
    s.add_argument("--train-motion", nargs="*", default=[])
    s.add_argument("--train-velocity", nargs="*", default=[])
    s.add_argument("--train-scenes", nargs="+", required=True)
    s.add_argument("--test-objects", nargs="*", default=[])
    s.add_argument("--test-motion", nargs="*", default=[])
    s.add_argument("--test-velocity", nargs="*", default=[])
    s.add_argument("--test-scenes", nargs="+", required=True)
    s.add_argument("--scene-labels", required=True)
    s.add_argument("--output", required=True)
    s.add_argument("--plot", default=None, help="PNG of the object feature embedding")
    s.add_argument("--classifier", nargs="?", default=None, help="MA-,+: the binary motion classifier")
    s.add_argument("--motion-model", nargs="?", default=None, help="MA-: the retrained motion autoencoder")
    s = stage("augment-motion", "motion augmentation and selection")
    s.add_argument("--model", required=True)
    s.add_argument("--motion", nargs="+", required=True)
    s.add_argument("--scenes", nargs="+", required=True)
    s.add_argument("--output", required=True)
    s = stage("train-motion-classifier", "binary motion classifier")
    s.add_argument("--input", required=True)
    s.add_argument("--motion", nargs="+", required=True)
    s.add_argument("--scenes", nargs="+", required=True)
    s.add_argument("--output", required=True)
    s.add_argument("--history", required=True)
    s = stage("evaluate", "AUCs, CSV and plots")
    s.add_argument("--input", required=True)
    s.add_argument("--output", required=True)
    s.add_argument("--csv", required=True)
    s.add_argument("--plots", required=True)
    s.add_argument("--table", help="AUC table (CSV): one row per stream and protocol")
    s.add_argument("--video-plots", help="folder for one score plot per video (PNG)")
    s.add_argument("--tracks", nargs="*", default=[], help="track files of the test videos (localisation metrics)")
    s.add_argument("--explanations", default=None, help="the explain rule's CSV (named in auc.json)")
    s.add_argument("--dataset-check", default=None, help="the check_dataset rule's JSON (recorded in auc.json)")
    s = stage("explain", "per test video: the top clips and the objects responsible (PNG, CSV)")
    s.add_argument("--input", required=True, help="scores.h5")
    s.add_argument("--tracks", nargs="+", required=True, help="track files of the test videos")
    s.add_argument("--output", required=True, help="folder for one PNG per test video")
    s.add_argument("--csv", required=True)
    s = sub.add_parser("summarise-run", help="the run's benchmarks per stage (CSV and plot)")
    s.add_argument("--dataset", required=True)
    s.add_argument("--benchmarks", required=True, help="the dataset's benchmark folder")
    s.add_argument("--output", required=True)
    s.add_argument("--plot", required=True)
    s.add_argument("--log", default=None, help=LOG_HELP)
    s = stage("check-dataset", "compare a dataset copy with its benchmark")
    s.add_argument("--output", required=True)
    s = stage("fetch", "download published data or weights, verify checksums")
    s.add_argument("--output", required=True)
    return p


def _redirect_stderr(log: str):
    """Send everything written to stderr (logging, progress bars, native libraries) to ``log``;
    returns a stream to the original stderr (the console) for the one-line cause of a failure."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    console = os.fdopen(os.dup(2), "w")
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    os.dup2(fd, 2)
    os.close(fd)
    return console


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = _redirect_stderr(args.log) if getattr(args, "log", None) else None
    setup_logging()
    module = importlib.import_module(f"hscvad.stages.{STAGES[args.stage]}")
    try:
        module.main(args)
    except Exception as e:  # the cause in one line first, then the traceback (in the log)
        import traceback

        cause = f"hscvad {args.stage}: error: {e}"
        print(cause, file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        if console is not None:
            print(f"{cause}\n  (traceback in {args.log})", file=console, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
