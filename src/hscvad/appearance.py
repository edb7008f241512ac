"""Appearance features of object samples: the mean embedding of up to ``crops_per_sample`` crops of
each sample, taken at evenly spaced tracked frames of its clip. The ``appearance`` stage writes them
for every sample of a video; the label-free validation embeds altered crops of some samples with the
same code."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from .models.appearance import crop_boxes

#: the settings an object's appearance feature depends on (beside the dataset's frames): the
#: declarations of rules appearance and synthetic_objects (hscvad.settings)
FEATURE_SETTINGS = ("clip_length", "appearance.backend", "appearance.crops_per_sample", "appearance.context",
                    "appearance.batch_size", "appearance.@backend")

def select_rows(sample: np.ndarray, frame: np.ndarray, k: int) -> np.ndarray:
    """Mask of rows picked for cropping: per sample, ``k`` rows at the centres of k equal segments
    of its frames in time order (all rows when it has k or fewer)."""
    order = np.lexsort((frame, sample))
    s_sorted = sample[order]
    counts = np.bincount(sample)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order)) - starts[s_sorted]
    c = counts[sample]
    kk = np.minimum(k, c)
    seg = (rank * kk) // c
    return rank == ((2 * seg + 1) * c) // (2 * kk)


def sample_features(frames: Callable[[Callable[[int], bool]], Iterator[np.ndarray | None]], frame: np.ndarray,
                    sample: np.ndarray, boxes: np.ndarray, n_samples: int, n_frames: int, model, *,
                    crops_per_sample: int, context: float, batch_size: int, embed: np.ndarray | None = None,
                    alter: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                    on_crops: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(feature (S, dim) float32, crops per sample (S,)) of a video's object samples.

    ``frames(keep)`` yields the video's frames in order (None where ``keep(t)`` is false); ``frame``,
    ``sample`` and ``boxes`` are its track rows, their sample index and their boxes. With ``embed`` (a
    boolean mask over samples) only those samples are cropped (the others get zeros); with ``alter``,
    each crop is taken from ``alter(frame_image, box)`` instead of the frame (a synthetic anomaly).
    ``on_crops`` is told how many crops each forward pass embedded (a progress bar)."""
    feat_sum = np.zeros((n_samples, model.dim), np.float64)
    n_crops = np.zeros(n_samples, np.int64)
    picked = np.flatnonzero(select_rows(sample, frame, int(crops_per_sample)))
    if embed is not None:
        picked = picked[np.asarray(embed, bool)[sample[picked]]]
    picked = picked[np.argsort(frame[picked], kind="stable")]
    starts = np.searchsorted(frame[picked], np.arange(int(n_frames) + 1))
    batch_rows: list[np.ndarray] = []
    batch_crops: list[np.ndarray] = []
    pending = 0

    def flush():
        nonlocal pending
        rows = np.concatenate(batch_rows)
        emb = model.embed(np.concatenate(batch_crops))
        np.add.at(feat_sum, sample[rows], emb)
        np.add.at(n_crops, sample[rows], 1)
        if on_crops is not None:
            on_crops(len(rows))
        batch_rows.clear(), batch_crops.clear()
        pending = 0

    needed = np.diff(starts) > 0  # frames holding a picked row: only these are read / converted

    def keep(t):
        return t < len(needed) and bool(needed[t])

    for f_idx, img in enumerate(frames(keep)):
        if img is None:
            continue
        rows = picked[starts[f_idx] : starts[f_idx + 1]]
        batch_rows.append(rows)
        if alter is None:
            batch_crops.append(crop_boxes(img, boxes[rows], model.input_hw, float(context), model.keep_aspect))
        else:
            batch_crops.append(np.concatenate([crop_boxes(alter(img, boxes[r]), boxes[r : r + 1], model.input_hw,
                                                          float(context), model.keep_aspect) for r in rows]))
        pending += len(rows)
        if pending >= int(batch_size):
            flush()
    if pending:
        flush()
    wanted = np.ones(n_samples, bool) if embed is None else np.asarray(embed, bool)
    if (n_crops[wanted] == 0).any():
        raise RuntimeError(f"{int((n_crops[wanted] == 0).sum())} samples got no crop; the video has fewer frames "
                           "than its track file says")
    return (feat_sum / np.maximum(n_crops, 1)[:, None]).astype(np.float32), n_crops
