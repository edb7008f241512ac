"""Readers for the official frame-level and pixel-level ground-truth formats.

All readers return frame labels as uint8 arrays (1 = abnormal) indexed from frame 0.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .readers import list_images


class LabelError(ValueError):
    """A label file that cannot be parsed or disagrees with its video; names the file."""


_RANGE = re.compile(r"(\d+)\s*:\s*(\d+)")


def read_ucsd_m(path: str | Path) -> list[list[tuple[int, int]]]:
    """Parse UCSDped1.m / UCSDped2.m: one ``gt_frame = [a:b, c:d]`` line per test video.

    Returns, per video in file order, the 1-based inclusive frame ranges.
    """
    path = Path(path)
    text = path.read_text()
    videos = []
    for line in text.splitlines():
        if "gt_frame" not in line:
            continue
        inside = line.split("[", 1)[-1].rsplit("]", 1)[0]
        ranges = [(int(a), int(b)) for a, b in _RANGE.findall(inside)]
        singles = re.sub(_RANGE, " ", inside)
        ranges += [(int(v), int(v)) for v in re.findall(r"\d+", singles)]
        if not ranges:
            raise LabelError(f"{path}: no frame range in line {line.strip()!r}")
        videos.append(sorted(ranges))
    if not videos:
        raise LabelError(f"{path}: no 'gt_frame' line found (not a UCSD ground-truth .m file)")
    return videos


def ranges_to_labels(ranges: list[tuple[int, int]], n_frames: int, source: str | Path) -> np.ndarray:
    labels = np.zeros(n_frames, dtype=np.uint8)
    for a, b in ranges:
        if a < 1 or b > n_frames or a > b:
            raise LabelError(f"{source}: range {a}:{b} lies outside the video's {n_frames} frames")
        labels[a - 1 : b] = 1
    return labels


def _avenue_volume(path: str | Path) -> list[np.ndarray]:
    """CUHK Avenue ``N_label.mat``: ``volLabel``'s pixel masks, one (H, W) array per frame, all of
    one size."""
    path = Path(path)
    try:
        import scipy.io

        data = scipy.io.loadmat(str(path))
        vol = data["volLabel"]
        masks = [np.asarray(m) for m in vol.reshape(-1)]
    except NotImplementedError:  # MATLAB v7.3 files are HDF5
        import h5py

        with h5py.File(path, "r") as f:
            refs = f["volLabel"][()].reshape(-1)
            masks = [np.asarray(f[r]).T for r in refs]
    except KeyError as e:
        raise LabelError(f"{path}: no 'volLabel' variable") from e
    except Exception as e:  # scipy raises several types for corrupt files
        raise LabelError(f"{path}: cannot read MATLAB file ({e})") from e
    shapes = {m.shape for m in masks}
    if len(shapes) != 1 or not masks:
        raise LabelError(f"{path}: volLabel masks of different sizes {sorted(shapes)}")
    return masks


def read_avenue_masks(path: str | Path) -> np.ndarray:
    """CUHK Avenue ``N_label.mat``: ``volLabel``, one pixel mask per frame -> (T, H, W) bool."""
    masks = _avenue_volume(path)
    out = np.empty((len(masks), *masks[0].shape), bool)
    for i, m in enumerate(masks):  # one bool copy (stacking first would copy the volume twice)
        np.not_equal(m, 0, out=out[i])
    return out


def read_avenue_mat(path: str | Path) -> np.ndarray:
    """CUHK Avenue ``N_label.mat`` -> frame labels (a frame is abnormal when its mask is not empty)."""
    return np.fromiter((m.any() for m in _avenue_volume(path)), np.uint8)


def read_npy_labels(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        arr = np.load(path)
    except Exception as e:
        raise LabelError(f"{path}: cannot read .npy frame mask ({e})") from e
    if arr.ndim != 1:
        raise LabelError(f"{path}: frame mask must be 1-d, got shape {arr.shape}")
    return (arr > 0).astype(np.uint8)


def read_mask_folder(folder: str | Path) -> np.ndarray:
    """Pixel masks (one image per frame, any non-zero pixel abnormal) -> frame labels."""
    import cv2

    folder = Path(folder)
    files = list_images(folder)
    if not files:
        raise LabelError(f"{folder}: no mask images")
    labels = np.zeros(len(files), dtype=np.uint8)
    for i, file in enumerate(files):
        m = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise LabelError(f"{file}: unreadable mask image")
        labels[i] = m.any()
    return labels


def check_length(labels: np.ndarray, n_frames: int, source: str | Path) -> np.ndarray:
    if len(labels) != n_frames:
        raise LabelError(
            f"{source}: {len(labels)} frame labels for a video of {n_frames} frames"
        )
    return labels
