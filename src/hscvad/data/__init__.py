"""Data adapters: frame sources, label readers and one adapter class per dataset layout."""

from .datasets import SPLITS, Dataset, DatasetError, adapters, build_dataset, register_dataset
from .labels import LabelError
from .readers import FrameSource, VideoError, open_source

__all__ = [
    "SPLITS",
    "Dataset",
    "DatasetError",
    "FrameSource",
    "LabelError",
    "VideoError",
    "adapters",
    "build_dataset",
    "open_source",
    "register_dataset",
]
