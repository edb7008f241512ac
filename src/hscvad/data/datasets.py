"""Dataset adapters: one class per on-disk layout, registered by name (``datasets.<name>.adapter``).

Every adapter answers the same questions: which videos a split holds, where a video's frames come
from, and (for test videos) the frame labels and, where the dataset has them, the pixel masks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import labels as L
from .readers import IMAGE_SUFFIXES, VIDEO_SUFFIXES, FrameSource, open_source

SPLITS = ("train", "test")
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


class DatasetError(ValueError):
    """A dataset root or layout that does not match its adapter; names the setting and path."""


_REGISTRY: dict[str, type[Dataset]] = {}


def register_dataset(name: str) -> Callable[[type[Dataset]], type[Dataset]]:
    def deco(cls: type[Dataset]) -> type[Dataset]:
        _REGISTRY[name] = cls
        cls.adapter = name
        return cls

    return deco


def adapters() -> list[str]:
    return sorted(_REGISTRY)


def build_dataset(name: str, cfg: dict[str, Any]) -> Dataset:
    """Build the adapter named in ``cfg['adapter']`` for dataset ``name``."""
    adapter = cfg.get("adapter")
    if adapter not in _REGISTRY:
        raise DatasetError(
            f"datasets.{name}.adapter: unknown adapter {adapter!r}; known: {', '.join(adapters())}"
        )
    return _REGISTRY[adapter](name, cfg)


class Dataset:
    adapter = "base"

    def __init__(self, name: str, cfg: dict[str, Any]):
        self.name = name
        self.cfg = cfg
        self.root = Path(cfg["root"])
        if not self.root.is_dir():
            raise DatasetError(
                f"datasets.{name}.root: dataset folder not found: {self.root} "
                "(link or place the dataset there, or set the key in config.yaml)"
            )
        self._videos: dict[str, dict[str, Path]] = {}

    # -- to implement -------------------------------------------------------------------------
    def _scan(self, split: str) -> dict[str, Path]:
        raise NotImplementedError

    def label_file(self, video: str) -> Path | None:
        """The file holding ``video``'s frame labels, or None when it has none."""
        return None

    def expected_label_file(self, video: str) -> Path | None:
        """Where ``video``'s labels would be (to name a missing file)."""
        return self.label_file(video)

    def _read_labels(self, video: str, n_frames: int) -> np.ndarray:
        path = self.label_file(video)
        if path.suffix == ".npy":
            return L.read_npy_labels(path)
        if path.is_dir():
            return L.read_mask_folder(path)
        raise DatasetError(f"{path}: unsupported label file type")

    def mask_folder(self, video: str) -> Path | None:
        return None

    # -- shared ---------------------------------------------------------------------------------
    def videos(self, split: str) -> list[str]:
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; expected one of {SPLITS}")
        if split not in self._videos:
            found = self._scan(split)
            for v in found:
                if not _NAME.match(v):
                    raise DatasetError(f"{found[v]}: video name {v!r} has characters other than A-Za-z0-9_.+-")
            self._videos[split] = dict(sorted(found.items()))
        return list(self._videos[split])

    def path(self, split: str, video: str) -> Path:
        self.videos(split)
        try:
            return self._videos[split][video]
        except KeyError:
            raise DatasetError(f"dataset {self.name}: no {split} video named {video!r} under {self.root}") from None

    def source(self, split: str, video: str) -> FrameSource:
        return open_source(self.path(split, video), fps=float(self.cfg.get("fps", 25.0)))

    def has_labels(self) -> bool:
        return all(self.label_file(v) is not None for v in self.videos("test"))

    def frame_labels(self, video: str, n_frames: int) -> np.ndarray | None:
        """Frame labels of a test video (1 = abnormal), checked against its frame count."""
        path = self.label_file(video)
        if path is None:
            return None
        if not path.exists():
            raise L.LabelError(f"{path}: label file not found for test video {video!r}")
        return L.check_length(self._read_labels(video, n_frames), n_frames, path)

    def pixel_masks(self, video: str) -> np.ndarray | None:
        """(T, H, W) bool pixel masks where the dataset has them."""
        folder = self.mask_folder(video)
        if folder is None or not folder.is_dir():
            return None
        import cv2

        files = L.list_images(folder)
        return np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) > 0 for f in files])


def _subdirs(folder: Path, exclude_suffix: str | None = None) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        p.name: p
        for p in folder.iterdir()
        if p.is_dir() and not (exclude_suffix and p.name.endswith(exclude_suffix))
    }


def _video_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES}


@register_dataset("ucsd_ped")
class UCSDPed(Dataset):
    """UCSD Ped1/Ped2, official layout (``Train/Train001/001.tif``, ``Test/Test001_gt``,
    ``Test/UCSDped2.m``) or the common frames layout (``training/frames/01/000.jpg``,
    ``testing/frames/01``, ``testing/UCSDped2.m``, ``testing/pixel_masks/01``)."""

    def __init__(self, name, cfg):
        super().__init__(name, cfg)
        if (self.root / "training" / "frames").is_dir():
            self.layout = "frames"
            self.test_dir = self.root / "testing"
        elif (self.root / "Train").is_dir() and (self.root / "Test").is_dir():
            self.layout = "official"
            self.test_dir = self.root / "Test"
        else:
            raise DatasetError(
                f"datasets.{name}.root: {self.root} has neither training/frames (frames layout) "
                "nor Train/ and Test/ (official UCSD layout)"
            )
        self._m_file = next(iter(sorted(self.test_dir.glob("UCSDped*.m"))), None)
        self._m_ranges: list | None = None

    def _scan(self, split):
        if self.layout == "frames":
            return _subdirs(self.root / ("training" if split == "train" else "testing") / "frames")
        return _subdirs(self.root / ("Train" if split == "train" else "Test"), exclude_suffix="_gt")

    def label_file(self, video):
        npy = self.test_dir / "test_frame_mask" / f"{video}.npy"
        if npy.exists() or self._m_file is None:
            return npy
        return self._m_file

    def _read_labels(self, video, n_frames):
        path = self.label_file(video)
        if path.suffix != ".m":
            return super()._read_labels(video, n_frames)
        if self._m_ranges is None:
            self._m_ranges = L.read_ucsd_m(path)
        tests = self.videos("test")
        if len(self._m_ranges) != len(tests):
            raise L.LabelError(f"{path}: {len(self._m_ranges)} videos' labels for {len(tests)} test videos")
        return L.ranges_to_labels(self._m_ranges[tests.index(video)], n_frames, path)

    def mask_folder(self, video):
        if self.layout == "frames":
            return self.test_dir / "pixel_masks" / video
        return self.test_dir / f"{video}_gt"


