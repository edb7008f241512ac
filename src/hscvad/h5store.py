"""Versioned HDF5 storage shared by every stage (layouts documented in docs/hdf5_layout.md).

One writer per file. Every file is written under a temporary name in the destination folder and
renamed into place only when complete, so an interrupted job never leaves a file that a rerun (or
Snakemake) would trust. Every file carries ``format_version`` and ``stage`` attributes; readers
check both and name the file when they do not match.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

#: Bump when a layout changes incompatibly; the history is in docs/hdf5_layout.md.
FORMAT_VERSION = 1


class StoreError(RuntimeError):
    """An HDF5 file that is missing, of the wrong stage, or of an unknown version."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary ``.<name>.<random>.part`` files that a killed writer of the same output left are
    removed first (one writer per output: whatever is there is stale), and the file gets the mode a
    plain ``open`` would give it (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.part"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that gives the same bytes for the same object: torch names the archive's folder
    after the file, which for a temporary name differs on every run; saved through memory it is
    always ``archive``."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def _attr_value(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)) and not (
        isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value)
    ):
        return json.dumps(value)
    if value is None:
        return "null"
    return value


@contextlib.contextmanager
def write_store(path: str | os.PathLike, stage: str, attrs: Mapping[str, Any] | None = None):
    """Open a new HDF5 file for ``stage``; it appears at ``path`` only if the block succeeds."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["stage"] = stage
            for key, value in (attrs or {}).items():
                f.attrs[key] = _attr_value(value)
            yield f


def open_store(path: str | os.PathLike, stage: str) -> h5py.File:
    """Open a stage's HDF5 file for reading, checking its stage and version."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: file not found (expected output of stage '{stage}')")
    f = h5py.File(path, "r")
    got_stage = f.attrs.get("stage")
    version = int(f.attrs.get("format_version", -1))
    if got_stage != stage:
        f.close()
        raise StoreError(f"{path}: holds stage '{got_stage}', expected '{stage}'")
    if version != FORMAT_VERSION:
        f.close()
        raise StoreError(
            f"{path}: format_version {version}, this code reads {FORMAT_VERSION}; "
            "delete the file so that Snakemake recomputes it"
        )
    return f


def read_arrays(path: str | os.PathLike, stage: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read every top-level dataset and attribute of a stage file into memory."""
    with open_store(path, stage) as f:
        arrays = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
        attrs = {}
        for k, v in f.attrs.items():
            if isinstance(v, bytes):
                v = v.decode()
            if isinstance(v, np.ndarray) and v.dtype.kind in "OSU":
                v = [x.decode() if isinstance(x, bytes) else str(x) for x in v]
            elif isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, str) and (v[:1] in "[{" or v == "null"):
                with contextlib.suppress(ValueError):
                    v = json.loads(v)
            attrs[k] = v
    return arrays, attrs


def contents(path: str | os.PathLike) -> dict[str, Any]:
    """Everything an HDF5 file holds, in a form that compares with ``==``: per object path, a
    dataset's dtype, shape and bytes (None for a group) and its attributes as strings. Two files
    give equal contents when they hold the same data, byte for byte, whatever their timestamps."""
    out: dict[str, Any] = {}

    def visit(name: str, obj) -> None:
        data = (str(obj.dtype), obj.shape, obj[()].tobytes()) if isinstance(obj, h5py.Dataset) else None
        out[name] = (data, {k: str(v) for k, v in obj.attrs.items()})

    with h5py.File(path, "r") as f:
        f.visititems(visit)
        out["/"] = (None, {k: str(v) for k, v in f.attrs.items()})
    return out


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
