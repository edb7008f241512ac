"""What a dataset copy holds, compared with its published benchmark (rule ``check_dataset``).

:func:`check_dataset` counts the videos of each split, the frames of every test video (decoded, as
the stages will) and the abnormal frames of its labels, and lists every difference from the
benchmark named in ``datasets.<name>.benchmark``. :func:`how_to_get` is the one-line instruction for
a dataset whose folder is missing or empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .benchmarks import BENCHMARKS, Benchmark, video_key
from .datasets import Dataset
from .labels import LabelError
from .readers import VideoError

ADAPTER_LAYOUTS = {
    "ucsd_ped": BENCHMARKS["ped2"].layout,
    "avenue": BENCHMARKS["avenue"].layout,
    "shanghaitech": BENCHMARKS["shanghaitech"].layout,
    "folder": "train/<video> and test/<video> (video files or frame folders), optional labels/<video>.npy",
}


def how_to_get(name: str, cfg: dict[str, Any]) -> str:
    """Where dataset ``name`` comes from and what its folder must hold, in one line."""
    root = cfg.get("root")
    b = BENCHMARKS.get(cfg.get("benchmark") or "")
    layout = ADAPTER_LAYOUTS.get(cfg.get("adapter"), "")
    if b is None:
        return f"place it under {root} as {layout} (or set datasets.{name}.root)"
    mixtures = cfg.get("mixtures_dir") or f"{root}/mixtures"
    get = b.get.format(root=root, mixtures_dir=f"{mixtures}/{cfg.get('mixture')}")
    return f"{b.title}: {get}. Expected under {root}: {b.layout} (or set datasets.{name}.root to a copy)"


def _names(items: Iterable[str], limit: int = 25) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return f"{shown}, ... ({len(items)} in all)" if len(items) > limit else shown


def _compare_names(split: str, found: list[str], expected: Iterable[str]) -> list[str]:
    by_key = {video_key(v): v for v in found}
    exp = {video_key(v): v for v in expected}
    out = []
    missing = [exp[k] for k in exp if k not in by_key]
    extra = [by_key[k] for k in by_key if k not in exp]
    if missing:
        out.append(f"missing {split} videos ({len(missing)}): {_names(missing)}")
    if extra:
        out.append(f"{split} videos not in the benchmark ({len(extra)}): {_names(extra)}")
    return out


def check_dataset(ds: Dataset, benchmark: str | None,
                  progress: Callable[[Iterable[str]], Iterable[str]] = lambda x: x) -> dict[str, Any]:
    """Count what ``ds`` holds and compare it with ``benchmark``; ``complete`` is False when any
    difference is found (``differences`` lists them). Without a benchmark only the labels are checked,
    and what is wrong with them is listed under ``warnings``."""
    b: Benchmark | None = BENCHMARKS[benchmark] if benchmark else None
    train, test = ds.videos("train"), ds.videos("test")
    problems: list[str] = []
    per_video: dict[str, dict[str, Any]] = {}
    no_labels: list[str] = []
    for v in progress(test):
        try:
            n = ds.source("test", v).count_frames()
        except VideoError as e:
            problems.append(f"test video {v}: {e}")
            continue
        entry: dict[str, Any] = {"frames": n}
        path = ds.label_file(v) or ds.expected_label_file(v)
        if path is None or not path.exists():
            no_labels.append(f"{v} ({path})" if path is not None else v)
        else:
            try:
                entry["abnormal"] = int(ds.frame_labels(v, n).sum())
            except LabelError as e:
                problems.append(str(e))
        per_video[v] = entry
    labelled = [e["abnormal"] for e in per_video.values() if "abnormal" in e]
    if no_labels and (b is not None or labelled):
        problems.append(f"test videos without a label file ({len(no_labels)}): {_names(no_labels)}")
    found = {
        "train_videos": len(train),
        "test_videos": len(test),
        "test_frames": sum(e["frames"] for e in per_video.values()),
        "abnormal_frames": sum(labelled) if labelled else None,
        "labelled_test_videos": len(labelled),
    }
    result: dict[str, Any] = {
        "dataset": ds.name, "adapter": ds.adapter, "root": str(ds.root), "benchmark": benchmark,
        "found": found, "expected": None, "test_videos": per_video,
    }
    if b is None:
        result.update(complete=None, differences=[], warnings=problems)
        return result
    diffs = []
    if b.train_names:
        diffs += _compare_names("training", train, b.train_names)
    if len(train) != b.train_videos and not (b.train_names and diffs):
        diffs.append(f"{len(train)} training videos, expected {b.train_videos}")
    diffs += _compare_names("test", test, b.test_frames)
    expected_frames = {video_key(k): n for k, n in b.test_frames.items()}
    wrong = [f"{v} {e['frames']} (expected {expected_frames[video_key(v)]})" for v, e in per_video.items()
             if video_key(v) in expected_frames and e["frames"] != expected_frames[video_key(v)]]
    if wrong:
        diffs.append(f"test videos with another number of frames ({len(wrong)}): {_names(wrong)}")
    if found["test_frames"] != b.total_test_frames:
        diffs.append(f"{found['test_frames']} test frames, expected {b.total_test_frames}")
    if found["abnormal_frames"] != b.abnormal_frames:
        diffs.append(f"{found['abnormal_frames'] or 0} abnormal test frames, expected {b.abnormal_frames}")
    diffs += problems
    result.update(
        expected={"train_videos": b.train_videos, "test_videos": b.test_videos,
                  "test_frames": b.total_test_frames, "abnormal_frames": b.abnormal_frames},
        complete=not diffs, differences=diffs, warnings=[], title=b.title)
    return result