@register_dataset("avenue")
class Avenue(Dataset):
    """CUHK Avenue: ``training_videos/NN.avi``, ``testing_videos/NN.avi``,
    ``ground_truth_demo/testing_label_mask/N_label.mat`` (``volLabel``); ``.npy`` frame masks in
    ``testing_frame_mask/NN.npy`` are accepted instead."""

    def _scan(self, split):
        folder = self.root / ("training_videos" if split == "train" else "testing_videos")
        return _video_files(folder)

    def label_file(self, video):
        npy = self.root / "testing_frame_mask" / f"{video}.npy"
        if npy.exists():
            return npy
        return self.root / "ground_truth_demo" / "testing_label_mask" / f"{int(video)}_label.mat"

    def _read_labels(self, video, n_frames):
        path = self.label_file(video)
        if path.suffix == ".mat":
            return L.read_avenue_mat(path)
        return super()._read_labels(video, n_frames)

    def pixel_masks(self, video):
        """The official ``volLabel`` pixel masks (None when only .npy frame masks are there)."""
        path = self.root / "ground_truth_demo" / "testing_label_mask" / f"{int(video)}_label.mat"
        return L.read_avenue_masks(path) if path.is_file() else None


@register_dataset("shanghaitech")
class ShanghaiTech(Dataset):
    """ShanghaiTech Campus: ``training/videos/SS_VVV.avi``, ``testing/frames/SS_VVVV/NNN.jpg``,
    ``testing/test_frame_mask/SS_VVVV.npy``. With ``mixture`` set (``01+02``, ``04+08``,
    ``10+12``) the split lists and relabelled masks come from ``<mixtures_dir>/<mixture>/``;
    training may then take test videos (named ``SS_VVVV``)."""

    def __init__(self, name, cfg):
        super().__init__(name, cfg)
        self.mixture = cfg.get("mixture")
        if self.mixture:
            self.mix_dir = Path(cfg.get("mixtures_dir") or self.root / "mixtures") / self.mixture
            for f in ("train.txt", "test.txt"):
                if not (self.mix_dir / f).is_file():
                    raise DatasetError(f"datasets.{name}.mixture: {self.mix_dir / f} not found")

    def _all(self, split):
        if split == "train":
            return _video_files(self.root / "training" / "videos")
        return _subdirs(self.root / "testing" / "frames")

    def _scan(self, split):
        if not self.mixture:
            return self._all(split)
        names = (self.mix_dir / f"{split}.txt").read_text().split()
        train, test = self._all("train"), self._all("test")
        out = {}
        for n in names:
            path = train.get(n) or test.get(n)
            if path is None:
                raise DatasetError(
                    f"{self.mix_dir / (split + '.txt')}: video {n!r} is neither in "
                    f"{self.root / 'training/videos'} nor in {self.root / 'testing/frames'}"
                )
            out[n] = path
        return out

    def label_file(self, video):
        if self.mixture:
            return self.mix_dir / "test_frame_mask" / f"{video}.npy"
        return self.root / "testing" / "test_frame_mask" / f"{video}.npy"

    # HSC_VAD's relabelled mixture masks (a test event that is normal in the mixture's scene, the whole
    # video all-normal) are stored cut to a multiple of its 16-frame clips: 01_0014 has 256 labels for
    # 265 frames. Such a mask is padded with normal frames; any other length mismatch stays an error.
    MIXTURE_CUT = 16

    def _read_labels(self, video, n_frames):
        labels = super()._read_labels(video, n_frames)
        short = n_frames - len(labels)
        if self.mixture and 0 < short < self.MIXTURE_CUT and not labels.any():
            labels = np.concatenate([labels, np.zeros(short, dtype=labels.dtype)])
        return labels


@register_dataset("folder")
class Folder(Dataset):
    """A user's own footage: ``<root>/train/*`` and ``<root>/test/*``, each entry a video file or a
    folder of frames; optional labels ``<root>/labels/<video>.npy`` (scores and plots without an
    AUC when there are none)."""

    def _scan(self, split):
        folder = self.root / split
        if not folder.is_dir():
            raise DatasetError(f"datasets.{self.name}.root: {folder} not found (expected train/ and test/)")
        out = _video_files(folder)
        for p in folder.iterdir():
            if p.is_dir() and any(c.suffix.lower() in IMAGE_SUFFIXES for c in p.iterdir()):
                out[p.name] = p
        return out

    def label_file(self, video):
        path = self.expected_label_file(video)
        return path if path.exists() else None

    def expected_label_file(self, video):
        return self.root / "labels" / f"{video}.npy"
