"""Frame sources: a folder of images or a video file, decoded as a stream of RGB uint8 frames."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from .. import threads

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp"}
VIDEO_SUFFIXES = {".avi", ".mp4", ".mov", ".mkv", ".mpg", ".mpeg", ".webm"}


class VideoError(RuntimeError):
    """A video or frame folder that cannot be read; the message names the file."""


def _numeric_key(path: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", path.stem)
    return (int(digits[-1]) if digits else -1, path.name)


def list_images(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(files, key=_numeric_key)


_PNG_END = bytes.fromhex("0000000049454e44ae426082")  # the IEND chunk


def truncated(path: Path, data: np.ndarray) -> bool:
    """Whether an image file was cut short: JPEG without its end-of-image marker (FF D9, padding
    after it allowed), PNG without its IEND chunk, BMP shorter than its header's file size."""
    suffix = path.suffix.lower()
    raw = data.tobytes()
    if suffix in (".jpg", ".jpeg"):
        return b"\xff\xd9" not in raw[-64:]
    if suffix == ".png":
        return _PNG_END not in raw[-64:]
    if suffix == ".bmp" and len(raw) >= 6:
        return len(raw) < int.from_bytes(raw[2:6], "little")
    return False


class FrameSource:
    """One video: ``frames()`` yields RGB uint8 arrays of shape (H, W, 3) in order.

    ``frames(keep)``: ``keep(t)`` says whether frame ``t`` is needed; every frame still yields one
    item, in order, so counting and indexing are unchanged, but an unneeded frame yields ``None``
    and costs less: a frame folder does not read its file, a video decodes it (later frames depend
    on it) without converting it to RGB. The frames yielded are exactly those of a full decode."""

    path: Path

    def frames(self, keep: Callable[[int], bool] | None = None) -> Iterator[np.ndarray | None]:  # pragma: no cover
        raise NotImplementedError

    @property
    def fps(self) -> float:
        return 25.0

    def count_frames(self) -> int:
        """The number of frames ``frames()`` yields."""
        raise NotImplementedError


class FrameFolder(FrameSource):
    def __init__(self, path: str | Path, fps: float = 25.0):
        self.path = Path(path)
        self._fps = fps
        if not self.path.is_dir():
            raise VideoError(f"{self.path}: frame folder not found")

    @property
    def fps(self) -> float:
        return self._fps

    def __len__(self) -> int:
        return len(list_images(self.path))

    def count_frames(self) -> int:
        return len(self)

    def frames(self, keep: Callable[[int], bool] | None = None) -> Iterator[np.ndarray | None]:
        """Every frame in order (``None`` for those ``keep`` rejects, whose files are not read); a
        truncated image (decoders fill the missing part silently) or a frame of another size than
        the first one read is an error naming the file and the frame."""
        import cv2

        files = list_images(self.path)
        if not files:
            raise VideoError(f"{self.path}: no image files in frame folder")
        size = None
        for t, file in enumerate(files):
            if keep is not None and not keep(t):
                yield None
                continue
            data = np.fromfile(file, dtype=np.uint8)
            if truncated(file, data):
                raise VideoError(f"{file}: truncated image (frame {t} of {self.path}); the file ends before "
                                 "its end-of-image marker")
            img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
            if img is None:
                raise VideoError(f"{file}: unreadable image (frame {t} of {self.path})")
            if size is None:
                size, first = img.shape[:2], file
            elif img.shape[:2] != size:
                raise VideoError(f"{file}: frame {t} is {img.shape[1]}x{img.shape[0]}, the video's first frame "
                                 f"{first.name} is {size[1]}x{size[0]}; every frame of a video must have one size")
            yield cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class VideoFile(FrameSource):
    """A video decoded with PyAV (FFmpeg), streamed frame by frame."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"{self.path}: video file not found")
        self._fps: float | None = None

    @property
    def fps(self) -> float:
        if self._fps is None:
            import av

            try:
                with av.open(str(self.path)) as c:
                    rate = c.streams.video[0].average_rate
                    self._fps = float(rate) if rate else 25.0
            except (av.FFmpegError, IndexError) as e:
                raise VideoError(f"{self.path}: cannot open video ({e})") from e
        return self._fps

    def count_frames(self) -> int:
        """Frames decoded (no colour conversion; FFmpeg's frame threads): what ``frames()`` yields."""
        import av

        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise VideoError(f"{self.path}: no video stream")
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                stream.thread_count = threads.budget() or 0
                return sum(1 for _ in container.decode(stream))
        except av.FFmpegError as e:
            raise VideoError(f"{self.path}: cannot decode video ({e})") from e

    def frames(self, keep: Callable[[int], bool] | None = None) -> Iterator[np.ndarray | None]:
        """Every frame in order, decoded with FFmpeg's frame and slice threads (bit-exact);
        ``None`` for those ``keep`` rejects (decoded, not converted)."""
        import av

        try:
            container = av.open(str(self.path))
        except av.FFmpegError as e:
            raise VideoError(f"{self.path}: cannot open video ({e})") from e
        with container:
            if not container.streams.video:
                raise VideoError(f"{self.path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.thread_count = threads.budget() or 0  # the job's threads (0: FFmpeg picks)
            expected = int(stream.frames or 0)
            n = 0
            size = None
            try:
                for frame in container.decode(stream):
                    if size is None:
                        size = (frame.width, frame.height)
                    elif (frame.width, frame.height) != size:
                        raise VideoError(f"{self.path}: frame {n} is {frame.width}x{frame.height}, the first frame "
                                         f"{size[0]}x{size[1]}; every frame of a video must have one size")
                    n += 1
                    yield frame.to_ndarray(format="rgb24") if keep is None or keep(n - 1) else None
            except av.FFmpegError as e:
                raise VideoError(f"{self.path}: decoding failed after {n} frames ({e})") from e
            if n == 0:
                raise VideoError(f"{self.path}: no decodable frame (empty or corrupt video)")
            if expected and n < expected:
                raise VideoError(
                    f"{self.path}: truncated video, decoded {n} of the {expected} frames "
                    "its header declares"
                )


def open_source(path: str | Path, fps: float = 25.0) -> FrameSource:
    path = Path(path)
    if path.is_dir():
        return FrameFolder(path, fps=fps)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoFile(path)
    raise VideoError(f"{path}: neither a frame folder nor a video file ({sorted(VIDEO_SUFFIXES)})")
