"""Rule ``explain``: which object the system found abnormal, and why (which stream).

For every test video: its ``clips_per_video`` highest-scoring clips (clip score = the highest
fused object score in it), each shown by the frame nearest the clip's middle in which its top
object is tracked, with the ``objects_per_clip`` top objects boxed in the colour of the stream
whose standardised score (z, in units of the training scores' spread; of the calibrated score
with ``evaluation.localisation.calibration: tail``) is highest, labelled with
rank, class, that stream and every stream's z; other objects of the clip in grey. Also a CSV of
each video's ``objects_per_video`` top objects with every stream's raw score and z.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..config import section
from ..data import build_dataset
from ..evaluation import plots
from ..evaluation.objects import load_objects
from ..h5store import atomic_path, read_arrays
from ..parallel import Workers
from ..settings import DATASET, Derived
from .common import log, progress

#: the settings this stage's result depends on (the rule's params; see hscvad.settings)
SETTINGS = (DATASET, "explain", Derived("calibration", ("evaluation.localisation.calibration",
                                                          "datasets.{dataset}.evaluation.localisation.calibration"),
                                        lambda config, dataset: section(config, dataset, "evaluation")["localisation"][
                                            "calibration"]),
            Derived("track_window", ("evaluation.track_window", "datasets.{dataset}.evaluation.track_window"),
                    lambda config, dataset: section(config, dataset, "evaluation")["track_window"]))


def run(dataset_name: str, dataset_cfg: dict, scores_file: str, track_files: list[str], out_dir: str, out_csv: str,
        params: dict, threads: int = 1) -> dict:
    """``threads`` > 1: the figures are drawn by that many worker processes while this one reads
    the next videos' frames (:class:`hscvad.parallel.Workers`; the same files)."""
    with Workers(threads if threads > 1 else 0) as workers:
        return _run(dataset_name, dataset_cfg, scores_file, track_files, out_dir, out_csv, params, workers)


def _run(dataset_name, dataset_cfg, scores_file, track_files, out_dir, out_csv, params, workers) -> dict:
    cfg = params["explain"]
    table = load_objects(scores_file, params["calibration"], int(params["track_window"]))
    T = table.clip_length
    ds = build_dataset(dataset_name, dataset_cfg)
    resp = table.responsible() if len(table.video) else np.zeros(0, np.int64)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    rows = []
    bar = progress(len(table.videos), "explain", "video")
    for i, video in enumerate(table.videos):
        arr, attrs = read_arrays(track_files[i], "tracks")
        if attrs["video"] != video:
            raise ValueError(f"{track_files[i]} belongs to video {attrs['video']}, expected {video}")
        names = list(attrs["class_names"])
        sel = np.flatnonzero(table.video == i)
        order = sel[np.argsort(-table.fused[sel], kind="stable")]
        for rank, o in enumerate(order[: int(cfg["objects_per_video"])], 1):
            rows.append([video, rank, int(table.clip[o]), int(table.clip[o]) * T,
                         min((int(table.clip[o]) + 1) * T, int(table.n_frames[i])) - 1, int(table.track[o]),
                         *(f"{x:.1f}" for x in table.box[o]), names[int(table.cls[o])], f"{table.fused[o]:.4g}",
                         table.streams[int(resp[o])],
                         *(("" if np.isnan(v) else f"{v:.6g}") for v in (*table.raw[o], *table.z[o]))])
        # top clips by their highest fused object score
        clips = np.unique(table.clip[sel])
        best = np.full(len(clips), -np.inf)
        np.maximum.at(best, np.searchsorted(clips, table.clip[sel]), table.fused[sel])
        top_clips = clips[np.argsort(-best, kind="stable")[: int(cfg["clips_per_video"])]]
        wanted, panels = {}, []
        for c in top_clips:
            in_clip = sel[table.clip[sel] == c]
            objs = in_clip[np.argsort(-table.fused[in_clip], kind="stable")[: int(cfg["objects_per_clip"])]]
            tr_frames = arr["frame"][(arr["track_id"] == table.track[objs[0]]) & (arr["frame"] // T == c)]
            mid = c * T + T // 2
            f = int(tr_frames[np.argmin(np.abs(tr_frames - mid))]) if len(tr_frames) else int(c * T)
            wanted[f] = None
            at_f = arr["frame"] == f
            boxes_f, tracks_f = arr["box"][at_f], arr["track_id"][at_f]
            objects = []
            for r, o in enumerate(objs, 1):
                hit = tracks_f == table.track[o]
                box = boxes_f[hit][0] if hit.any() else table.box[o]
                zs = " ".join(f"{s[:3]} {z:+.1f}" for s, z in zip(table.streams, table.z[o]) if np.isfinite(z))
                objects.append({"box": box, "stream": table.streams[int(resp[o])],
                                "label": f"#{r} {names[int(table.cls[o])]} by {table.streams[int(resp[o])]}: {zs}"})
            others = boxes_f[~np.isin(tracks_f, table.track[objs])]
            last = min((int(c) + 1) * T, int(table.n_frames[i])) - 1
            panels.append({"frame": f, "others": others, "objects": objects,
                           "title": f"clip {int(c)} (frames {int(c) * T}-{last}), frame {f}; "
                                    f"fused z {best[np.searchsorted(clips, c)]:.1f}"})
        if panels:
            for t, img in enumerate(ds.source("test", video).frames(wanted.__contains__)):
                if t in wanted:
                    wanted[t] = img
                if t > max(wanted):
                    break
            for p in panels:
                if wanted[p["frame"]] is None:
                    raise ValueError(f"test video {video}: frame {p['frame']} could not be decoded")
                p["image"] = wanted[p["frame"]]
            workers.submit(plots.explanation, Path(out_dir) / f"{video}.png", video, panels, table.streams,
                           callback=lambda _: bar.update(1))
        else:
            bar.update(1)
    workers.wait()
    bar.close()
    header = ["video", "rank", "clip", "first_frame", "last_frame", "track_id", "x1", "y1", "x2", "y2", "class",
              "fused_z", "responsible_stream", *[f"raw_{s}" for s in table.streams], *[f"z_{s}" for s in table.streams]]
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    log.info("explain: %d videos, %d top objects listed", len(table.videos), len(rows))
    return {"n_videos": len(table.videos), "n_rows": len(rows)}


def main(job) -> None:
    run(job.dataset, job.params["dataset"], job.input.scores, job.input.tracks, job.output.images, job.output.csv,
        job.params, job.threads)
