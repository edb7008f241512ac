"""Helpers shared by the stage entry points: parameters, logging, progress bars, clips."""

from __future__ import annotations

import logging
import sys

import numpy as np

log = logging.getLogger("hscvad")
LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)


def progress(total: int | None, desc: str, unit: str = "it"):
    """A tqdm bar on stderr (the rule's log); sparse updates when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, mininterval=0.5 if sys.stderr.isatty() else 10.0,
                dynamic_ncols=True)


def n_clips(n_frames: int, clip_length: int) -> int:
    """Non-overlapping clips of ``clip_length`` frames; the last, shorter clip counts too."""
    return -(-int(n_frames) // int(clip_length))


def clip_of(frames: np.ndarray, clip_length: int) -> np.ndarray:
    return np.asarray(frames) // int(clip_length)
